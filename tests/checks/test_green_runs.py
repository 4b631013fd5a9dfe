"""An engineer's green run of a whole suite stands for the checks' run of it on the same files
(the real sandbox, real pytest, a real database); anything less is never stored."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from temporalio.testing import ActivityEnvironment

from activities.checks import CheckActivities
from activities.workspace import WorkspaceActivities
from agents.commands import COMMAND_TOOL
from checks.green_runs import whole_suite_folder
from core.contracts import ChecksInput, ChecksReport, ToolCallsInput
from core.infrastructure.settings import SandboxSettings
from core.persistence import check_results, storage
from core.persistence.db import Database
from tests.activities.test_commands import KEY, PYTEST, record_turn, results_of_turn
from tests.checks.test_check_reuse import REUSED, reuse_note

FIXED = "def add(a, b):\n    return a + b\n"
BROKEN = "def add(a, b):\n    return a - b\n"
TESTS = (
    "from app import add\n\n\ndef test_add():\n    assert add(2, 2) == 4\n\n\n"
    "def test_zero():\n    assert add(0, 0) == 0\n"
)


@pytest.mark.parametrize(
    ("command", "folder"),
    [
        (PYTEST, "backend"),
        ("cd backend && pytest", "backend"),
        ("python3 -m pytest -x --tb=short -rA -vv", "."),
        ("pytest", "."),
    ],
)
def test_a_whole_suite_is_recognised(command: str, folder: str) -> None:
    assert whole_suite_folder(command) == PurePosixPath(folder)


@pytest.mark.parametrize(
    "command",
    [
        "cd backend && python -m pytest -q -k add",  # selects tests
        "cd backend && python -m pytest -m slow",
        "python -m pytest backend/test_app.py",
        "python -m pytest backend",  # another rootdir than the check's
        "cd ../elsewhere && pytest",
        "cd backend; pytest",
        "cd backend && pytest && rm -rf data",
        "cd backend && pytest -p no:asyncio",  # another plugin set
        "PYTEST_ADDOPTS=-x pytest",
        "/usr/bin/python3 -m pytest",  # not the sandbox's interpreter by name
        "pytest 'unclosed",
    ],
)
def test_anything_else_is_not(command: str) -> None:
    assert whole_suite_folder(command) is None


async def engineer_runs(db: Database, app: str, command: str) -> str:
    """The backend engineer's turn: its files, then `command` in the sandbox."""
    seed_key = KEY.model_copy(update={"turn": 0})
    files = {"backend/app.py": app, "backend/test_app.py": TESTS, "README.md": "# adder\n"}
    for path, content in files.items():
        await storage.write_artifact(
            db, seed_key, path=path, content=content, role="backend_engineer", model="m"
        )
    await record_turn(db, KEY, (COMMAND_TOOL, {"command": command}))
    batch = ToolCallsInput(key=KEY, role="backend_engineer", model="m")
    activities = WorkspaceActivities(db, SandboxSettings(_env_file=None))
    await ActivityEnvironment().run(activities.run_tool_calls, batch)
    return KEY.run_id


async def check(db: Database, run_id: str) -> ChecksReport:
    request = ChecksInput(run_id=run_id, gate="code_review", paths=["backend"])
    return await CheckActivities(db, SandboxSettings(_env_file=None)).run_checks(request)


async def test_the_own_check_reuses_the_engineers_green_run_of_the_same_files(
    sqlite_db: Database,
) -> None:
    run_id = await engineer_runs(sqlite_db, FIXED, PYTEST)
    assert await check_results.count_results(sqlite_db, run_id, "tests") == 1

    report = await check(sqlite_db, run_id)

    assert (report.tests_passed, report.tests_failed, report.findings) == (2, 0, [])
    assert reuse_note(report) == f"{REUSED}: the tests of backend"
    assert await check_results.count_results(sqlite_db, run_id, "tests") == 1


async def test_a_changed_file_after_the_green_run_runs_the_suite_again(
    sqlite_db: Database,
) -> None:
    run_id = await engineer_runs(sqlite_db, FIXED, PYTEST)
    later = KEY.model_copy(update={"task_id": "frontend", "turn": 3})
    await storage.write_artifact(
        sqlite_db, later, path="frontend/index.html", content="<h1>adder</h1>\n",
        role="frontend_engineer", model="m",
    )  # fmt: skip

    report = await check(sqlite_db, run_id)

    assert (report.tests_passed, report.tests_failed) == (2, 0)
    assert "the tests of backend" not in reuse_note(report)
    assert await check_results.count_results(sqlite_db, run_id, "tests") == 2


@pytest.mark.parametrize(
    ("app", "command"),
    [(BROKEN, PYTEST), (FIXED, f"{PYTEST} -k zero"), (FIXED, f"{PYTEST} && false")],
    ids=["failing", "a-selection", "not-only-pytest"],
)
async def test_a_run_that_is_not_a_whole_green_suite_is_not_kept(
    sqlite_db: Database, app: str, command: str
) -> None:
    run_id = await engineer_runs(sqlite_db, app, command)
    assert await check_results.count_results(sqlite_db, run_id, "tests") == 0

    report = await check(sqlite_db, run_id)

    assert "the tests of backend" not in reuse_note(report)
    passed = app == FIXED
    assert (report.tests_passed, report.tests_failed) == ((2, 0) if passed else (1, 1))


async def test_the_agent_never_sees_the_report_written_for_the_checks(
    sqlite_db: Database,
) -> None:
    run_id = await engineer_runs(sqlite_db, FIXED, "cd backend && python -m pytest")
    [result] = await results_of_turn(sqlite_db)

    assert "2 passed" in str(result["content"])
    assert "generated xml file" not in str(result["content"])
    assert await check_results.count_results(sqlite_db, run_id, "tests") == 1
