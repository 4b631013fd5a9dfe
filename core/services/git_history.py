"""A run's work as git history: the user's base commit rebuilt, then one commit per task.

Everything is built with git plumbing in a bare repository of our own, never in the user's:
blobs with `hash-object`, trees through a throwaway index (`GIT_INDEX_FILE`), commits with
`commit-tree`, the branch with `update-ref`. Identities and dates come from the run's rows,
so the same run always gives the same commit ids.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import col, select

from core.contracts import REPOSITORY_TASK, RunState
from core.infrastructure.git import GitError, git, git_text
from core.persistence import storage
from core.persistence.db import Artifact, Database, LedgerEntry, RepositoryFile, RepositorySnapshot
from core.services.runs import RunNotRecorded, stored_state

INTERNAL_PREFIX = ".orchestrator/"
"""The orchestrator's own bookkeeping in a workspace: never part of the delivered work."""

EMAIL_DOMAIN = "agents.orchestrator.invalid"
SUBJECT_LIMIT = 72
REGULAR_MODES = ("100644", "100755")


class DeliveryError(ValueError):
    """The run's work cannot be delivered as asked; the message says why."""


@dataclass(frozen=True)
class TaskSpend:
    """What one task cost, from the ledger."""

    models: tuple[str, ...] = ()
    tokens: int = 0
    """Input (cached included, as `Usage.total` counts them) plus output tokens."""
    cost_usd: float = 0.0


@dataclass(frozen=True)
class TaskCommit:
    sha: str
    task_id: str
    role: str
    paths: tuple[str, ...]
    """Every path the commit changes, sorted."""
    added: tuple[str, ...] = ()
    """The paths among them that the parent commit did not have."""


@dataclass(frozen=True)
class RunHistory:
    run_id: str
    base: str | None
    """The user's commit the branch starts from; None for a greenfield run."""
    head: str
    branch: str
    commits: tuple[TaskCommit, ...]
    spend: dict[str, TaskSpend] = field(default_factory=dict)
    """Every task of the ledger, the ones without a commit (reviews, analysis) included."""


@dataclass
class _TaskWork:
    task_id: str
    role: str
    last_id: int
    when: datetime
    files: dict[str, str] = field(default_factory=dict)
    """Path -> content, for the paths whose newest version the task wrote."""


def default_branch(run_id: str) -> str:
    return f"orchestrator/{run_id}"


# --- the base commit --------------------------------------------------------------------


async def rebuild_base(db: Database, snapshot: RepositorySnapshot, git_dir: Path) -> str:
    """Rebuild the snapshot's commit in `git_dir` from its stored files; returns its id.

    The tree and the commit are checked against the ids the snapshot recorded, so a branch
    built on top is a descendant of the user's own commit. Its parents are not stored: the
    commit is marked as a shallow boundary, git's own way of saying "history stops here".
    """
    await ensure_bare(git_dir, object_format="sha256" if len(snapshot.commit) == 64 else "sha1")
    files = await _snapshot_files(db, snapshot.id)
    stored = [f for f in files if f.mode != "160000"]
    missing = [f.path for f in stored if f.data is None]
    if missing:
        raise DeliveryError(
            f"snapshot {snapshot.id} lacks the content of {len(missing)} file(s), "
            f"e.g. {missing[0]!r}: its commit cannot be rebuilt"
        )
    blobs = await write_blobs(git_dir, [f.data or b"" for f in stored])
    for file, blob in zip(stored, blobs, strict=True):
        if blob != file.blob:
            raise DeliveryError(f"stored file {file.path!r} does not hash to its blob {file.blob}")
    tree = await write_tree(git_dir, None, [(f.mode, f.blob, f.path) for f in files])
    if tree != snapshot.tree:
        raise DeliveryError(f"rebuilt tree {tree} differs from the snapshot's {snapshot.tree}")
    commit = await git_text(
        ["hash-object", "-t", "commit", "-w", "--stdin"],
        git_dir=git_dir,
        stdin=snapshot.commit_object.encode("utf-8", "surrogateescape"),
    )
    if commit != snapshot.commit:
        raise DeliveryError(
            f"rebuilt commit {commit} differs from the snapshot's {snapshot.commit}"
        )
    _mark_shallow(git_dir, commit)
    return commit


async def _snapshot_files(db: Database, snapshot_id: str) -> list[RepositoryFile]:
    async with db.session() as session:
        result = await session.execute(
            select(RepositoryFile)
            .where(RepositoryFile.snapshot_id == snapshot_id)
            .order_by(col(RepositoryFile.path))
        )
        return list(result.scalars())


def _mark_shallow(git_dir: Path, commit: str) -> None:
    shallow = git_dir / "shallow"
    known = set(shallow.read_text().split()) if shallow.exists() else set()
    shallow.write_text("".join(f"{sha}\n" for sha in sorted(known | {commit})))


# --- plumbing ---------------------------------------------------------------------------


async def ensure_bare(git_dir: Path, *, object_format: str = "sha1") -> None:
    """A bare repository at `git_dir` unless one is there (no template: no sample hooks)."""
    if (git_dir / "objects").is_dir():
        return
    await git(
        [
            "init",
            "--bare",
            "--quiet",
            "--template=",
            f"--object-format={object_format}",
            str(git_dir),
        ]
    )


async def write_blobs(git_dir: Path, contents: Sequence[bytes]) -> list[str]:
    """Store each content as a blob, in one `hash-object` call; their ids in order."""
    if not contents:
        return []
    with tempfile.TemporaryDirectory(prefix="orchestrator-blobs-") as tmp:
        paths = []
        for number, data in enumerate(contents):
            path = Path(tmp) / str(number)
            path.write_bytes(data)
            paths.append(str(path))
        out = await git_text(
            ["hash-object", "-w", "--no-filters", "--stdin-paths"],
            git_dir=git_dir,
            stdin="".join(f"{p}\n" for p in paths).encode(),
        )
    return out.split()


async def write_tree(
    git_dir: Path, parent: str | None, entries: Iterable[tuple[str, str, str]]
) -> str:
    """The tree of `parent` (or nothing) with `(mode, object, path)` entries set on top."""
    records = b"".join(
        f"{mode} {sha}\t".encode() + path.encode("utf-8", "surrogateescape") + b"\0"
        for mode, sha, path in entries
    )
    with tempfile.TemporaryDirectory(prefix="orchestrator-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if parent is not None:
            await git(["read-tree", parent], git_dir=git_dir, env=env)
        if records:
            await git(
                ["update-index", "-z", "--index-info"], git_dir=git_dir, env=env, stdin=records
            )
        return await git_text(["write-tree"], git_dir=git_dir, env=env)


async def tree_listing(git_dir: Path, treeish: str | None) -> dict[str, tuple[str, str]]:
    """Path -> (mode, object) of every file (and gitlink) of `treeish`; {} for None."""
    if treeish is None:
        return {}
    out = await git(["ls-tree", "-r", "-z", "--full-tree", treeish], git_dir=git_dir)
    listing = {}
    for record in out.split(b"\0"):
        if record:
            meta, path = record.split(b"\t", 1)
            mode, _kind, sha = meta.decode().split(" ")
            listing[path.decode("utf-8", "surrogateescape")] = (mode, sha)
    return listing


async def check_branch_name(branch: str) -> None:
    try:
        await git(["check-ref-format", f"refs/heads/{branch}"])
    except GitError:
        raise DeliveryError(f"{branch!r} is not a valid branch name") from None


# --- the run's commits ------------------------------------------------------------------


async def build_run_history(
    db: Database, run_id: str, git_dir: Path, *, branch: str | None = None
) -> RunHistory:
    """One commit per task that changed files, on `branch` (default `orchestrator/<run_id>`).

    Each path's newest version belongs to the task that wrote it; tasks commit in the order
    they finished (their last artifact). The head's tree is the base plus the workspace.
    """
    branch = branch or default_branch(run_id)
    await check_branch_name(branch)
    run = await storage.get_run(db, run_id)
    if run is None:
        raise RunNotRecorded(f"no run with id {run_id!r}")
    base: str | None = None
    if run.repository_snapshot is not None:
        async with db.session() as session:
            snapshot = await session.get(RepositorySnapshot, run.repository_snapshot)
        if snapshot is None:
            raise DeliveryError(
                f"run {run_id} names snapshot {run.repository_snapshot}, not stored"
            )
        base = await rebuild_base(db, snapshot, git_dir)
    else:
        await ensure_bare(git_dir)
    works = task_work(await storage.all_artifact_versions(db, run_id))
    spend = task_spending(await storage.ledger_entries(db, run.workflow_id))
    commits = await _commit_tasks(git_dir, run_id, base, works, stored_state(run), spend)
    head = commits[-1].sha if commits else base
    if head is None:
        raise DeliveryError(f"run {run_id} wrote no files: there is nothing to commit")
    await git(["update-ref", f"refs/heads/{branch}", head], git_dir=git_dir)
    return RunHistory(run_id, base, head, branch, tuple(commits), spend)


def task_work(versions: Iterable[Artifact]) -> list[_TaskWork]:
    """The tasks that own a path's newest version, in the order they finished."""
    newest: dict[str, Artifact] = {}
    last: dict[str, Artifact] = {}
    for artifact in sorted(versions, key=lambda a: a.id or 0):
        if artifact.path.startswith(INTERNAL_PREFIX):
            continue
        current = newest.get(artifact.path)
        if current is None or (artifact.version, artifact.id or 0) > (
            current.version,
            current.id or 0,
        ):
            newest[artifact.path] = artifact
        if artifact.task_id != REPOSITORY_TASK:
            last[artifact.task_id] = artifact
    works: dict[str, _TaskWork] = {}
    for path, artifact in sorted(newest.items()):
        if artifact.task_id == REPOSITORY_TASK:
            continue  # still the base's content
        final = last[artifact.task_id]
        work = works.setdefault(
            artifact.task_id,
            _TaskWork(artifact.task_id, final.role, final.id or 0, final.created_at),
        )
        work.files[path] = artifact.content
    return sorted(works.values(), key=lambda w: w.last_id)


def task_spending(entries: Iterable[LedgerEntry]) -> dict[str, TaskSpend]:
    models: dict[str, list[str]] = defaultdict(list)
    tokens: dict[str, int] = defaultdict(int)
    cost: dict[str, float] = defaultdict(float)
    for entry in entries:
        if entry.model not in models[entry.task_id]:
            models[entry.task_id].append(entry.model)
        tokens[entry.task_id] += storage.entry_usage(entry).total
        cost[entry.task_id] += entry.cost_usd
    return {t: TaskSpend(tuple(models[t]), tokens[t], cost[t]) for t in models}


async def _commit_tasks(
    git_dir: Path,
    run_id: str,
    base: str | None,
    works: list[_TaskWork],
    state: RunState | None,
    spend: dict[str, TaskSpend],
) -> list[TaskCommit]:
    listing = await tree_listing(git_dir, base)
    contents = [content.encode("utf-8") for work in works for content in work.files.values()]
    blobs = iter(await write_blobs(git_dir, contents))
    parent, commits = base, []
    for work in works:
        changed = {}
        for path in work.files:
            blob = next(blobs)
            mode = listing.get(path, ("100644", ""))[0]
            if listing.get(path, ("", ""))[1] != blob:
                changed[path] = (mode if mode in REGULAR_MODES else "100644", blob)
        if not changed:
            continue  # its final content is what the parent already has
        _refuse_conflicts(listing, changed)
        tree = await write_tree(git_dir, parent, [(m, b, p) for p, (m, b) in changed.items()])
        message = commit_message(run_id, work, _summary(state, work.task_id), spend)
        role = _role(state, work)
        args = ["commit-tree", tree] + (["-p", parent] if parent else [])
        parent = await git_text(
            args, git_dir=git_dir, env=_identity(role, work.when), stdin=message.encode()
        )
        added = tuple(sorted(p for p in changed if p not in listing))
        commits.append(TaskCommit(parent, work.task_id, role, tuple(sorted(changed)), added))
        listing.update(changed)
    return commits


def _refuse_conflicts(listing: Mapping[str, object], changed: Mapping[str, object]) -> None:
    """git cannot hold `a` and `a/b` as files at once; the workspace can: say so plainly."""
    files = set(listing) | set(changed)
    folders = {prefix for path in files for prefix in _folders(path)}
    for path in changed:
        clash = path if path in folders else next((f for f in _folders(path) if f in files), None)
        if clash is not None:
            raise DeliveryError(f"{clash!r} would be both a file and a folder")


def _folders(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:n]) for n in range(1, len(parts))]


def _summary(state: RunState | None, task_id: str) -> str:
    try:
        return state.task(task_id).summary if state is not None else ""
    except KeyError:
        return ""


def _role(state: RunState | None, work: _TaskWork) -> str:
    try:
        return state.task(work.task_id).role if state is not None else work.role
    except KeyError:
        return work.role


def commit_message(run_id: str, work: _TaskWork, summary: str, spend: dict[str, TaskSpend]) -> str:
    """Subject `<task>: <first line>`, the summary, then the run's trailers."""
    lines = [line.rstrip() for line in summary.replace("\0", "").strip().splitlines()]
    first = next((line.strip() for line in lines if line.strip()), "")
    subject = f"{work.task_id}: {first or f'update {len(work.files)} file(s)'}"
    cut = len(subject) > SUBJECT_LIMIT
    if cut:
        subject = subject[: SUBJECT_LIMIT - 3].rstrip() + "..."
    body = "\n".join(lines).strip()
    paid = spend.get(work.task_id, TaskSpend())
    trailers = [
        f"Run-Id: {run_id}",
        f"Task: {work.task_id}",
        f"Model: {', '.join(paid.models) or 'none'}",
        f"Tokens: {paid.tokens}",
        f"Cost: ${paid.cost_usd:.4f}",
    ]
    keep_body = body and (cut or body != first)
    parts = [subject] + ([body] if keep_body else []) + ["\n".join(trailers)]
    return "\n\n".join(parts) + "\n"


def _identity(role: str, when: datetime) -> dict[str, str]:
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in role) or "agent"
    moment = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    date = f"{int(moment.timestamp())} +0000"
    return {
        "GIT_AUTHOR_NAME": role,
        "GIT_AUTHOR_EMAIL": f"{name}@{EMAIL_DOMAIN}",
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": role,
        "GIT_COMMITTER_EMAIL": f"{name}@{EMAIL_DOMAIN}",
        "GIT_COMMITTER_DATE": date,
    }
