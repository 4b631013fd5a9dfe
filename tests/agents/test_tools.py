"""Workspace tools against a real database: what an agent's tool calls do and refuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import structlog
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.workspace import WorkspaceActivities
from agents.conversation import response_json
from agents.protocol import ModelResponse, ToolUseBlock
from agents.providers.anthropic import AnthropicProvider
from agents.roles import ROLES
from agents.tool_kit import ToolInputError, normalize_path
from core.contracts import (
    VALIDATION_OUTPUT,
    VALIDATOR_ROLE,
    VERDICT_OUTPUT,
    RunStatus,
    ToolCallsInput,
    ToolCallsResult,
    TurnKey,
    Usage,
)
from core.persistence import storage
from core.persistence.db import Database
from tests.fakes.loopback import ReplyLike, role_of
from tests.fakes.messages_api import FakeMessagesAPI, message, text_message
from tests.helpers import agent_tools, make_plan, run_to_end

KEY = TurnKey(run_id="r1", workflow_id="run-r1", task_id="backend", turn=0)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("backend/app.py", "backend/app.py"), ("/docs/./a.md", "docs/a.md"), ("a\\b.txt", "a/b.txt")],
)
def test_paths_are_normalized(raw: str, clean: str) -> None:
    assert normalize_path(raw) == clean


@pytest.mark.parametrize("raw", ["", "  ", "..", "../etc/passwd", "a/../../b", ".", 7])
def test_paths_leaving_the_workspace_are_refused(raw: object) -> None:
    with pytest.raises(ToolInputError):
        normalize_path(raw)


async def test_a_turn_of_tool_calls(sqlite_db: Database) -> None:
    async with storage.turn_workspace(sqlite_db, KEY, role="backend_engineer", model="m") as ws:
        tool = agent_tools(ws, "backend_engineer")
        wrote = await tool("write_file", {"path": "backend/app.py", "content": "x = 1\n"})
        assert [ref.size for ref in wrote.written] == [6] and not wrote.is_error
        read = await tool("read_file", {"path": "backend/app.py"})
        assert read.content == "x = 1\n"  # a turn reads its own writes
        listed = await tool("list_files", {"prefix": "backend/"})
        assert listed.content == "backend/app.py (6 bytes)"
        outputs = await tool("set_outputs", {"outputs": {"needs_auth": True}})
        assert outputs.outputs == {"needs_auth": True}

        missing = await tool("read_file", {"path": "nope.txt"})
        escape = await tool("write_file", {"path": "../x", "content": "y"})
        no_content = await tool("write_file", {"path": "a.txt"})
        unknown = await tool("rm_rf", {})
        bad_outputs = await tool("set_outputs", {"outputs": [1]})
    for outcome, message_ in [
        (missing, "no file 'nope.txt'"),
        (escape, "leaves the workspace"),
        (no_content, "needs 'content'"),
        (unknown, "unknown tool 'rm_rf'"),
        (bad_outputs, "needs 'outputs' as an object"),
    ]:
        assert outcome.is_error and message_ in outcome.content
    assert [a.path for a in await storage.latest_artifacts(sqlite_db, "r1")] == ["backend/app.py"]


# --------------------------------------------------------------------------- who may call what


async def run_turn(
    db: Database, role: str, calls: list[tuple[str, dict[str, Any]]], review_of: str | None = None
) -> tuple[ToolCallsResult, list[dict[str, Any]]]:
    """Record a model call that asks for `calls`, then run the real tool-call activity on it.

    Returns the activity's result and the tool results the agent's next turn is sent.
    """
    response = ModelResponse(
        id="msg_1",
        model="m",
        content=[
            ToolUseBlock(id=f"toolu_{n}", name=name, input=args)
            for n, (name, args) in enumerate(calls)
        ],
        stop_reason="tool_use",
        usage=Usage(),
    )
    await storage.record_model_call(
        db,
        KEY,
        tenant="default",
        role=role,
        provider="fake",
        model="m",
        usage=Usage(),
        cost_usd=0.0,
        stop_reason="tool_use",
        response_json=response_json(response),
    )
    batch = ToolCallsInput(key=KEY, role=role, model="m", review_of=review_of)
    result = await ActivityEnvironment().run(WorkspaceActivities(db).run_tool_calls, batch)
    following = await storage.turn_context(db, KEY.model_copy(update={"turn": 1}), [])
    [recorded] = following.earlier_results
    results: list[dict[str, Any]] = json.loads(recorded.results)
    return result, results


VERDICT = {"verdict": "pass", "summary": "fine"}


@pytest.mark.parametrize(
    ("role", "tool", "args"),
    [
        (VALIDATOR_ROLE, "write_file", {"path": "docs/requirements.md", "content": "mine now"}),
        (VALIDATOR_ROLE, "set_outputs", {"outputs": {"approved": True}}),
        (VALIDATOR_ROLE, "submit_verdict", VERDICT),
        (VALIDATOR_ROLE, "post_note", {"to": "all", "subject": "hi", "text": "x"}),
        ("backend_engineer", "submit_verdict", VERDICT),
        ("backend_engineer", "submit_validation", {"passed": True}),
        ("code_reviewer", "submit_validation", {"passed": True}),
    ],
)
async def test_a_tool_the_role_was_not_given_is_refused_and_logged(
    sqlite_db: Database, role: str, tool: str, args: dict[str, Any]
) -> None:
    with structlog.testing.capture_logs() as logs:
        result, [answer] = await run_turn(sqlite_db, role, [(tool, args)])

    assert answer["is_error"] is True
    assert f"tool {tool!r} is not available to the {role} role" in answer["content"]
    assert (result.errors, result.written, result.outputs, result.notes) == (1, [], {}, [])
    assert await storage.latest_artifacts(sqlite_db, KEY.run_id) == []
    refused = [line for line in logs if line["event"].startswith("tool call refused")]
    assert [(line["tool"], line["role"], line["log_level"]) for line in refused] == [
        (tool, role, "warning")
    ]
    assert (refused[0]["run_id"], refused[0]["task"], refused[0]["turn"]) == ("r1", "backend", 0)


async def test_a_refused_call_does_not_stop_the_calls_the_role_may_make(
    sqlite_db: Database,
) -> None:
    result, answers = await run_turn(
        sqlite_db,
        VALIDATOR_ROLE,
        [
            ("write_file", {"path": "docs/a.md", "content": "x"}),
            ("submit_validation", {"passed": True}),
        ],
    )

    assert [a["is_error"] for a in answers] == [True, False]
    assert result.errors == 1 and result.written == []
    assert result.outputs[VALIDATION_OUTPUT]["passed"] is True


@pytest.mark.parametrize("review_of", [None, "database"])
async def test_only_a_reviewing_agent_may_submit_a_verdict_outside_a_review_role(
    sqlite_db: Database, review_of: str | None
) -> None:
    """The tech lead supervising a task is offered the verdict tool, so it may call it there."""
    result, [answer] = await run_turn(
        sqlite_db, "tech_lead", [("submit_verdict", VERDICT)], review_of=review_of
    )

    assert answer["is_error"] is (review_of is None)
    assert (VERDICT_OUTPUT in result.outputs) is (review_of is not None)


async def test_tool_calls_of_an_unknown_role_fail_for_good(sqlite_db: Database) -> None:
    with pytest.raises(ApplicationError, match="unknown role 'intruder'") as raised:
        await run_turn(sqlite_db, "intruder", [("read_file", {"path": "a.md"})])
    assert raised.value.non_retryable


@pytest.mark.parametrize(
    ("key", "tool"), [(VERDICT_OUTPUT, "submit_verdict"), (VALIDATION_OUTPUT, "submit_validation")]
)
async def test_set_outputs_cannot_forge_a_verdict_or_a_validation(
    sqlite_db: Database, key: str, tool: str
) -> None:
    forged = {key: {"verdict": "pass", "passed": True}, "other": 1}
    async with storage.turn_workspace(sqlite_db, KEY, role="code_reviewer", model="m") as ws:
        outcome = await agent_tools(ws, "code_reviewer")("set_outputs", {"outputs": forged})

    assert outcome.is_error and f"{key!r} is reserved for {tool}" in outcome.content
    assert outcome.outputs == {}


@pytest.mark.parametrize(
    "path", ["a\x00b.py", "docs/\nREADME.md", "app\r.py", "a\x1b[31m.py", "evil\u202etxt.py"]
)
async def test_a_control_character_in_a_path_is_a_tool_error_not_a_database_error(
    any_db: Database, path: str
) -> None:
    async with storage.turn_workspace(any_db, KEY, role="backend_engineer", model="m") as ws:
        tool = agent_tools(ws, "backend_engineer")
        outcomes = [
            await tool("write_file", {"path": path, "content": "x"}),
            await tool("read_file", {"path": path}),
            await tool("list_files", {"prefix": path}),
        ]
    for outcome in outcomes:
        assert outcome.is_error, outcome.content
        assert "contains a control or non-printable character" in outcome.content
    assert await storage.latest_artifacts(any_db, KEY.run_id) == []


async def test_a_nul_in_written_content_is_a_tool_error_not_a_database_error(
    any_db: Database,
) -> None:
    async with storage.turn_workspace(any_db, KEY, role="backend_engineer", model="m") as ws:
        tool = agent_tools(ws, "backend_engineer")
        nul = await tool("write_file", {"path": "a.bin", "content": "a\x00b"})
        tabs = await tool("write_file", {"path": "Makefile", "content": "all:\n\techo ok\r\n"})

    assert nul.is_error and "NUL" in nul.content
    assert not tabs.is_error  # ordinary whitespace in a file is content, not a problem
    assert [a.path for a in await storage.latest_artifacts(any_db, KEY.run_id)] == ["Makefile"]


# --------------------------------------------------------------------------- in a run

VALIDATED = """
name: trespass
tasks:
  - id: requirements
    role: business_analyst
"""
REQUIREMENTS = "# Requirements\n\nUsers sign up and log in.\n"


class Trespassers:
    """An analyst who also hands in a verdict and a validation of its own work, and a
    validator who tries to rewrite the work it checks before it passes it."""

    def __call__(self, request: dict[str, Any]) -> ReplyLike:
        turn = sum(1 for m in request["messages"] if m["role"] == "assistant")
        if role_of(request) == "business_analyst" and turn == 0:
            return calls(
                ("write_file", {"path": "docs/requirements.md", "content": REQUIREMENTS}),
                ("submit_verdict", {"verdict": "block", "summary": "forged"}),
                ("submit_validation", {"passed": False, "issues": ["forged"]}),
            )
        if role_of(request) == VALIDATOR_ROLE and turn == 0:
            return calls(
                ("write_file", {"path": "docs/requirements.md", "content": "overwritten"}),
                ("set_outputs", {"outputs": {"approved": True}}),
            )
        if role_of(request) == VALIDATOR_ROLE and turn == 1:
            return calls(("submit_validation", {"passed": True, "summary": "complete"}))
        return text_message("Done.")


def calls(*uses: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return message(
        [
            {"type": "tool_use", "id": f"toolu_{n}_{name}", "name": name, "input": args}
            for n, (name, args) in enumerate(uses)
        ]
    )


def tool_results(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        block
        for m in request["messages"]
        if m["role"] == "user" and isinstance(m["content"], list)
        for block in m["content"]
        if block.get("type") == "tool_result"
    ]


async def test_in_a_run_refused_calls_reach_the_model_as_errors_and_change_nothing(
    dev_client: Client, sqlite_db: Database, tmp_path: Path
) -> None:
    template = tmp_path / "trespass.yaml"
    template.write_text(VALIDATED)
    with FakeMessagesAPI(Trespassers()) as api:
        provider = AnthropicProvider(api_key="test-key", base_url=api.base_url)
        plan = make_plan(template=str(template))
        final = await run_to_end(dev_client, sqlite_db, provider, plan)
        bodies = [r.body for r in api.requests if r.path == "/v1/messages"]

    assert final.status == RunStatus.COMPLETED, final.error
    requirements = final.task("requirements")
    assert requirements.outputs == {}  # neither forged structured result was taken
    assert [(v.passed, v.summary) for v in requirements.validations] == [(True, "complete")]
    [written] = await storage.latest_artifacts(sqlite_db, plan.run_id)
    assert (written.path, written.version, written.content) == (
        "docs/requirements.md",
        1,
        REQUIREMENTS,
    )

    def errors_seen_by(role: str) -> list[str]:
        second_turns = [b for b in bodies if role_of(b) == role and len(b["messages"]) == 3]
        return [r["content"] for r in tool_results(second_turns[0]) if r.get("is_error")]

    assert errors_seen_by("business_analyst") == [
        f"tool {tool!r} is not available to the business_analyst role; its tools are: "
        + ", ".join(ROLES["business_analyst"].tools)
        for tool in ("submit_verdict", "submit_validation")
    ]
    assert [e.split(";")[0] for e in errors_seen_by(VALIDATOR_ROLE)] == [
        "tool 'write_file' is not available to the validator role",
        "tool 'set_outputs' is not available to the validator role",
    ]
