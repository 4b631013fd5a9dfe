"""An engineer edits and runs its code through each provider's wire format, on Temporal.

Anthropic gets its own client tools (`text_editor_20250728`, `bash_20250124`) by type and
name; an OpenAI-compatible endpoint gets the same tools as JSON-schema functions. Either
way the commands run in the sandbox on the checks queue and come back as tool results.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from temporalio.client import Client

from agents.commands import COMMAND_TOOL
from agents.editor import EDIT_TOOL, MAX_VIEW_CHARACTERS
from agents.providers.anthropic import AnthropicProvider
from agents.providers.openai_compat import OpenAICompatibleProvider
from agents.roles import ROLES
from core.contracts import CHECKS_QUEUE, RUN_TOOL_CALLS, RunPlan, RunStatus
from core.persistence.db import Database
from core.services.templates import parse_template
from tests.fakes.messages_api import FakeMessagesAPI, message, text_message
from tests.fakes.openai_api import FakeOpenAIAPI, completion, text_completion
from tests.helpers import run_to_end, started
from workflows.dsl import compile_plan

TEMPLATE = """\
name: one-engineer
settings: {validate: false}
tasks:
  - id: backend
    role: backend_engineer
    description: A function add(a, b) with a test.
"""
APP = "def add(a, b):\n    return a - b\n"
TESTS = "from app import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
PYTEST = "cd backend && python -m pytest -q -p no:cacheprovider"

# What the engineer does, turn by turn: write code and test, run it (fails), fix, re-run.
SCRIPT: list[list[tuple[str, dict[str, Any]]]] = [
    [
        (EDIT_TOOL, {"command": "create", "path": "backend/app.py", "file_text": APP}),
        (EDIT_TOOL, {"command": "create", "path": "backend/test_app.py", "file_text": TESTS}),
    ],
    [(COMMAND_TOOL, {"command": PYTEST})],
    [
        (
            EDIT_TOOL,
            {
                "command": "str_replace",
                "path": "backend/app.py",
                "old_str": "return a - b",
                "new_str": "return a + b",
            },
        )
    ],
    [(COMMAND_TOOL, {"command": PYTEST})],
]


def plan_of(goal: str) -> RunPlan:
    return compile_plan(parse_template(TEMPLATE), goal=goal, run_id=uuid.uuid4().hex, roles=ROLES)


def anthropic_reply(request: Mapping[str, Any]) -> dict[str, Any]:
    turn = sum(1 for m in request["messages"] if m["role"] == "assistant")
    if turn >= len(SCRIPT):
        return text_message("add() is fixed and its test passes.")
    return message(
        [
            {"type": "tool_use", "id": f"toolu_{turn}_{i}", "name": name, "input": args}
            for i, (name, args) in enumerate(SCRIPT[turn])
        ]
    )


def openai_reply(request: Mapping[str, Any]) -> dict[str, Any]:
    turn = sum(1 for m in request["messages"] if m["role"] == "assistant")
    if turn >= len(SCRIPT):
        return text_completion("add() is fixed and its test passes.")
    calls = [
        {
            "id": f"call_{turn}_{i}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        for i, (name, args) in enumerate(SCRIPT[turn])
    ]
    return completion(None, calls)


def tool_results(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Anthropic tool_result blocks of the last request: the whole conversation's."""
    return [
        block
        for m in requests[-1]["messages"]
        if isinstance(m["content"], list)
        for block in m["content"]
        if block.get("type") == "tool_result"
    ]


async def test_anthropic_gets_its_own_tools_and_their_result_shapes(
    dev_client: Client, sqlite_db: Database
) -> None:
    plan = plan_of("A calculator library")
    with FakeMessagesAPI(responder=anthropic_reply) as api:
        provider = AnthropicProvider(api_key="k", model="claude-sonnet-4-6", base_url=api.base_url)
        async with started(dev_client, sqlite_db, provider, plan) as handle:
            state = await handle.result()
            history = await handle.fetch_history()
        requests = [r.json for r in api.requests]

    assert state.status == RunStatus.COMPLETED, state.error
    tools = {t["name"]: t for t in requests[0]["tools"]}
    assert tools[EDIT_TOOL] == {
        "type": "text_editor_20250728",
        "name": EDIT_TOOL,
        "max_characters": MAX_VIEW_CHARACTERS,
    }
    assert {k: v for k, v in tools[COMMAND_TOOL].items() if k != "cache_control"} == {
        "type": "bash_20250124",
        "name": COMMAND_TOOL,
    }
    results = {r["tool_use_id"]: r for r in tool_results(requests)}
    assert results["toolu_0_0"]["content"] == "File created successfully: backend/app.py"
    failing, fixed, passing = results["toolu_1_0"], results["toolu_2_0"], results["toolu_3_0"]
    assert "1 failed" in failing["content"] and "[exit code 1]" in failing["content"]
    assert fixed["content"] == "Successfully replaced text at exactly one location."
    assert "1 passed" in passing["content"] and "[exit code 0]" in passing["content"]
    assert not any(r.get("is_error") for r in results.values())

    [backend] = state.tasks
    assert [(c.turn, c.exit_code) for c in backend.commands] == [(1, 1), (3, 0)]
    assert backend.tool_counts == {EDIT_TOOL: 3, COMMAND_TOOL: 2}
    # The turns with commands ran where the sandbox is; the others stayed local.
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == RUN_TOOL_CALLS
    ]
    assert [a.task_queue.name for a in scheduled] == [CHECKS_QUEUE, CHECKS_QUEUE]


async def test_an_openai_compatible_model_gets_the_same_tools_as_functions(
    dev_client: Client, sqlite_db: Database
) -> None:
    plan = plan_of("A calculator library")
    with FakeOpenAIAPI(responder=openai_reply) as api:
        provider = OpenAICompatibleProvider(model="local", api_key=None, base_url=api.base_url)
        state = await run_to_end(dev_client, sqlite_db, provider, plan)
        requests = [r.json for r in api.requests]

    assert state.status == RunStatus.COMPLETED, state.error
    functions = {t["function"]["name"]: t["function"] for t in requests[0]["tools"]}
    assert functions[EDIT_TOOL]["parameters"]["properties"]["command"]["enum"] == [
        "view", "str_replace", "insert", "create",
    ]  # fmt: skip
    assert "command" in functions[COMMAND_TOOL]["parameters"]["properties"]
    answers = {
        m["tool_call_id"]: m["content"] for m in requests[-1]["messages"] if m["role"] == "tool"
    }
    assert "1 failed" in answers["call_1_0"] and "1 passed" in answers["call_3_0"]
    [backend] = state.tasks
    assert [c.exit_code for c in backend.commands] == [1, 0]
