"""Done means green, on the real stack: a task cannot complete while its own tests fail.

A scripted engineer speaks the Anthropic wire format to the loopback fake; its code runs in
the real sandbox on the checks queue, on a real Temporal dev server. When it ends its turn
with a failing test, the failures come back in its next request, right after the answer
that said it was done; an engineer who never fixes them completes after `max_check_rounds`
with the failures recorded, and the code review gate is told.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Replayer

from agents.editor import EDIT_TOOL
from agents.providers.anthropic import AnthropicProvider
from agents.roles import ROLES
from core.contracts import (
    CHECKS_QUEUE,
    RUN_CHECKS,
    Decision,
    DecisionKind,
    EventType,
    PendingDecision,
    RunState,
    RunStatus,
    TaskStatus,
)
from core.persistence.db import Database
from core.services.templates import parse_template
from tests.conftest import production_converter
from tests.fakes.loopback import ReplyLike, first_text, role_of, turn_of
from tests.fakes.messages_api import FakeMessagesAPI, message, text_message, tool_use_message
from tests.helpers import started, wait_until
from workflows.dsl import compile_plan
from workflows.goal import GoalWorkflow

ONE_ENGINEER = """\
name: own-checks
settings: {validate: false}
tasks:
  - id: backend
    role: backend_engineer
    description: A function add(a, b) with a test.
"""
ENGINEER_AND_GATE = """\
name: own-checks-gated
settings: {validate: false, max_check_rounds: 2}
tasks:
  - id: backend
    role: backend_engineer
    description: A function add(a, b) with a test.
  - id: code_review
    role: code_reviewer
    gate: code_review
    depends_on: [backend]
    max_revisions: 0
"""
APP = "def add(a, b):\n    return a - b\n"
TESTS = "from app import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
DONE = "add() and its test are written."
FIX = {
    "command": "str_replace",
    "path": "backend/app.py",
    "old_str": "return a - b",
    "new_str": "return a + b",
}


class Team:
    """An engineer who writes add() wrong with its test and says it is done; with `fixes`
    it corrects the code when told, at its third turn. A reviewer who defers to the tools."""

    def __init__(self, fixes: bool) -> None:
        self.fixes = fixes
        self.engineer: list[dict[str, Any]] = []
        self.reviewer: list[dict[str, Any]] = []

    def __call__(self, request: dict[str, Any]) -> ReplyLike:
        if role_of(request) == "code_reviewer":
            self.reviewer.append(request)
            if turn_of(request) == 1:
                return tool_use_message("submit_verdict", {"verdict": "pass", "summary": "ok"})
            return text_message("Reviewed.")
        self.engineer.append(request)
        turn = turn_of(request) - 1
        if turn == 0:
            return message(
                [
                    create(0, "backend/app.py", APP),
                    create(1, "backend/test_app.py", TESTS),
                ]
            )
        if self.fixes and turn == 2:
            return message(
                [{"type": "tool_use", "id": "toolu_fix", "name": EDIT_TOOL, "input": FIX}]
            )
        return text_message(DONE)


def create(index: int, path: str, text: str) -> dict[str, Any]:
    arguments = {"command": "create", "path": path, "file_text": text}
    return {"type": "tool_use", "id": f"toolu_0_{index}", "name": EDIT_TOOL, "input": arguments}


@asynccontextmanager
async def running(
    client: Client, db: Database, team: Team, template: str
) -> AsyncIterator[WorkflowHandle[Any, RunState]]:
    """A run of `template` whose agents are `team`, behind the loopback Messages API."""
    plan = compile_plan(
        parse_template(template), goal="A calculator", run_id=uuid.uuid4().hex, roles=ROLES
    )
    with FakeMessagesAPI(responder=team) as api:
        provider = AnthropicProvider(api_key="k", model="claude-sonnet-4-6", base_url=api.base_url)
        async with started(client, db, provider, plan) as handle:
            yield handle


def without_cache_marks(messages: list[Mapping[str, Any]]) -> list[Any]:
    """Messages as the prompt cache compares them: the breakpoint marks moved, not content."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "cache_control"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return [strip(m) for m in messages]


def texts(message_: Mapping[str, Any]) -> list[str]:
    content = message_["content"]
    if isinstance(content, str):
        return [content]
    return [block["text"] for block in content if block.get("type") == "text"]


async def test_failing_tests_go_back_into_the_conversation_until_fixed(
    dev_client: Client, sqlite_db: Database
) -> None:
    team = Team(fixes=True)
    async with running(dev_client, sqlite_db, team, ONE_ENGINEER) as handle:
        state = await handle.result()
        history = await handle.fetch_history()

    assert state.status == RunStatus.COMPLETED, state.error
    [backend] = state.tasks
    assert (backend.turns, backend.check_rounds, backend.check_failures) == (4, 1, [])
    # turn 1 said it was done; the failures came back as the next user message
    asked_again = team.engineer[2]["messages"]
    assert [m["role"] for m in asked_again] == ["user", "assistant", "user", "assistant", "user"]
    assert texts(asked_again[3]) == [DONE]
    [followup] = texts(asked_again[4])
    assert [f.model_dump() for f in backend.followups] == [{"turn": 1, "text": followup}]
    assert "check round 1 of 2" in followup and "the tests in backend" in followup
    assert "- HIGH pytest [test-failure] backend/test_app.py:5: test backend/test_app.py::" in (
        followup
    )
    assert "assert -1 == 5" in followup
    # the fix's request keeps every earlier message as it was: the cached prefix holds
    fixed = team.engineer[3]["messages"]
    assert without_cache_marks(fixed[:5]) == without_cache_marks(asked_again)
    assert [m["role"] for m in fixed[5:]] == ["assistant", "user"]
    # the checks ran twice, in the sandbox on the checks queue; the second one was green
    checks = [
        (e.activity_task_scheduled_event_attributes, e.user_metadata.summary.data.decode())
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == RUN_CHECKS
    ]
    assert [(c.task_queue.name, summary.strip('"')) for c, summary in checks] == [
        (CHECKS_QUEUE, "backend (backend_engineer): own checks, round 1"),
        (CHECKS_QUEUE, "backend (backend_engineer): own checks, round 2"),
    ]
    assert not any(e.type == EventType.TASK_CHECKS_FAILED for e in state.events)
    # and the run replays: the send-back is deterministic workflow code
    replayer = Replayer(workflows=[GoalWorkflow], data_converter=production_converter())
    replayed = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert replayed.replay_failure is None


async def test_failures_that_outlast_the_rounds_are_recorded_and_the_gate_is_told(
    dev_client: Client, sqlite_db: Database
) -> None:
    team = Team(fixes=False)
    async with running(dev_client, sqlite_db, team, ENGINEER_AND_GATE) as handle:

        async def asked() -> bool:
            waiting = await handle.query("pending_decisions", result_type=list[PendingDecision])
            return bool(waiting)

        await wait_until(asked, timeout=180)
        state = await handle.query("status", result_type=RunState)
        await handle.signal(
            "decide", Decision(gate="code_review", decision=DecisionKind.APPROVE, by="carol")
        )
        final = await handle.result()

    backend = state.task("backend")
    assert backend.status == TaskStatus.COMPLETED
    assert backend.turns == 4 and backend.check_rounds == 2
    assert [(f.source, f.rule, f.file, f.line) for f in backend.check_failures] == [
        ("pytest", "test-failure", "backend/test_app.py", 5)
    ]
    # each round went back after the turn that ended, in one growing conversation
    last = team.engineer[-1]["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "user"] + [
        "assistant",
        "user",
    ] * 2
    assert "check round 1 of 2" in texts(last[4])[0]
    assert "check round 2 of 2" in texts(last[6])[0]
    [event] = [e for e in state.events if e.type == EventType.TASK_CHECKS_FAILED]
    assert event.task == "backend"
    assert event.data["rounds"] == 2 and event.data["failures"] == 1
    assert "test_add failed" in event.data["findings"][0]
    # the gate sees them: in its reviewer's request and in its verdict's notes
    told = first_text(team.reviewer[0])
    assert "backend completed with its own checks failing (after 2 check rounds)" in told
    [verdict] = state.task("code_review").verdicts
    assert not verdict.passed
    assert "backend completed with 1 failing checks of its own after 2 check rounds" in (
        verdict.notes
    )
    assert final.status == RunStatus.COMPLETED, final.error
