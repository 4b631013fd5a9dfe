"""The offline backend engineer uses the loop in a whole `sdlc` run, through the real sandbox
and ledger: it writes its code (with one deliberate defect) and tests with the editor, runs
the tests, reads the failure, fixes it with an exact-string edit, re-runs them green and
ends; the code review gate then passes at its first review, and `orchestrator status`
shows the calls."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from agents.commands import COMMAND_TOOL
from agents.editor import EDIT_TOOL
from core.contracts import RunStatus
from core.persistence import storage
from core.persistence.db import Database
from core.services.export import export_repository
from offline import OfflineProvider
from offline.run_and_fix import TEST_COMMAND
from tests.helpers import make_plan, run_generated_tests, run_to_end
from tests.processes import cli, joining
from tests.workflows.recorded_turns import command_rows, recorded_turns


def readme_test_command(readme: str) -> list[str]:
    """The command under the README's `## Test` heading, with this interpreter as `python`."""
    section = readme.split("## Test", 1)[1]
    block = re.search(r"```bash\n(.+?)\n```", section, re.S)
    assert block is not None, section
    argv = shlex.split(block.group(1).strip())
    assert argv[0] == "python", argv
    return [sys.executable, *argv[1:]]


async def test_the_engineer_runs_its_tests_fixes_the_failure_and_the_gate_passes_first_time(
    dev_env: WorkflowEnvironment, sqlite_db: Database, tmp_path: Path
) -> None:
    plan = make_plan()
    workflow_id = f"run-{plan.run_id}"
    state = await run_to_end(dev_env.client, sqlite_db, OfflineProvider(), plan)
    assert state.status == RunStatus.COMPLETED, state.error

    turns = await recorded_turns(sqlite_db, workflow_id, "backend")
    assert [t.steps for t in turns] == [
        ["create"] * 5 + ["post_note"],  # code and tests, and the API contract to the frontend
        [COMMAND_TOOL],
        ["str_replace"],
        [COMMAND_TOOL],
        ["end"],
    ]
    assert [t.stop_reason for t in turns] == ["tool_use"] * 4 + ["end_turn"]
    assert all(not r.is_error for t in turns for r in t.results.values())
    [failing], [fix], [passing] = turns[1].commands(), turns[2].calls, turns[3].commands()
    assert failing.input == passing.input == {"command": TEST_COMMAND}
    failed = turns[1].results[failing.id].content
    assert failed.endswith("[exit code 1]")
    assert "FAILED tests/test_app.py::test_delete_removes_the_record" in failed
    assert "assert 200 == 204" in failed and "1 failed" in failed
    # the fix is the one the failure points at, made where the wrong status is
    assert fix.input == {
        "command": "str_replace",
        "path": "backend/app.py",
        "old_str": "    return Response(status_code=status.HTTP_200_OK)",
        "new_str": "    return Response(status_code=status.HTTP_204_NO_CONTENT)",
    }
    assert turns[2].results[fix.id].content == (
        "Successfully replaced text at exactly one location."
    )
    passed = turns[3].results[passing.id].content
    assert passed.endswith("[exit code 0]") and " passed" in passed and "failed" not in passed

    # each command is kept once under its tool-call key, with the output the agent read
    rows = await command_rows(sqlite_db, workflow_id, "backend")
    assert [(r.turn, r.tool_use_id, r.exit_code) for r in rows] == [
        (1, failing.id, 1),
        (3, passing.id, 0),
    ]
    assert [r.output for r in rows] == [failed, passed]

    backend = state.task("backend")
    assert [(c.turn, c.command, c.exit_code) for c in backend.commands] == [
        (1, TEST_COMMAND, 1),
        (3, TEST_COMMAND, 0),
    ]
    assert backend.tool_counts == {EDIT_TOOL: 6, COMMAND_TOOL: 2, "post_note": 1}
    assert backend.attempt == 0
    summary = backend.summary
    assert "Edited backend/app.py in place (1 edit(s))." in summary
    ran = f"Ran `{TEST_COMMAND}` (exit 1, 1 failed, 15 passed); then `{TEST_COMMAND}` (exit 0, "
    assert ran + "16 passed)." in summary

    # the code review gate passes at its first review: one verdict, no revision
    review = state.task("code_review")
    assert [v.passed for v in review.verdicts] == [True]
    versions = [
        v for v in await storage.all_artifact_versions(sqlite_db, plan.run_id)
        if v.path == "backend/app.py"
    ]  # fmt: skip
    assert [(v.turn, v.version) for v in versions] == [(0, 1), (2, 2)]

    # the delivered backend's tests pass when run as its README says
    out = tmp_path / "repo"
    await export_repository(sqlite_db, plan.run_id, workflow_id, out)
    assert "HTTP_200_OK" not in (out / "backend/app.py").read_text()
    readme = (out / "backend/README.md").read_text()
    assert readme_test_command(readme) == [sys.executable, "-m", "pytest", "-q"]
    suite = run_generated_tests(out / "backend")  # that command, with no cache left behind
    assert suite.returncode == 0, suite.stdout + suite.stderr
    assert "16 passed" in suite.stdout

    # `orchestrator status` shows the commands and the tool calls, task by task
    settings = joining(
        dev_env.client.service_client.config.target_host,
        dev_env.client.namespace,
        f"sqlite+aiosqlite:///{tmp_path / 'orchestrator.db'}",
        tmp_path / "data",
    )
    shown = cli("status", plan.run_id, env={**settings, "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert (
        "backend: commands 2 (last exit 0); tool calls: str_replace_based_edit_tool 6, bash 2, "
        "post_note 1"
    ) in shown.stdout
    assert "frontend: tool calls: write_file 2" in shown.stdout
