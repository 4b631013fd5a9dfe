"""A whole sdlc run with the real `openai` SDK against a loopback OpenAI-compatible server."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest
from temporalio.client import Client

from agents.pricing import PRICING, cost_usd
from agents.providers.openai_compat import OpenAICompatibleProvider
from agents.roles import ROLES, SANDBOX_HEADING, load_prompt
from core.contracts import RunStatus, TaskStatus, Usage
from core.persistence import storage
from core.persistence.db import Database
from tests.fakes.messages_api import TASK_TAG
from tests.fakes.openai_api import (
    DropMidResponse,
    ErrorReply,
    FakeOpenAIAPI,
    Reply,
    ReplyLike,
)
from tests.helpers import make_plan, run_to_end

pytestmark = pytest.mark.timeout(120)

MODEL = "gpt-4.1-mini"
KEY = "sk-test-run-key"
ROLE_BY_PROMPT = {load_prompt(role).rstrip(): role for role in ROLES}


def role_of(request: Mapping[str, Any]) -> str:
    system = request["messages"][0]
    assert system["role"] == "system"
    # A role's own prompt ends with what the sandbox has.
    prompt = system["content"].split(SANDBOX_HEADING)[0].rstrip()
    if prompt in ROLE_BY_PROMPT:
        return ROLE_BY_PROMPT[prompt]
    # The validator's system prompt is the team handbook: its task message names the role.
    task = TASK_TAG.search(str(request["messages"][1]["content"]))
    assert task is not None, "neither a role's prompt nor a task message"
    return task.group(2)


def turn_of(request: Mapping[str, Any]) -> int:
    return 1 + sum(1 for message in request["messages"] if message["role"] == "assistant")


class CachingServer:
    """The default tool round trip, every answer reporting part of its prompt as cached;
    the first request of each faulty (role, turn) gets its fault instead."""

    def __init__(self, api: FakeOpenAIAPI, faults: Mapping[tuple[str, int], Reply]) -> None:
        self.api = api
        self.faults = dict(faults)
        self.injected: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> ReplyLike:
        key = (role_of(request), turn_of(request))
        with self._lock:
            fault = self.faults.pop(key, None)
            if fault is not None:
                self.injected.append(key)
        if fault is not None:
            return fault
        reply = self.api.default_responder(request)
        prompt_tokens = 400 + 100 * turn_of(request)
        return {
            **reply,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "prompt_tokens_details": {"cached_tokens": prompt_tokens // 4},
            },
        }


async def test_sdlc_run_over_an_openai_compatible_endpoint(
    dev_client: Client, sqlite_db: Database
) -> None:
    faults: dict[tuple[str, int], Reply] = {
        ("business_analyst", 1): ErrorReply(
            429, "Rate limit reached for requests", headers={"retry-after-ms": "1000"}
        ),
        ("backend_engineer", 2): DropMidResponse(),
    }
    with FakeOpenAIAPI(api_key=KEY) as api:
        server = CachingServer(api, faults)
        api.responder = server
        provider = OpenAICompatibleProvider(model=MODEL, api_key=KEY, base_url=api.base_url)
        plan = make_plan()
        state = await run_to_end(dev_client, sqlite_db, provider, plan)
        await provider.aclose()
        requests, successes = api.requests, api.successes

    assert state.status == RunStatus.COMPLETED, state.error
    assert sorted(server.injected) == sorted(faults)
    ran = [t for t in state.tasks if t.status == TaskStatus.COMPLETED]
    assert len(ran) == 9  # data_science and cleanup wait for outputs this responder never sets
    # every task wrote its note through a tool_calls round trip, then ended its turn; the
    # validator passed each of the seven tasks that are not gates the same way
    gates = {t.id for t in plan.tasks if t.gate}
    assert all(t.turns == (2 if t.id in gates else 4) and len(t.artifacts) == 1 for t in ran)
    assert all(t.model == MODEL for t in ran)
    assert {a.path for t in ran for a in t.artifacts} == {f"notes/{n}.md" for n in range(1, 10)}
    assert all(r.api_key == KEY for r in requests)
    assert len(requests) == 18 + 14 + len(faults)
    assert len(successes) == 18 + 14
    validators = [r.json for r in requests if role_of(r.json) == "validator"]
    assert len(validators) == 14
    assert all(body["tools"][-1]["function"]["name"] == "submit_validation" for body in validators)

    # the second turn answers the first turn's tool call by its id, as a tool message
    second_turns = [
        r.json for r in requests if turn_of(r.json) == 2 and role_of(r.json) != "validator"
    ]
    assert len(second_turns) == 9 + 1  # the backend's second turn was asked twice
    for body in second_turns:
        assistant, tool = body["messages"][2:]
        [call] = assistant["tool_calls"]
        assert call["function"]["name"] == "write_file"
        assert tool["role"] == "tool"
        assert tool["tool_call_id"] == call["id"]
        assert tool["content"].startswith("wrote notes/")
        assert "max_tokens" in body and "role" not in body

    # the ledger is what the server reported: prompt tokens split into fresh and cached
    entries = await storage.ledger_entries(sqlite_db, f"run-{plan.run_id}")
    assert len(entries) == len(successes)
    assert {e.provider for e in entries} == {"openai"}
    assert {e.model for e in entries} == {MODEL}
    reported = [s["usage"] for s in successes]
    assert sum(e.input_tokens + e.cache_read_tokens for e in entries) == sum(
        u["prompt_tokens"] for u in reported
    )
    assert sum(e.cache_read_tokens for e in entries) == sum(
        u["prompt_tokens_details"]["cached_tokens"] for u in reported
    )
    assert sum(e.output_tokens for e in entries) == sum(u["completion_tokens"] for u in reported)
    assert sum(e.cache_write_tokens for e in entries) == 0
    recorded = sum((storage.entry_usage(e) for e in entries), Usage())
    assert recorded == state.usage
    assert recorded.total == sum(u["total_tokens"] for u in reported)

    # cached tokens are priced at the cache-read rate, the rest at the input rate
    price = PRICING[MODEL]
    expected = sum(
        cost_usd(
            price,
            Usage(
                input_tokens=u["prompt_tokens"] - u["prompt_tokens_details"]["cached_tokens"],
                output_tokens=u["completion_tokens"],
                cache_read_input_tokens=u["prompt_tokens_details"]["cached_tokens"],
            ),
        )
        for u in reported
    )
    assert sum(e.cost_usd for e in entries) == pytest.approx(expected)
    assert state.cost_usd == pytest.approx(expected)
    assert expected > 0
