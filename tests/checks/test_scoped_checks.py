"""A task's own checks: `code_review` narrowed to some folders lints and tests only them,
in the real sandbox, while the whole workspace stays checked out for the tests to read."""

from __future__ import annotations

import uuid
from pathlib import PurePosixPath

import pytest

from activities.checks import CheckActivities
from checks.tests import find_test_projects
from checks.workspace import Scope, check_scope
from core.contracts import ChecksInput, ChecksReport, GateKind, Severity, TurnKey
from core.infrastructure.settings import SandboxSettings
from core.persistence import storage
from core.persistence.db import Database

GREEN_APP = "def add(a, b):\n    return a + b\n"
GREEN_TESTS = "from app import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
RED_APP = "def mean(values):\n    return total(values) / len(values)\n"
RED_TESTS = "from stats import mean\n\n\ndef test_mean():\n    assert mean([1, 3]) == 2\n"

WORKSPACE = {
    "backend/app.py": GREEN_APP,
    "backend/test_app.py": GREEN_TESTS,
    "analytics/stats.py": RED_APP,
    "analytics/test_stats.py": RED_TESTS,
    "README.md": "# the repository\n",
}


def paths(*names: str) -> list[PurePosixPath]:
    return [PurePosixPath(n) for n in names]


@pytest.mark.parametrize(
    ("asked", "scope"),
    [
        ([], ()),
        (["."], ()),
        (["backend/", "analytics", "backend"], tuple(paths("analytics", "backend"))),
        (["backend", ""], ()),  # an empty path is the whole workspace
        (
            ["../etc", "/etc", "backend"],
            tuple(paths("backend")),
        ),  # leaving the workspace is dropped
    ],
)
def test_the_folders_asked_for_become_a_scope(asked: list[str], scope: Scope) -> None:
    assert check_scope(asked) == scope


def test_test_projects_are_the_scopes_own() -> None:
    files = paths(
        "pyproject.toml",
        "backend/app.py",
        "backend/tests/test_app.py",
        "analytics/svc/setup.cfg",
        "analytics/svc/test_stats.py",
        "frontend/test_page.py",
    )
    assert find_test_projects(files) == paths(".")
    # a repository-wide project runs from the scope's folder, not from the top
    assert find_test_projects(files, paths("backend")) == paths("backend")
    # a project inside the scope runs from its own root
    assert find_test_projects(files, paths("analytics")) == paths("analytics/svc")
    assert find_test_projects(files, paths("docs")) == []


async def own_checks(db: Database, folders: list[str]) -> ChecksReport:
    """Store the workspace as a fresh run's files and run the checks of `folders`."""
    run_id = uuid.uuid4().hex
    key = TurnKey(run_id=run_id, workflow_id=f"run-{run_id}", task_id="backend", turn=0)
    for path, content in WORKSPACE.items():
        await storage.write_artifact(
            db, key, path=path, content=content, role="backend_engineer", model="test"
        )
    activities = CheckActivities(db, SandboxSettings(_env_file=None))
    request = ChecksInput(run_id=run_id, gate=GateKind.CODE_REVIEW.value, paths=folders)
    return await activities.run_checks(request)


async def test_the_checks_of_a_green_folder_ignore_a_red_sibling(sqlite_db: Database) -> None:
    report = await own_checks(sqlite_db, ["backend"])
    assert (report.tests_passed, report.tests_failed) == (1, 0)
    assert report.blocking == []
    assert not any(f.file and f.file.startswith("analytics") for f in report.findings)


async def test_the_checks_of_a_red_folder_name_its_failures(sqlite_db: Database) -> None:
    report = await own_checks(sqlite_db, ["analytics"])
    assert (report.tests_passed, report.tests_failed) == (0, 1)
    found = {(f.source, f.rule, f.file) for f in report.blocking}
    assert ("ruff", "F821", "analytics/stats.py") in found
    assert ("pytest", "test-failure", "analytics/test_stats.py") in found
    assert all(f.severity == Severity.HIGH for f in report.blocking)
    # the whole workspace: both folders
    everything = await own_checks(sqlite_db, [])
    assert (everything.tests_passed, everything.tests_failed) == (1, 1)


async def test_a_folder_without_files_is_not_linted(sqlite_db: Database) -> None:
    report = await own_checks(sqlite_db, ["docs"])
    # ruff would report the missing folder as an E902 error that blocks
    assert report.findings == []
    assert "lint did not run" in " ".join(report.notes)
    assert "no test files (test_*.py, *_test.py) in docs" in " ".join(report.notes)
