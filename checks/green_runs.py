"""An agent's own green run of a project's whole test suite, kept for the checks to reuse.

Done means green: an engineer runs its tests until they pass, then its own checks (and the
gates after them) run the same suite on the same files again. When the engineer's command
was one project's whole suite (`cd backend && python -m pytest -q`: the sandbox's
interpreter, flags that select no tests) and every test passed, its outcome is stored as
that project's `tests` unit of the run (`checks.cache`), under the key a check computes for
the same files. A check that finds the files unchanged reuses it; one file changed since,
anywhere in the workspace, and the check runs the suite itself. A command that selects
tests (`-k`, `-m`, paths), fails, collects nothing or is cut off by a limit is never stored.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from checks.cache import RunCheckCache, workspace_digest
from checks.sandbox import SandboxResult
from checks.tests import TEST_TIMEOUT_SECONDS, project_outcome, tests_unit_key
from checks.workspace import checkable, safe_relative_path
from core.contracts import ChecksReport, GateKind
from core.persistence.db import Database

PYTHON = re.compile(r"python(3(\.\d+)?)?")
"""The interpreter by name: the sandbox's PATH finds the checks' own first."""
NEUTRAL_FLAGS = re.compile(r"-q+|-v+|-x|-s|--tb=\w+|-r\w+|--no-header|--disable-warnings")
"""Flags that change what pytest prints or when it stops, not which tests it runs: a run
that passed with them passes without them."""
NEUTRAL_PAIRS = {("-p", "no:cacheprovider")}


def whole_suite_folder(command: str) -> PurePosixPath | None:
    """The folder whose whole pytest suite `command` runs, or None when it does anything
    else: `[cd FOLDER &&] (pytest | python -m pytest) [neutral flags]`."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    folder = PurePosixPath(".")
    if len(words) > 3 and words[0] == "cd" and words[2] == "&&":
        path = safe_relative_path(words[1])
        if path is None:
            return None
        folder, words = path, words[3:]
    if words[:1] == ["pytest"]:
        flags = words[1:]
    elif len(words) >= 3 and PYTHON.fullmatch(words[0]) and words[1:3] == ["-m", "pytest"]:
        flags = words[3:]
    else:
        return None
    return folder if _neutral(flags) else None


def _neutral(flags: list[str]) -> bool:
    at = 0
    while at < len(flags):
        if tuple(flags[at : at + 2]) in NEUTRAL_PAIRS:
            at += 2
        elif NEUTRAL_FLAGS.fullmatch(flags[at]):
            at += 1
        else:
            return False
    return True


def junit_options(junit: Path) -> str:
    """What `PYTEST_ADDOPTS` adds so the run leaves the report a check reads."""
    return f"-o junit_family=xunit1 --junitxml={junit}"


@dataclass(frozen=True)
class GreenRun:
    """A whole suite that passed: the project and its outcome as a check stores it."""

    project: str
    outcome: str


def green_run(folder: PurePosixPath, result: SandboxResult, junit: Path) -> GreenRun | None:
    """The run's outcome if it may stand for the project's check: it ended by itself with
    exit code 0 and its report counts passed tests and nothing else to report."""
    if result.limit_reason is not None or result.returncode != 0 or not junit.is_file():
        return None
    outcome = project_outcome(folder, result, junit, ChecksReport(gate=GateKind.CODE_REVIEW.value))
    part = outcome.part
    if part.tests_failed or not part.tests_passed or part.findings or part.notes:
        return None
    return GreenRun(folder.as_posix(), outcome.model_dump_json())


async def keep_green_run(db: Database, run_id: str, files: dict[str, str], run: GreenRun) -> None:
    """Store the run as its project's `tests` unit on `files`, the workspace it ran on."""
    contents = {
        path.as_posix(): text
        for path, text in checkable(files, ChecksReport(gate=GateKind.CODE_REVIEW.value)).items()
    }
    key = tests_unit_key(
        PurePosixPath(run.project), workspace_digest(contents), TEST_TIMEOUT_SECONDS
    )
    await RunCheckCache(db, run_id).put("tests", {key: run.outcome})
