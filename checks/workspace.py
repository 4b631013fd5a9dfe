"""A run's files checked out for one gate's checks, and the paths inside it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from core.contracts import ChecksReport, Finding, Severity

TEST_FILE = re.compile(r"^(test_.*|.*_test)\.py$")
REQUIREMENTS_FILE = re.compile(r"^requirements.*\.txt$")

Scope = tuple[PurePosixPath, ...]
"""Folders (or files) of the workspace whose code is checked; empty: all of it."""


@dataclass(frozen=True)
class Workspace:
    """The checked-out files of one check run."""

    root: Path
    scratch: Path
    """Private to this check run, outside `root`: the tools' own configuration and caches."""
    files: dict[str, str]
    """Every file of the run by path, as stored (including any that could not be written)."""
    written: list[PurePosixPath]
    """The files that can be checked out: their paths stay inside the workspace."""
    scope: Scope = ()
    """What lint and tests look at (a task's own folders); every file is still checked out,
    since tests may read sibling folders."""
    contents: dict[str, str] = field(default_factory=dict)
    """The content of each of `written`, by its path (`as_posix()`)."""


def check_scope(paths: Iterable[str]) -> Scope:
    """The folders asked for as workspace paths; none, or `.`, is the whole workspace.

    A path that would leave the workspace is dropped: checking more is safe, less is not.
    """
    scope = []
    for name in paths:
        name = name.rstrip("/")
        if name in ("", "."):
            return ()
        path = safe_relative_path(name)
        if path is not None:
            scope.append(path)
    return tuple(sorted(set(scope)))


def in_scope(path: PurePosixPath, scope: Scope) -> bool:
    return not scope or any(folder == path or folder in path.parents for folder in scope)


def checkout(
    files: dict[str, str], root: Path, scratch: Path, report: ChecksReport, scope: Scope = ()
) -> Workspace:
    """Write the files under `root`; a path that would leave it is refused, as a HIGH finding."""
    root.mkdir(parents=True, exist_ok=True)
    written = []
    contents = {}
    for path, content in checkable(files, report).items():
        target = root / path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        except OSError as exc:
            report.notes.append(
                f"could not check out {path.as_posix()!r} ({exc.strerror}): not checked"
            )
            continue
        written.append(path)
        contents[path.as_posix()] = content
    return Workspace(root, scratch, files, written, scope, contents)


def planned(
    files: dict[str, str], root: Path, scratch: Path, report: ChecksReport, scope: Scope = ()
) -> Workspace:
    """The workspace `checkout` would write, without writing it: each checker writes what
    it needs, and the sandbox session gets everything when code has to run."""
    contents = {path.as_posix(): content for path, content in checkable(files, report).items()}
    return Workspace(root, scratch, files, [PurePosixPath(p) for p in contents], scope, contents)


def checkable(files: dict[str, str], report: ChecksReport) -> dict[PurePosixPath, str]:
    """The files whose paths stay inside the workspace, by path; the others are refused, as
    HIGH findings."""
    kept: dict[PurePosixPath, str] = {}
    for name, content in sorted(files.items()):
        path = safe_relative_path(name)
        if path is None:
            report.findings.append(
                Finding(
                    source="sandbox",
                    severity=Severity.HIGH,
                    message=f"refused to check out {name!r}: the path leaves the workspace",
                    file=name,
                    suggested_fix="Use a relative path inside the repository.",
                )
            )
            continue
        kept[path] = content
    return kept


def safe_relative_path(name: str) -> PurePosixPath | None:
    """`name` as a relative path that stays inside the workspace, or None."""
    if not name or "\x00" in name or "\\" in name:
        return None
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or path == PurePosixPath("."):
        return None
    return path


def repository_path(filename: str, workspace: Path) -> str:
    """A tool's file name (absolute, or relative to the workspace) as a repository path."""
    path = Path(filename)
    if path.is_absolute():
        try:
            return path.resolve().relative_to(workspace.resolve()).as_posix()
        except ValueError:
            return filename
    return PurePosixPath(filename).as_posix()


def is_test_path(path: str) -> bool:
    parts = PurePosixPath(path).parts
    name = parts[-1] if parts else ""
    return (
        bool(TEST_FILE.match(name))
        or name == "conftest.py"
        or any(p in ("tests", "test") for p in parts[:-1])
    )
