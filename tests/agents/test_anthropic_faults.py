"""Provider faults against the loopback Messages API: each one classified, and a whole run
that meets all of them finishes with a ledger equal to what the server reported.

The classification of single statuses (408, 409, 429, 5xx, 529, 400, 401, 403, 404, 413,
retry-after, retry-after-ms, x-should-retry, a dropped connection, a timeout) is in
`test_anthropic_provider.py`; this file adds the faults that happen mid-flight and what the
retry policy makes of all of them together.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client

from agents.pricing import price_usd
from agents.protocol import Message, ModelRequest, ProviderError, TextBlock
from agents.providers.anthropic import AnthropicProvider
from core.contracts import RunStatus, TaskStatus, Usage
from core.persistence import storage
from core.persistence.db import Database
from tests.fakes.messages_api import (
    DropMidResponse,
    ErrorReply,
    FakeMessagesAPI,
    RecordedRequest,
    Reply,
    ReplyLike,
    role_of,
)
from tests.helpers import make_plan, run_to_end

MODEL = "claude-sonnet-4-6"


@pytest.fixture
def api() -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI() as fake:
        yield fake


@pytest_asyncio.fixture
async def provider(api: FakeMessagesAPI) -> AsyncIterator[AnthropicProvider]:
    client = AnthropicProvider(api_key="test-key", model=MODEL, base_url=api.base_url)
    yield client
    await client.aclose()


def ask(text: str = "hi") -> ModelRequest:
    return ModelRequest(
        model=MODEL,
        system="You are the tech lead.",
        messages=[Message(role="user", content=[TextBlock(text=text)])],
        max_tokens=256,
    )


async def failure(provider: AnthropicProvider, request: ModelRequest) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await provider.complete(request)
    return caught.value


# --------------------------------------------------------------------------- single faults


@pytest.mark.timeout(30)
async def test_connection_cut_mid_response_is_retryable_and_the_retry_succeeds(
    api: FakeMessagesAPI, provider: AnthropicProvider
) -> None:
    api.enqueue_drop_mid_response({"content": [{"type": "text", "text": "x" * 2000}]})

    error = await failure(provider, ask())
    response = await provider.complete(ask())

    assert error.retryable is True
    assert error.status is None
    assert "connection error" in str(error)
    assert "without sending complete message body" in str(error)
    assert response.text == "Done."
    assert [r.status for r in api.replies] == [200]  # the cut-off answer never arrived


@pytest.mark.timeout(30)
async def test_overloaded_529_honours_retry_after(
    api: FakeMessagesAPI, provider: AnthropicProvider
) -> None:
    api.enqueue_overloaded(**{"retry-after": "3"})
    api.enqueue_overloaded("Overloaded", **{"retry-after-ms": "250"})

    first = await failure(provider, ask())
    second = await failure(provider, ask())

    assert (first.retryable, first.status, first.retry_after) == (True, 529, 3.0)
    assert "529 overloaded_error: Overloaded" in str(first)
    assert second.retry_after == 0.25
    assert api.replies[0].body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


@pytest.mark.timeout(30)
async def test_unreachable_api_is_retryable() -> None:
    with FakeMessagesAPI() as api:
        base_url = api.base_url  # nothing listens there once the server is closed
    provider = AnthropicProvider(api_key="test-key", base_url=base_url)
    try:
        error = await failure(provider, ask())
    finally:
        await provider.aclose()

    assert error.retryable is True
    assert "connection error" in str(error)
    assert "ConnectError" in str(error)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("status", "message"),
    [
        (401, "invalid x-api-key"),
        (403, "Your API key does not have permission to use the specified resource."),
        (404, "model: claude-nonexistent"),
        (413, "Request exceeds the maximum allowed number of bytes."),
    ],
)
async def test_permanent_errors_keep_the_providers_message_and_ignore_retry_after(
    api: FakeMessagesAPI, provider: AnthropicProvider, status: int, message: str
) -> None:
    api.enqueue_error(status, message, headers={"retry-after": "1"})

    error = await failure(provider, ask())

    assert error.retryable is False
    assert error.retry_after is None
    assert message in str(error)


# --------------------------------------------------------------------------- a whole run


class FaultyAPI:
    """Answers every request like the default responder, with cache usage on each answer,
    except the first time a given (role, turn) asks: that request gets its fault."""

    def __init__(self, api: FakeMessagesAPI, faults: Mapping[tuple[str, int], Reply]) -> None:
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
        # Cached prompts, as a long agent conversation would have: every counter is exercised.
        return {
            **reply,
            "usage": {"cache_read_input_tokens": 120, "cache_creation_input_tokens": 30},
        }


def turn_of(request: Mapping[str, Any]) -> int:
    return 1 + sum(1 for message in request["messages"] if message["role"] == "assistant")


def asked(requests: list[RecordedRequest], role: str, turn: int) -> list[float]:
    """When the requests of ``role``'s turn ``turn`` arrived."""
    return [
        r.received_at
        for r in requests
        if isinstance(r.body, dict) and role_of(r.body) == role and turn_of(r.body) == turn
    ]


@pytest.mark.timeout(120)
async def test_a_run_survives_faults_and_its_ledger_is_what_the_server_reported(
    dev_client: Client, sqlite_db: Database
) -> None:
    faults: dict[tuple[str, int], Reply] = {
        ("business_analyst", 1): ErrorReply(
            429, "rate limited, slow down", headers={"retry-after": "1"}
        ),
        ("tech_lead", 2): ErrorReply(529, "Overloaded", headers={"retry-after": "2"}),
        ("backend_engineer", 1): ErrorReply(500, "Internal server error"),
        ("frontend_engineer", 2): DropMidResponse(),
    }
    with FakeMessagesAPI() as api:
        model = FaultyAPI(api, faults)
        api.responder = model
        provider = AnthropicProvider(api_key="test-key", model=MODEL, base_url=api.base_url)
        plan = make_plan()
        state = await run_to_end(dev_client, sqlite_db, provider, plan)
        await provider.aclose()
        requests, replies, successes = api.requests, api.replies, api.successes

    assert state.status == RunStatus.COMPLETED, state.error
    assert sorted(model.injected) == sorted(faults)  # every fault was met
    ran = [t for t in state.tasks if t.status == TaskStatus.COMPLETED]
    assert len(ran) == 9  # data_science and cleanup wait for outputs this responder never sets
    # two turns each, plus two validator turns for each of the seven tasks that are not gates
    gates = {t.id for t in plan.tasks if t.gate}
    assert all(t.turns == (2 if t.id in gates else 4) and len(t.artifacts) == 1 for t in ran)
    answered = 18 + 14

    # every failed request was retried once, and only the successes were answered in full
    assert len(requests) == answered + len(faults)
    assert sorted(r.status for r in replies if r.status != 200) == [429, 500, 529]
    assert len(successes) == answered
    # the waits the server asked for were honoured (the policy's own first wait is 1 s)
    first, retry = asked(requests, "tech_lead", 2)
    assert retry - first >= 1.9
    first, retry = asked(requests, "business_analyst", 1)
    assert retry - first >= 0.9

    # the ledger holds one row per successful answer and adds up to exactly what the
    # server reported: no fault was charged, no retry counted twice
    entries = await storage.ledger_entries(sqlite_db, f"run-{plan.run_id}")
    assert len(entries) == len(successes)
    assert len({(e.task_id, e.attempt, e.turn) for e in entries}) == len(entries)
    reported = sum((Usage.model_validate(s["usage"]) for s in successes), Usage())
    recorded = sum((storage.entry_usage(e) for e in entries), Usage())
    assert recorded == reported == state.usage
    assert reported.cache_read_input_tokens == 120 * answered
    assert reported.cache_creation_input_tokens == 30 * answered
    expected_cost = sum(price_usd(s["model"], Usage.model_validate(s["usage"])) for s in successes)
    assert sum(e.cost_usd for e in entries) == pytest.approx(expected_cost)
    assert state.cost_usd == pytest.approx(expected_cost)
    assert {e.provider for e in entries} == {"anthropic"}
