"""Checks run once per run and content: a later check of the same files reuses the stored
units (real tools, the real sandbox, a real database), a changed file runs again, and
another run never reuses anything."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

from activities.checks import CheckActivities
from checks.gates import CheckTimeouts
from checks.sandbox import SandboxSession
from core.contracts import ChecksInput, ChecksReport, TurnKey
from core.infrastructure.settings import SandboxSettings
from core.persistence import check_results, storage
from core.persistence.check_results import LOOKUP_CHUNK
from core.persistence.db import Database

APP = "def add(a, b):\n    return a + b\n"
TESTS = "from app import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
FILES = {"backend/app.py": APP, "backend/test_app.py": TESTS, "README.md": "# the service\n"}
REUSED = "reused from an earlier check of the same files in this run"


class Counted(CheckActivities):
    """The real activity, counting the sandbox sessions it opens."""

    opened = 0

    def _open_sandbox(self) -> contextlib.AbstractContextManager[SandboxSession]:
        self.opened += 1
        return super()._open_sandbox()


async def new_run(db: Database, files: dict[str, str], turn: int = 0, run_id: str = "") -> str:
    run_id = run_id or uuid.uuid4().hex
    key = TurnKey(run_id=run_id, workflow_id=f"run-{run_id}", task_id="backend", turn=turn)
    for path, content in files.items():
        await storage.write_artifact(
            db, key, path=path, content=content, role="backend_engineer", model="test"
        )
    return run_id


def checks(db: Database, tests_seconds: float = 60.0) -> Counted:
    return Counted(
        db, SandboxSettings(_env_file=None), timeouts=CheckTimeouts(tests_seconds=tests_seconds)
    )


async def rows(db: Database, run_id: str) -> dict[str, int]:
    kinds = ("lint", "security", "bandit", "tests", "test-command")
    counts = {kind: await check_results.count_results(db, run_id, kind) for kind in kinds}
    return {kind: n for kind, n in counts.items() if n}


def reuse_note(report: ChecksReport) -> str:
    return next((n for n in report.notes if n.startswith(REUSED)), "")


async def test_a_second_check_of_the_same_files_runs_no_tool(sqlite_db: Database) -> None:
    run_id = await new_run(sqlite_db, FILES)
    activity = checks(sqlite_db)
    request = ChecksInput(run_id=run_id, gate="code_review")

    first = await activity.run_checks(request)
    assert await rows(sqlite_db, run_id) == {"lint": 2, "tests": 1}
    second = await activity.run_checks(request)

    assert await rows(sqlite_db, run_id) == {"lint": 2, "tests": 1}  # nothing ran again
    assert activity.opened == 1  # the second check needed no sandbox
    assert (first.tests_passed, first.tests_failed) == (second.tests_passed, second.tests_failed)
    assert (first.tests_passed, first.tests_failed) == (1, 0)
    assert first.findings == second.findings
    assert reuse_note(first) == ""
    assert reuse_note(second) == f"{REUSED}: lint of 2 unchanged file(s); the tests of backend"
    assert second.network_isolated == first.network_isolated


async def test_a_changed_file_runs_the_tests_again_and_lints_only_itself(
    sqlite_db: Database,
) -> None:
    run_id = await new_run(sqlite_db, FILES)
    activity = checks(sqlite_db)
    request = ChecksInput(run_id=run_id, gate="code_review")
    await activity.run_checks(request)

    await new_run(sqlite_db, {"backend/app.py": "def add(a, b):\n    return a - b\n"}, 1, run_id)
    changed = await activity.run_checks(request)

    assert await rows(sqlite_db, run_id) == {"lint": 3, "tests": 2}
    assert (changed.tests_passed, changed.tests_failed) == (0, 1)
    assert reuse_note(changed) == f"{REUSED}: lint of 1 unchanged file(s)"
    assert activity.opened == 2


async def test_another_run_with_the_same_files_reuses_nothing(sqlite_db: Database) -> None:
    activity = checks(sqlite_db)
    first_run, second_run = await new_run(sqlite_db, FILES), await new_run(sqlite_db, FILES)

    first = await activity.run_checks(ChecksInput(run_id=first_run, gate="code_review"))
    second = await activity.run_checks(ChecksInput(run_id=second_run, gate="code_review"))

    assert reuse_note(first) == reuse_note(second) == ""
    assert await rows(sqlite_db, second_run) == {"lint": 2, "tests": 1}
    assert activity.opened == 2


async def test_a_tasks_own_checks_and_the_gate_share_the_tests(sqlite_db: Database) -> None:
    run_id = await new_run(sqlite_db, FILES)
    activity = checks(sqlite_db)

    own = await activity.run_checks(
        ChecksInput(run_id=run_id, gate="code_review", paths=["backend"])
    )
    gate = await activity.run_checks(ChecksInput(run_id=run_id, gate="code_review"))
    security = await activity.run_checks(ChecksInput(run_id=run_id, gate="security_review"))

    assert own.tests_passed == gate.tests_passed == 1
    assert "the tests of backend" in reuse_note(gate)
    assert reuse_note(security) == ""  # its scan had not run yet
    assert await rows(sqlite_db, run_id) == {"lint": 2, "security": 2, "tests": 1}


async def test_both_gates_of_a_change_run_share_the_repository_tests(
    sqlite_db: Database,
) -> None:
    run_id = await new_run(sqlite_db, FILES)
    activity = checks(sqlite_db)
    command = "cd backend && python -m pytest -q -p no:cacheprovider"

    code = await activity.run_checks(
        ChecksInput(run_id=run_id, gate="code_review", test_command=command)
    )
    security = await activity.run_checks(
        ChecksInput(run_id=run_id, gate="security_review", test_command=command)
    )

    passed = f"the repository's test command `{command}` passed"
    assert passed in code.notes and passed in security.notes
    assert reuse_note(code) == ""
    assert reuse_note(security) == f"{REUSED}: the repository's test command `{command}`"
    assert security.network_isolated == code.network_isolated
    assert await rows(sqlite_db, run_id) == {"lint": 2, "security": 2, "test-command": 1}
    assert activity.opened == 1


async def test_checks_running_at_once_share_one_test_run(sqlite_db: Database) -> None:
    run_id = await new_run(sqlite_db, FILES)
    activity = checks(sqlite_db)
    request = ChecksInput(run_id=run_id, gate="code_review")

    one, other = await asyncio.gather(activity.run_checks(request), activity.run_checks(request))

    assert one.tests_passed == other.tests_passed == 1
    assert ["the tests of backend" in reuse_note(r) for r in (one, other)].count(True) == 1
    assert await rows(sqlite_db, run_id) == {"lint": 2, "tests": 1}
    assert activity.opened == 1


async def test_a_test_run_cut_off_by_a_limit_is_not_kept(sqlite_db: Database) -> None:
    hang = "import time\n\n\ndef test_hang():\n    time.sleep(60)\n"
    run_id = await new_run(sqlite_db, {"svc/test_hang.py": hang})
    activity = checks(sqlite_db, tests_seconds=2)
    request = ChecksInput(run_id=run_id, gate="code_review")

    for _ in range(2):
        report = await activity.run_checks(request)
        [killed] = report.blocking
        assert killed.message.startswith("test run killed: exceeded the 2 s wall-clock limit")
        assert "the tests of" not in reuse_note(report)
    assert await rows(sqlite_db, run_id) == {"lint": 1}
    assert activity.opened == 2


async def test_stored_results_belong_to_one_run_and_keep_the_first(any_db: Database) -> None:
    keys = [f"{n:064x}" for n in range(LOOKUP_CHUNK * 2 + 7)]  # more than one statement
    await check_results.store_results(any_db, "run-a", "lint", {k: f"a{k}" for k in keys})
    await check_results.store_results(any_db, "run-a", "lint", {keys[0]: "changed"})
    await check_results.store_results(any_db, "run-b", "lint", {keys[1]: "b"})

    stored = await check_results.stored_results(any_db, "run-a", "lint", keys)
    assert stored == {k: f"a{k}" for k in keys}
    assert await check_results.stored_results(any_db, "run-a", "tests", keys) == {}
    assert await check_results.stored_results(any_db, "run-b", "lint", keys) == {keys[1]: "b"}
    assert await check_results.count_results(any_db, "run-a") == len(keys)


PLAIN = """\
import sys

# Spelled in pieces: a file that names a plugin gets it loaded.
LOADED_BY_PLUGINS = ("_hypo" "thesis_pytestplugin", "hypo" "thesis", "schema" "thesis", "any" "io.pytest_plugin")


def test_plain():
    assert [name for name in LOADED_BY_PLUGINS if name in sys.modules] == []
"""
GIVEN = """\
import sys

from hypothesis import given, strategies


@given(strategies.integers())
def test_given(n):
    assert "_hypothesis_pytestplugin" in sys.modules
"""


async def test_plugins_no_file_names_stay_unloaded(sqlite_db: Database) -> None:
    activity = checks(sqlite_db)
    plain = await new_run(sqlite_db, {"svc/test_plain.py": PLAIN})
    named = await new_run(sqlite_db, {"svc/test_given.py": GIVEN})

    without = await activity.run_checks(ChecksInput(run_id=plain, gate="code_review"))
    with_it = await activity.run_checks(ChecksInput(run_id=named, gate="code_review"))

    assert (without.tests_passed, without.tests_failed) == (1, 0), without.findings
    assert (with_it.tests_passed, with_it.tests_failed) == (1, 0), with_it.findings


def test_the_warm_up_leaves_pytests_rewritten_plugins_compiled() -> None:
    import hypothesis

    from checks.warmup import warm_pytest

    warm_pytest()
    cache = Path(hypothesis.__file__).parent / "__pycache__"
    assert list(cache.glob("__init__*-pytest-*.pyc"))
