"""A change run's starting point: a repository at a commit, imported into a snapshot.

Four ways in, one way through: a local path (the CLI), an operator-registered name, an
uploaded archive and an http(s) URL all end in `_import`, which reads the commit's tracked
files with git plumbing (so `.gitignore` is honoured and the work tree is never read or
changed) and stores them once per tenant and commit.

Git runs only through `core.infrastructure.git`, which turns off everything a repository's
config could make it execute.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from core.contracts import RepositoryRef
from core.infrastructure.git import GitError, git, git_text
from core.infrastructure.outbound import IPAddress, UnsafeTarget, resolve_target
from core.infrastructure.settings import RepositorySettings
from core.persistence.db import Database, RepositoryFile, RepositorySnapshot
from core.persistence.repositories import (
    TEXT_MODES,
    get_snapshot,
    snapshot_ref,
    store_snapshot,
)
from core.services.archives import ArchiveError, unpack_archive

Outline = Callable[[Mapping[str, str]], str]
"""Text files (path → text) to the repository map's outline, a JSON string."""

PYTEST = "python -m pytest -q"
LINK_MODE = "120000"
GITLINK_MODE = "160000"
BINARY_SNIFF = 8000
"""Git's own rule: a NUL byte in the first 8000 bytes makes a file binary."""

UPLOAD_SOURCE = "upload"
"""The source of a snapshot made from an uploaded archive (its base commit is made here)."""

UPLOAD_IDENTITY = {
    "GIT_AUTHOR_NAME": "orchestrator upload",
    "GIT_AUTHOR_EMAIL": "upload@orchestrator.invalid",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "orchestrator upload",
    "GIT_COMMITTER_EMAIL": "upload@orchestrator.invalid",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
}
"""Fixed, so the same uploaded content always makes the same commit (and snapshot)."""

_REMOTE_REF = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]{1,200}$")
_MAKE_TEST = re.compile(rb"^(?:[\w.-]+[ \t]+)*test(?:[ \t]+[\w.-]+)*[ \t]*::?(?!=)", re.M)
_PYTHON_TEST_FILE = re.compile(r"(?:^|/)tests?/(?:.+/)?test_[^/]*\.py$")
_NPM_DEFAULT_TEST = "no test specified"


class RepositoryError(ValueError):
    """A repository that cannot be a run's start; the message says why in one line."""


@dataclass(frozen=True)
class _Entry:
    mode: str
    blob: str
    size: int
    path: str


def snapshot_address(tenant: str, commit: str) -> str:
    return hashlib.sha256(f"{tenant}\0{commit}".encode()).hexdigest()


# --------------------------------------------------------------------------- the ways in


async def import_local(
    db: Database,
    settings: RepositorySettings,
    tenant: str,
    path: Path,
    ref: str = "HEAD",
    *,
    source: str | None = None,
    outline: Outline | None = None,
) -> RepositoryRef:
    """The repository at `path` (a work tree, a folder in one, or a bare repository)."""
    resolved = path.expanduser().resolve()
    label = source or f"local:{resolved}"
    if not resolved.is_dir():
        raise RepositoryError(f"{label}: no such folder")
    return await _import(db, settings, tenant, resolved, ref, label, outline)


async def import_registered(
    db: Database,
    settings: RepositorySettings,
    tenant: str,
    name: str,
    ref: str = "HEAD",
    *,
    outline: Outline | None = None,
) -> RepositoryRef:
    """A repository the operator offers by name; a tenant never names a server path."""
    path = settings.registered.get(name)
    if path is None:
        raise RepositoryError(f"no registered repository is named {name!r}")
    # The label, never the server path, is what messages and the snapshot show.
    return await import_local(
        db, settings, tenant, Path(path), ref, source=f"registered:{name}", outline=outline
    )


async def import_archive(
    db: Database,
    settings: RepositorySettings,
    tenant: str,
    data: bytes,
    *,
    outline: Outline | None = None,
) -> RepositoryRef:
    """An uploaded tar, tar.gz or zip: unpacked safely, committed with a fixed identity."""
    with tempfile.TemporaryDirectory(prefix="orchestrator-upload-") as temporary:
        tree = Path(temporary) / "tree"
        tree.mkdir()
        try:
            await asyncio.to_thread(
                unpack_archive,
                data,
                tree,
                max_files=settings.max_files,
                max_bytes=settings.max_bytes,
                max_archive_bytes=settings.max_archive_bytes,
            )
        except ArchiveError as exc:
            raise RepositoryError(f"archive refused: {exc}") from None
        await _commit_upload(tree)
        return await _import(db, settings, tenant, tree, "HEAD", UPLOAD_SOURCE, outline)


async def import_remote(
    db: Database,
    settings: RepositorySettings,
    tenant: str,
    url: str,
    ref: str = "HEAD",
    *,
    allow_private: bool = False,
    outline: Outline | None = None,
) -> RepositoryRef:
    """A repository at an http(s) URL, fetched at depth 1 after the SSRF guard passes it.

    `ref` is a branch, a tag or a full commit id. `allow_private` is the operator's
    `WEBHOOK_ALLOW_PRIVATE_TARGETS`, the one switch for outbound URLs users give.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise RepositoryError(f"repository URL refused: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise RepositoryError("only https:// and http:// repository URLs are taken")
    label = "remote:" + urlunsplit(
        (parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", "")
    )
    if not _REMOTE_REF.match(ref):
        raise RepositoryError(f"{label}: {ref!r} is not a branch, tag or commit name")
    try:
        addresses = await resolve_target(url, allow_private)
    except UnsafeTarget as exc:
        raise RepositoryError(f"repository URL refused: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="orchestrator-remote-") as temporary:
        git_dir = Path(temporary) / "remote.git"
        await git(["init", "--bare", "--quiet", str(git_dir)])
        try:
            await git(
                ["fetch", "--quiet", "--depth", "1", "--no-tags", url, ref],
                cwd=git_dir,
                env=pinned_http_config(url, addresses),
            )
        except GitError as exc:
            detail = str(exc).replace(url, label.removeprefix("remote:"))
            if parts.password:
                detail = detail.replace(parts.password, "***")
            raise RepositoryError(f"{label}: cannot fetch {ref!r}: {detail}") from None
        commit = await git_text(["rev-parse", "FETCH_HEAD^{commit}"], cwd=git_dir)
        return await _import(db, settings, tenant, git_dir, commit, label, outline, ref_name=ref)


def pinned_http_config(url: str, addresses: Iterable[IPAddress]) -> dict[str, str]:
    """Config (by environment) that sends git only to the addresses the guard checked.

    Pinning the name to those addresses keeps a DNS answer that changes after the check
    from redirecting the fetch; redirects are not followed and only http(s) is spoken."""
    parts = urlsplit(url)
    config = {
        "http.followRedirects": "false",
        "protocol.allow": "never",
        "protocol.http.allow": "always",
        "protocol.https.allow": "always",
    }
    host = parts.hostname or ""
    if not re.fullmatch(r"[\d.]+|.*:.*", host):  # names only: a literal address is fixed
        port = parts.port or (443 if parts.scheme == "https" else 80)
        listed = ",".join(f"[{a}]" if a.version == 6 else str(a) for a in addresses)
        config["http.curloptResolve"] = f"{host}:{port}:{listed}"
    env = {"GIT_CONFIG_COUNT": str(len(config))}
    for index, (key, value) in enumerate(config.items()):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


async def _commit_upload(tree: Path) -> None:
    """Commit the unpacked tree (`.gitignore` honoured) as `HEAD`, the same way every time."""
    await git(["init", "--quiet"], cwd=tree)
    try:
        await git(["add", "--all"], cwd=tree)
    except GitError as exc:  # git's own path rules (`.git.`, `GIT~1`...) refuse a name
        raise RepositoryError(f"archive refused: {exc}") from None
    tracked = await git(["ls-files", "-z"], cwd=tree)
    if not tracked:
        raise RepositoryError("archive refused: it holds no files (after .gitignore)")
    tree_id = await git_text(["write-tree"], cwd=tree)
    commit = await git_text(
        ["commit-tree", tree_id, "-m", "Uploaded repository"], cwd=tree, env=UPLOAD_IDENTITY
    )
    await git(["update-ref", "HEAD", commit], cwd=tree)


# --------------------------------------------------------------------------- one way through


async def _import(
    db: Database,
    settings: RepositorySettings,
    tenant: str,
    repo: Path,
    ref: str,
    label: str,
    outline: Outline | None,
    *,
    ref_name: str | None = None,
) -> RepositoryRef:
    """Resolve `ref` in `repo` and store that commit for `tenant` unless it already is."""
    commit = await _resolve(repo, ref, label)
    snapshot_id = snapshot_address(tenant, commit)
    stored = await get_snapshot(db, snapshot_id, tenant)
    if stored is None:
        snapshot, files = await _read_commit(repo, commit, settings, label)
        snapshot.id, snapshot.tenant = snapshot_id, tenant
        snapshot.ref, snapshot.source = (ref_name or ref)[:200], label[:500]
        text = {f.path: f.data or b"" for f in files if _is_text(f)}
        snapshot.test_command = detect_test_command(text)
        if outline is not None:
            snapshot.outline = outline({path: data.decode() for path, data in text.items()})
        stored = await store_snapshot(db, snapshot, files)
    # The figures are the stored snapshot's; the ref and source are this import's.
    return snapshot_ref(stored).model_copy(
        update={"ref": (ref_name or ref)[:200], "source": label[:500]}
    )


async def _resolve(repo: Path, ref: str, label: str) -> str:
    try:
        await git(["rev-parse", "--git-dir"], cwd=repo)
    except GitError:
        raise RepositoryError(f"{label} is not a git repository") from None
    if not ref or ref.startswith("-") or any(c in ref for c in "\n\0"):
        raise RepositoryError(f"{label}: {ref!r} is not a ref")
    try:
        return await git_text(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=repo)
    except GitError:
        raise RepositoryError(f"{label} has no commit at ref {ref!r}") from None


async def _read_commit(
    repo: Path, commit: str, settings: RepositorySettings, label: str
) -> tuple[RepositorySnapshot, list[RepositoryFile]]:
    """The commit's tracked files, limits checked before any content is read."""
    entries = await _list_tree(repo, commit, label)
    total = sum(entry.size for entry in entries)
    if len(entries) > settings.max_files:
        raise RepositoryError(
            f"{label} has {len(entries)} files at {commit[:12]}, "
            f"more than REPOSITORY_MAX_FILES={settings.max_files}"
        )
    if total > settings.max_bytes:
        raise RepositoryError(
            f"{label} has {total} bytes of files at {commit[:12]}, "
            f"more than REPOSITORY_MAX_BYTES={settings.max_bytes}"
        )
    blobs = await _read_blobs(repo, {e.blob for e in entries if e.mode != GITLINK_MODE})
    files = [_file(entry, blobs.get(entry.blob), settings.max_file_bytes) for entry in entries]
    raw_commit = await git(["cat-file", "commit", commit], cwd=repo)
    snapshot = RepositorySnapshot(
        id="",
        tenant="",
        commit=commit,
        tree=await git_text(["rev-parse", f"{commit}^{{tree}}"], cwd=repo),
        # A commit whose message is in another encoding is kept legible, not byte-exact.
        commit_object=raw_commit.decode("utf-8", "replace"),
        ref="",
        source="",
        files=len(files),
        bytes=total,
        binaries=sum(1 for file in files if file.binary),
    )
    return snapshot, files


async def _list_tree(repo: Path, commit: str, label: str) -> list[_Entry]:
    out = await git(["ls-tree", "-r", "-z", "-l", "--full-tree", commit], cwd=repo)
    entries = []
    for record in filter(None, out.split(b"\0")):
        header, _, raw_path = record.partition(b"\t")
        mode, _kind, blob, size = header.decode().split()
        try:
            path = raw_path.decode("utf-8")
        except UnicodeDecodeError:
            raise RepositoryError(f"{label}: a file name is not UTF-8: {raw_path!r}") from None
        entries.append(_Entry(mode, blob, 0 if size == "-" else int(size), path))
    return entries


async def _read_blobs(repo: Path, blobs: set[str]) -> dict[str, bytes]:
    """Every blob's content from one `git cat-file --batch`, not a process per file."""
    if not blobs:
        return {}
    request = "".join(f"{blob}\n" for blob in sorted(blobs)).encode()
    out = await git(["cat-file", "--batch"], cwd=repo, stdin=request)
    contents: dict[str, bytes] = {}
    position = 0
    while position < len(out):
        end = out.index(b"\n", position)
        header = out[position:end].decode().split()
        if len(header) != 3:
            raise RepositoryError(f"object {header[0]} is missing from the repository")
        size = int(header[2])
        contents[header[0]] = out[end + 1 : end + 1 + size]
        position = end + 1 + size + 1  # the content is followed by a newline
    return contents


def _file(entry: _Entry, data: bytes | None, max_file_bytes: int) -> RepositoryFile:
    """Submodules keep no data, links keep their target; others are flagged binary or text."""
    binary = False
    if entry.mode not in (LINK_MODE, GITLINK_MODE):
        binary = data is None or _binary(data, max_file_bytes)
    return RepositoryFile(
        snapshot_id="",
        path=entry.path,
        mode=entry.mode,
        blob=entry.blob,
        size=entry.size,
        binary=binary,
        data=None if entry.mode == GITLINK_MODE else data,
    )


def _binary(data: bytes, max_file_bytes: int) -> bool:
    if len(data) > max_file_bytes or b"\0" in data[:BINARY_SNIFF]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _is_text(file: RepositoryFile) -> bool:
    return not file.binary and file.mode in TEXT_MODES and file.data is not None


# --------------------------------------------------------------------------- test command


def detect_test_command(files: Mapping[str, bytes]) -> str | None:
    """The repository's own test command: a Makefile `test` target first (the project's
    own entry), then pytest (configured, or a tests/ folder of test_*.py), then `npm test`."""
    for name in ("GNUmakefile", "makefile", "Makefile"):
        if name in files and _MAKE_TEST.search(files[name]):
            return "make test"
    if _uses_pytest(files):
        return PYTEST
    if _npm_test(files.get("package.json")):
        return "npm test"
    return None


def _uses_pytest(files: Mapping[str, bytes]) -> bool:
    if "pytest.ini" in files:
        return True
    if any(
        b"pytest" in files.get(name, b"") for name in ("pyproject.toml", "setup.cfg", "tox.ini")
    ):
        return True
    return any(_PYTHON_TEST_FILE.search(path) for path in files)


def _npm_test(package: bytes | None) -> bool:
    if package is None:
        return False
    try:
        manifest = json.loads(package)
    except ValueError:
        return False
    scripts = manifest.get("scripts") if isinstance(manifest, dict) else None
    test = scripts.get("test") if isinstance(scripts, dict) else None
    return isinstance(test, str) and bool(test.strip()) and _NPM_DEFAULT_TEST not in test
