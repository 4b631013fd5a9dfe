"""One agent's shell command, run in a fresh sandbox on a copy of the run's workspace.

The files come in as text, the command runs at the workspace root, and what it created or
changed comes back: text files within the bounds as content, the rest listed by name.
Nothing outside the sandbox's workspace is read back, and no symlink is followed.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from checks.green_runs import GreenRun, green_run, junit_options, whole_suite_folder
from checks.sandbox import SandboxLimits, sandbox
from checks.tests import idle_plugins
from checks.warmup import warm_pytest
from checks.workspace import safe_relative_path

MAX_CHANGED_FILES = 100
MAX_CHANGED_FILE_BYTES = 1024 * 1024
"""Bigger files a command writes are listed, not kept: the workspace is the repository."""

IGNORED_FOLDERS = frozenset(
    {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules", ".venv", ".git"}
)
"""Caches and installs a command leaves behind: never part of the delivered repository."""

SHELL = "/bin/bash" if Path("/bin/bash").exists() else "/bin/sh"


@dataclass(frozen=True)
class ChangedFile:
    path: str
    content: str | None
    """None: not kept (binary, too large, or past the count limit); `reason` says which."""
    size: int
    reason: str = ""


@dataclass
class CommandExecution:
    exit_code: int | None
    """None when a limit stopped it."""
    stdout: str
    stderr: str
    limit_reason: str | None
    duration_seconds: float
    changes: list[ChangedFile] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    green_run: GreenRun | None = None
    """A whole test suite that passed, for the checks to reuse (`checks.green_runs`)."""


def execute(
    files: dict[str, str],
    command: str,
    *,
    timeout_seconds: float,
    limits: SandboxLimits,
    backend: str = "auto",
) -> CommandExecution:
    """Run `command` with `files` as its workspace. Blocks: call it from a thread.

    Raises `SandboxUnavailable` when this worker cannot sandbox commands.
    """
    warm_pytest()  # once per process: agents run the project's tests with it
    suite = whole_suite_folder(command)
    with sandbox(limits, backend=backend) as session:
        before = _check_out(files, session.workspace)
        env = command_env(files)
        junit = session.output / "command-junit.xml"
        if suite is not None:  # the checks may reuse a green run of it: it leaves their report
            env["PYTEST_ADDOPTS"] = f"{env.get('PYTEST_ADDOPTS', '')} {junit_options(junit)}"
        result = session.run(
            [SHELL, "-c", command], timeout_seconds=timeout_seconds, env=env, purpose="command"
        )
        passed = green_run(suite, result, junit) if suite is not None else None
        after = _scan(session.workspace)
        changes = [
            _changed(path, full)
            for path, (digest, full) in sorted(after.items())
            if before.get(path) != digest
        ]
    kept = [c for c in changes if c.content is not None][:MAX_CHANGED_FILES]
    skipped = [c for c in changes if c not in kept]
    return CommandExecution(
        exit_code=None if result.limit_reason else result.returncode,
        stdout=_without_report_line(result.stdout, junit) if suite is not None else result.stdout,
        stderr=result.stderr,
        limit_reason=result.limit_reason,
        duration_seconds=result.duration_seconds,
        changes=kept
        + [
            ChangedFile(c.path, None, c.size, c.reason or f"more than {MAX_CHANGED_FILES} files")
            for c in skipped
        ],
        deleted=sorted(set(before) - set(after)),
        green_run=passed,
    )


def command_env(files: Mapping[str, str]) -> dict[str, str]:
    """What a command's environment adds: the pytest plugins of the sandbox's stack that no
    file names stay unloaded, as in the checks (`checks.tests.idle_plugins`), so the tests
    an agent runs start as fast as the gate's."""
    idle = idle_plugins(files)
    return {"PYTEST_ADDOPTS": " ".join(f"-p no:{plugin}" for plugin in idle)} if idle else {}


def _without_report_line(stdout: str, junit: Path) -> str:
    """pytest names the report it wrote for the checks (unless -q): the agent asked for none."""
    return "".join(
        line
        for line in stdout.splitlines(keepends=True)
        if f"generated xml file: {junit}" not in line
    )


def _check_out(files: dict[str, str], root: Path) -> dict[str, str]:
    """Write the files; their digests by path, as the scan will see them."""
    digests = {}
    for name, content in files.items():
        path = safe_relative_path(name)
        if path is None:
            continue
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode("utf-8")
        target.write_bytes(data)
        digests[path.as_posix()] = hashlib.sha256(data).hexdigest()
    return digests


def _scan(root: Path) -> dict[str, tuple[str, Path]]:
    """Regular files under `root` (no symlinks followed, caches skipped): digest and path."""
    found: dict[str, tuple[str, Path]] = {}
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if d not in IGNORED_FOLDERS]
        for name in filenames:
            full = Path(folder, name)
            data = _read_regular(full)
            if data is not None:
                relative = full.relative_to(root).as_posix()
                found[relative] = (hashlib.sha256(data).hexdigest(), full)
    return found


def _read_regular(path: Path, limit: int = MAX_CHANGED_FILE_BYTES + 1) -> bytes | None:
    """The file's bytes (at most `limit`), or None for a symlink or a special file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read(limit)


def _changed(path: str, full: Path) -> ChangedFile:
    size = full.lstat().st_size
    if size > MAX_CHANGED_FILE_BYTES:
        return ChangedFile(path, None, size, f"larger than {MAX_CHANGED_FILE_BYTES} bytes")
    data = _read_regular(full) or b""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return ChangedFile(path, None, size, "binary")
    if "\x00" in text:
        return ChangedFile(path, None, size, "binary")
    return ChangedFile(path, text, size)
