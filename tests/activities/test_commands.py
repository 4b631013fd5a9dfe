"""Agents' commands in the sandbox: output, files kept, limits, and a result kept once."""

from __future__ import annotations

import json
import sys

import pytest
from temporalio.testing import ActivityEnvironment

from activities.commands import SandboxCommands
from activities.workspace import WorkspaceActivities
from agents.commands import COMMAND_TOOL, OUTPUT_BUDGET_CHARS
from agents.conversation import response_json
from agents.editor import EDIT_TOOL
from agents.protocol import ModelResponse, ToolUseBlock
from checks.sandbox import SandboxLimits
from core.contracts import ToolCallsInput, ToolCallsResult, TurnKey, Usage
from core.infrastructure.settings import SandboxSettings
from core.persistence import storage
from core.persistence.commands import recorded_command
from core.persistence.db import CommandResult, Database

KEY = TurnKey(run_id="r1", workflow_id="run-r1", task_id="backend", turn=1)
APP = "def add(a, b):\n    return a - b\n"
TESTS = "from app import add\n\n\ndef test_add():\n    assert add(2, 2) == 4\n"
PYTEST = "cd backend && python -m pytest -q -p no:cacheprovider"


async def seed(db: Database) -> None:
    seed_key = KEY.model_copy(update={"turn": 0})
    for path, content in {"backend/app.py": APP, "backend/test_app.py": TESTS}.items():
        await storage.write_artifact(
            db, seed_key, path=path, content=content, role="backend_engineer", model="m"
        )


async def record_turn(db: Database, key: TurnKey, *calls: tuple[str, dict[str, object]]) -> None:
    """The model call whose tool calls the activity runs, as `call_model` records it."""
    response = ModelResponse(
        id="msg_1",
        model="m",
        stop_reason="tool_use",
        usage=Usage(input_tokens=1, output_tokens=1),
        content=[
            ToolUseBlock(id=f"toolu_{i}", name=name, input=args)
            for i, (name, args) in enumerate(calls)
        ],
    )
    await storage.record_model_call(
        db, key, tenant="default", role="backend_engineer", provider="test", model="m",
        usage=response.usage, cost_usd=0.0, stop_reason="tool_use",
        response_json=response_json(response),
    )  # fmt: skip


async def run_tools(
    db: Database, role: str = "backend_engineer", **limits: float
) -> ToolCallsResult:
    batch = ToolCallsInput(key=KEY, role=role, model="m", **limits)  # type: ignore[arg-type]
    activities = WorkspaceActivities(db, SandboxSettings())
    result: ToolCallsResult = await ActivityEnvironment().run(activities.run_tool_calls, batch)
    return result


async def results_of_turn(db: Database) -> list[dict[str, object]]:
    context = await storage.turn_context(db, KEY.model_copy(update={"turn": 2}), [])
    [entry] = [e for e in context.earlier_results if e.turn == 1]
    results: list[dict[str, object]] = json.loads(entry.results)
    return results


async def test_a_command_sees_the_turns_edit_and_its_files_come_back(sqlite_db: Database) -> None:
    await seed(sqlite_db)
    await record_turn(
        sqlite_db,
        KEY,
        (EDIT_TOOL, {"command": "str_replace", "path": "backend/app.py",
                     "old_str": "a - b", "new_str": "a + b"}),
        (COMMAND_TOOL, {"command": f"{PYTEST} && echo made > report.txt"}),
        (COMMAND_TOOL, {"command": "printf '\\x00\\x01' > backend/blob.bin; exit 3"}),
    )  # fmt: skip
    result = await run_tools(sqlite_db)

    assert [(c.command.split(" &&")[0], c.exit_code) for c in result.commands] == [
        ("cd backend", 0),
        ("printf '\\x00\\x01' > backend/blob.bin; exit 3", 3),
    ]
    assert result.commands[0].changed == ["backend/report.txt"]
    assert result.tool_counts == {EDIT_TOOL: 1, COMMAND_TOOL: 2}
    assert {ref.path: ref.version for ref in result.written} == {
        "backend/app.py": 2, "backend/report.txt": 1,
    }  # fmt: skip
    files = {a.path: a.content for a in await storage.latest_artifacts(sqlite_db, "r1")}
    assert files["backend/report.txt"] == "made\n" and "backend/blob.bin" not in files
    results = await results_of_turn(sqlite_db)
    passed, binary = results[1]["content"], results[2]["content"]
    assert "1 passed" in str(passed) and "[exit code 0]" in str(passed)
    assert "[exit code 3]" in str(binary) and "backend/blob.bin (binary, 2 bytes)" in str(binary)
    assert not any(r["is_error"] for r in results)


async def test_a_retried_turn_returns_what_it_did_without_running_again(
    sqlite_db: Database,
) -> None:
    await seed(sqlite_db)
    await record_turn(
        sqlite_db, KEY, (COMMAND_TOOL, {"command": "python -c 'import uuid; print(uuid.uuid4())'"})
    )
    first = await run_tools(sqlite_db)
    again = await run_tools(sqlite_db)

    assert again == first
    async with sqlite_db.session() as session:
        rows = (await session.execute(CommandResult.__table__.select())).all()  # type: ignore[attr-defined]
    assert len(rows) == 1


async def test_a_command_kept_before_a_crash_is_applied_not_run_again(
    sqlite_db: Database,
) -> None:
    await seed(sqlite_db)
    command = "python -c 'import uuid; print(uuid.uuid4())' | tee backend/run-id.txt"

    async def run_once(crash: bool) -> str:
        try:
            async with storage.turn_workspace(
                sqlite_db, KEY, role="backend_engineer", model="m"
            ) as ws:
                runner = SandboxCommands(
                    sqlite_db, ws, limits=SandboxLimits(), backend="auto",
                    timeout_seconds=60, seconds_left=None, keep_changes=True,
                )  # fmt: skip
                outcome = await runner.run(command, tool_use_id="toolu_0")
                if crash:
                    raise RuntimeError("the worker died after the command")  # rolls back the turn
                return outcome.content
        except RuntimeError:
            return "crashed"

    assert await run_once(crash=True) == "crashed"
    kept = await recorded_command(sqlite_db, KEY, "toolu_0")
    assert kept is not None
    assert await run_once(crash=False) == kept.output
    files = {a.path: a.content for a in await storage.latest_artifacts(sqlite_db, "r1")}
    assert files["backend/run-id.txt"] in kept.output


async def test_reviewers_commands_change_nothing(sqlite_db: Database) -> None:
    await seed(sqlite_db)
    await record_turn(
        sqlite_db, KEY, (COMMAND_TOOL, {"command": "echo x > backend/app.py; cat backend/app.py"})
    )
    result = await run_tools(sqlite_db, role="code_reviewer")

    assert result.written == [] and result.commands[0].changed == []
    assert "backend/app.py (this role's commands change nothing)" in str(
        (await results_of_turn(sqlite_db))[0]["content"]
    )
    files = {a.path: a.content for a in await storage.latest_artifacts(sqlite_db, "r1")}
    assert files["backend/app.py"] == APP


async def test_limits_time_output_and_the_tasks_total(sqlite_db: Database) -> None:
    await seed(sqlite_db)
    await record_turn(
        sqlite_db,
        KEY,
        (COMMAND_TOOL, {"command": f"{sys.executable} -c \"print('a' * 100000 + 'END')\""}),
        (COMMAND_TOOL, {"command": "sleep 30"}),
        (COMMAND_TOOL, {"command": "echo never"}),
    )
    result = await run_tools(sqlite_db, command_timeout_seconds=2, command_seconds_left=3)

    long, timed_out, spent = (str(r["content"]) for r in await results_of_turn(sqlite_db))
    assert "[the command was stopped: it exceeded the 2 s wall-clock limit]" in timed_out
    assert result.commands[1].exit_code is None
    assert len(long) < OUTPUT_BUDGET_CHARS + 200 and "characters elided" in long
    assert long.rstrip().endswith("[exit code 0]") and "END" in long
    assert spent.startswith("Error: this task's time for commands is spent")
    assert len(result.commands) == 2


async def test_commands_are_refused_where_no_sandbox_runs(sqlite_db: Database) -> None:
    await seed(sqlite_db)
    await record_turn(sqlite_db, KEY, (COMMAND_TOOL, {"command": "echo hi"}))
    batch = ToolCallsInput(key=KEY, role="backend_engineer", model="m")
    result = await ActivityEnvironment().run(WorkspaceActivities(sqlite_db).run_tool_calls, batch)

    assert result.errors == 1 and result.commands == []
    [refused] = await results_of_turn(sqlite_db)
    assert refused["is_error"] and "run only in the sandbox" in str(refused["content"])


@pytest.mark.parametrize("args", [{}, {"command": ""}, {"command": "x" * 20_000}])
async def test_a_bad_command_is_a_tool_error(sqlite_db: Database, args: dict[str, object]) -> None:
    await seed(sqlite_db)
    await record_turn(sqlite_db, KEY, (COMMAND_TOOL, args))
    result = await run_tools(sqlite_db)
    assert result.errors == 1 and result.commands == []
    [error] = await results_of_turn(sqlite_db)
    assert error["is_error"] and str(error["content"]).startswith("Error:")


async def test_a_dependency_the_sandbox_lacks_is_a_warning_in_the_tool_result(
    sqlite_db: Database,
) -> None:
    await seed(sqlite_db)
    requirements = "fastapi\nno-such-package-here==1.0\n"
    await record_turn(
        sqlite_db,
        KEY,
        (
            EDIT_TOOL,
            {"command": "create", "path": "backend/requirements.txt", "file_text": requirements},
        ),
    )
    await run_tools(sqlite_db)

    [created] = await results_of_turn(sqlite_db)
    assert str(created["content"]).startswith("File created successfully: backend/requirements.txt")
    assert "`no-such-package-here==1.0` (line 2)" in str(created["content"])
    assert "not installed in the sandbox" in str(created["content"]) and not created["is_error"]


async def test_the_tests_an_agent_runs_load_only_the_plugins_its_files_name(
    sqlite_db: Database,
) -> None:
    """As in the checks: a stack plugin no file names (hypothesis here) is not loaded by the
    pytest an agent runs; one a file names (anyio) is."""
    await seed(sqlite_db)
    await storage.write_artifact(
        sqlite_db,
        KEY.model_copy(update={"turn": 0}),
        path="backend/test_async.py",
        content="import pytest\n\npytestmark = pytest.mark.anyio\n",
        role="backend_engineer",
        model="m",
    )
    await record_turn(
        sqlite_db,
        KEY,
        (COMMAND_TOOL, {"command": 'echo "addopts=[$PYTEST_ADDOPTS]"'}),
        (COMMAND_TOOL, {"command": f"{PYTEST} --co"}),
    )
    await run_tools(sqlite_db)

    [addopts, collected] = [str(r["content"]) for r in await results_of_turn(sqlite_db)]
    assert "-p no:hypothesispytest" in addopts and "-p no:schemathesis" in addopts
    assert "no:anyio" not in addopts
    # pytest takes the options: the project's test is collected, the run exits cleanly.
    assert "test_app.py::test_add" in collected and "[exit code 0]" in collected
