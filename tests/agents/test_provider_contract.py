"""The contract every provider adapter keeps, on each wire format: Anthropic's Messages API and
OpenAI-compatible chat completions, each through its real SDK against a loopback fake.

An answer arrives in our protocol; a failure is classified for Temporal's retry policy
(retryable or final, with the wait the server asked for) and never retried by the SDK; and
a whole run that meets such failures finishes with a ledger equal to what the server
reported. What only one provider does is in `test_anthropic_provider.py` and
`test_openai_provider.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from temporalio.client import Client

from agents.protocol import LLMProvider, Message, TextBlock, ToolResultBlock, ToolUseBlock
from core.contracts import RunStatus, TaskStatus, Usage
from core.persistence import storage
from core.persistence.db import Database
from tests.agents.wire_formats import WRITE_FILE, Adapter, Wire, ask, failure
from tests.fakes.loopback import (
    DropConnection,
    DropMidResponse,
    ErrorReply,
    LoopbackAPI,
    MessageReply,
    RawReply,
    RecordedRequest,
    role_of,
    turn_of,
)
from tests.fakes.responders import FaultsByTurn
from tests.helpers import make_plan, run_to_end

pytestmark = pytest.mark.timeout(30)

TRANSIENT_STATUSES = [408, 409, 500, 502, 503, 504, 529]
CLIENT_ERROR_STATUSES = [400, 401, 403, 404, 413, 422]


# --------------------------------------------------------------------------- answers


async def test_a_text_answer(wire: Wire, api: LoopbackAPI, provider: Adapter) -> None:
    api.enqueue_text("Hello from the fake.")

    response = await provider.complete(ask("Say hello"))

    assert response.text == "Hello from the fake."
    assert response.stop_reason == "end_turn"
    assert response.model == wire.model
    assert response.id.startswith(wire.response_id_prefix)
    assert response.tool_uses == []
    [received] = api.requests
    assert (received.method, received.path) == ("POST", wire.path)
    assert received.json == wire.request_body(wire.model, "Say hello", 1024)


async def test_an_empty_model_falls_back_to_the_providers_default(
    wire: Wire, api: LoopbackAPI
) -> None:
    provider = wire.connect(api.base_url, model=wire.other_model)
    try:
        response = await provider.complete(ask("hi", model=""))
    finally:
        await provider.aclose()

    assert isinstance(provider, LLMProvider)
    assert (provider.name, provider.default_model) == (wire.name, wire.other_model)
    assert api.requests[0].json["model"] == wire.other_model
    assert response.model == wire.other_model


async def test_a_tool_call_round_trip(wire: Wire, api: LoopbackAPI, provider: Adapter) -> None:
    request = ask("Write a note", tools=[WRITE_FILE], role="backend_engineer")

    first = await provider.complete(request)

    assert first.stop_reason == "tool_use"
    [call] = first.tool_uses
    assert call.name == "write_file"
    assert call.id.startswith(wire.call_id_prefix)
    assert call.input == {
        "path": "notes/1.md",
        "content": f"# Note 1\n\nWritten by {api.author}.\n",
    }
    assert first.text == "I'll write that down."

    request.messages += [
        Message(role="assistant", content=first.content),
        Message(role="user", content=[ToolResultBlock(tool_use_id=call.id, content="wrote it")]),
    ]
    second = await provider.complete(request)

    assert second.stop_reason == "end_turn"
    assert second.text == "Done."
    assert second.tool_uses == []
    first_body, second_body = api.bodies
    assert first_body["tools"] == [wire.tool_param(WRITE_FILE)]
    assert second_body["tools"] == first_body["tools"]
    assert wire.conversation(second_body)[1:] == wire.answered_turn(
        call.id, call.input, "I'll write that down.", "wrote it"
    )
    assert "role" not in first_body  # our routing field never reaches the wire


# --------------------------------------------------------------------------- retryable failures


async def test_a_rate_limit_is_retryable_after_the_servers_wait_and_not_retried_by_the_sdk(
    wire: Wire, api: LoopbackAPI, provider: Adapter
) -> None:
    api.enqueue_error(
        429, "Rate limit reached: per-minute request limit", headers={"retry-after": "2"}
    )
    api.enqueue_text("never reached: the SDK must not retry")

    error = await failure(provider, ask("hi"))

    assert error.retryable is True
    assert error.status == 429
    assert error.retry_after == 2.0
    assert f"429 {wire.labels[429]}: Rate limit reached: per-minute request limit" in str(error)
    assert "request-id req_" in str(error)
    assert len(api.requests) == 1
    assert api.pending == 1


async def test_retry_after_ms_wins_over_retry_after(api: LoopbackAPI, provider: Adapter) -> None:
    api.enqueue_error(429, "slow down", headers={"retry-after-ms": "1500", "retry-after": "2"})

    error = await failure(provider, ask("hi"))

    assert error.retryable is True
    assert error.retry_after == 1.5


async def test_a_retry_after_date_in_the_past_means_now(
    api: LoopbackAPI, provider: Adapter
) -> None:
    api.enqueue_error(503, "maintenance", headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})

    error = await failure(provider, ask("hi"))

    assert error.retryable is True
    assert error.retry_after == 0.0  # never a negative wait


@pytest.mark.parametrize("status", TRANSIENT_STATUSES)
async def test_transient_statuses_are_retryable(
    wire: Wire, api: LoopbackAPI, provider: Adapter, status: int
) -> None:
    api.enqueue_error(status, "try again later")

    error = await failure(provider, ask("hi"))

    assert error.retryable is True
    assert error.status == status
    assert error.retry_after is None
    assert f"{status} {wire.labels[status]}: try again later" in str(error)
    assert "request-id req_" in str(error)
    assert len(api.requests) == 1


async def test_a_gateways_html_error_page_is_retryable(api: LoopbackAPI, provider: Adapter) -> None:
    api.enqueue(RawReply(502, b"<html><body>502 Bad Gateway</body></html>"))

    error = await failure(provider, ask("hi"))

    assert error.retryable is True
    assert error.status == 502
    assert "502 Bad Gateway" in str(error)


@pytest.mark.parametrize(
    "fault", [DropConnection(), DropMidResponse()], ids=["drop", "mid-response"]
)
async def test_a_dropped_connection_is_retryable_and_the_retry_succeeds(
    wire: Wire, api: LoopbackAPI, provider: Adapter, fault: DropConnection | DropMidResponse
) -> None:
    api.enqueue(fault)

    error = await failure(provider, ask("hi"))

    assert error.retryable is True
    assert error.status is None
    assert wire.connection_error(api.base_url) in str(error)
    if isinstance(fault, DropMidResponse):
        assert "without sending complete message body" in str(error)
    assert len(api.requests) == 1  # the SDK did not retry
    assert api.successes == []  # a cut-off answer was never delivered
    response = await provider.complete(ask("hi"))
    assert response.text == "Done."
    assert [r.status for r in api.replies] == [200]


async def test_an_unreachable_server_is_retryable(wire: Wire) -> None:
    with wire.fake() as api:
        base_url = api.base_url  # nothing listens there once the server is closed
    provider = wire.connect(base_url)
    try:
        error = await failure(provider, ask("hi"))
    finally:
        await provider.aclose()

    assert error.retryable is True
    assert wire.connection_error(base_url) in str(error)
    assert "ConnectError" in str(error)


async def test_a_timeout_is_retryable(wire: Wire, api: LoopbackAPI) -> None:
    api.enqueue(MessageReply(api.text_body("too late"), delay_seconds=5))
    provider = wire.connect(api.base_url, timeout_seconds=0.3)
    try:
        error = await failure(provider, ask("hi"))
    finally:
        await provider.aclose()

    assert error.retryable is True
    assert "timed out" in str(error)
    assert len(api.requests) == 1


async def test_the_should_retry_header_overrides_the_status(
    api: LoopbackAPI, provider: Adapter
) -> None:
    api.enqueue_error(500, "do not bother", headers={"x-should-retry": "false"})
    api.enqueue_error(400, "transient after all", headers={"x-should-retry": "true"})

    first = await failure(provider, ask("hi"))
    second = await failure(provider, ask("hi"))

    assert first.retryable is False
    assert second.retryable is True


# --------------------------------------------------------------------------- final failures


@pytest.mark.parametrize("status", CLIENT_ERROR_STATUSES)
async def test_client_errors_are_final_keep_the_providers_message_and_ignore_retry_after(
    wire: Wire, api: LoopbackAPI, provider: Adapter, status: int
) -> None:
    message = "This model's maximum context length is 8192 tokens."
    api.enqueue_error(status, message, headers={"retry-after": "9"})

    error = await failure(provider, ask("hi"))

    assert error.retryable is False
    assert error.status == status
    assert error.retry_after is None
    assert f"{status} {wire.labels[status]}: {message}" in str(error)
    assert len(api.requests) == 1


async def test_a_key_the_server_refuses_is_final(wire: Wire, api: LoopbackAPI) -> None:
    provider = wire.connect(api.base_url, api_key="bad-key")
    try:
        error = await failure(provider, ask("hi"))
    finally:
        await provider.aclose()

    assert error.retryable is False
    assert error.status == 401
    assert wire.refused_key("bad-key") in str(error)


async def test_an_unanswered_tool_call_is_refused_like_the_real_api(
    wire: Wire, api: LoopbackAPI, provider: Adapter
) -> None:
    request = ask("hi", tools=[WRITE_FILE])
    call_id = f"{wire.call_id_prefix}1"
    request.messages += [
        Message(
            role="assistant",
            content=[
                ToolUseBlock(id=call_id, name="write_file", input={"path": "a", "content": ""})
            ],
        ),
        Message(role="user", content=[TextBlock(text="forgot the tool result")]),
    ]

    error = await failure(provider, request)

    assert error.retryable is False
    assert error.status == 400
    for fragment in wire.unanswered_call(call_id):
        assert fragment in str(error)


# --------------------------------------------------------------------------- a whole run


def asked_at(requests: list[RecordedRequest], role: str, turn: int) -> list[float]:
    """When the requests of `role`'s turn `turn` arrived."""
    return [
        r.received_at
        for r in requests
        if isinstance(r.body, dict) and role_of(r.body) == role and turn_of(r.body) == turn
    ]


def asked_to_wait(fault: object) -> float:
    """The seconds a fault's answer asked the client to wait before retrying."""
    headers = getattr(fault, "headers", {})
    if "retry-after-ms" in headers:
        return float(headers["retry-after-ms"]) / 1000
    return float(headers.get("retry-after", 0))


def reported_as_told(served: Mapping[str, Any], told: Mapping[str, Any]) -> bool:
    """Whether a served usage object carries every figure the responder set."""
    return all(
        reported_as_told(served[k], v) if isinstance(v, Mapping) else served.get(k) == v
        for k, v in told.items()
    )


@pytest.mark.timeout(120)
async def test_a_run_survives_faults_and_its_ledger_is_what_the_server_reported(
    wire: Wire, dev_client: Client, sqlite_db: Database
) -> None:
    key = "sk-test-run-key"
    faults = wire.run_faults
    with wire.fake(api_key=key) as api:
        server = FaultsByTurn(api, faults, usage=wire.cached_usage)
        api.responder = server
        provider = wire.connect(api.base_url, api_key=key)
        plan = make_plan()
        state = await run_to_end(dev_client, sqlite_db, provider, plan)
        await provider.aclose()
        requests, replies, successes = api.requests, api.replies, api.successes

    assert state.status == RunStatus.COMPLETED, state.error
    assert sorted(server.injected) == sorted(faults)  # every fault was met
    ran = [t for t in state.tasks if t.status == TaskStatus.COMPLETED]
    assert len(ran) == 9  # data_science and cleanup wait for outputs this responder never sets
    # every task wrote its note through a tool call round trip, then ended its turn; the
    # validator passed each of the seven tasks that are not gates the same way
    gates = {t.id for t in plan.tasks if t.gate}
    assert all(t.turns == (2 if t.id in gates else 4) and len(t.artifacts) == 1 for t in ran)
    assert all(t.model == wire.model for t in ran)
    assert {a.path for t in ran for a in t.artifacts} == {f"notes/{n}.md" for n in range(1, 10)}

    # every failed request was retried once, only the successes were answered in full, and
    # the waits the server asked for were honoured
    answered = 18 + 14
    assert all(r.api_key == key for r in requests)
    assert len(requests) == answered + len(faults)
    assert len(successes) == answered
    errors = [f.status for f in faults.values() if isinstance(f, ErrorReply)]
    assert sorted(r.status for r in replies if r.status != 200) == sorted(errors)
    for (role, turn), fault in faults.items():
        first, retry = asked_at(requests, role, turn)
        assert retry - first >= asked_to_wait(fault) - 0.1, (role, turn)
    validators = [r.json for r in requests if role_of(r.json) == "validator"]
    assert len(validators) == 14
    assert all(wire.tool_names(body)[-1] == "submit_validation" for body in validators)

    # the second turn answers the first turn's tool call by its id
    second_turns = [
        r.json for r in requests if turn_of(r.json) == 2 and role_of(r.json) != "validator"
    ]
    assert len(second_turns) == 9 + sum(1 for _, turn in faults if turn == 2)
    for body in second_turns:
        tool, call_id, answered_id, result = wire.answered_call(body)
        assert (tool, answered_id) == ("write_file", call_id)
        assert result.startswith("wrote notes/")
        assert "max_tokens" in body and "role" not in body

    # the ledger holds one row per successful answer and adds up to exactly what the
    # server reported, cached prompts included: no fault was charged, no retry counted twice
    entries = await storage.ledger_entries(sqlite_db, f"run-{plan.run_id}")
    assert len(entries) == len(successes)
    assert len({(e.task_id, e.attempt, e.turn) for e in entries}) == len(entries)
    assert {(e.provider, e.model) for e in entries} == {(wire.name, wire.model)}
    assert all(
        reported_as_told(r.body["usage"], wire.cached_usage(r.request))
        for r in replies
        if r.status == 200
    )
    served = [wire.usage_of(s["usage"]) for s in successes]
    assert all(usage.cache_read_input_tokens > 0 for usage in served)
    reported = sum(served, Usage())
    recorded = sum((storage.entry_usage(e) for e in entries), Usage())
    assert recorded == reported == state.usage
    assert recorded.total == sum(wire.total_tokens(s["usage"]) for s in successes)
    # each kind of token priced at its own rate
    expected = sum(
        wire.price(s["model"], usage) for s, usage in zip(successes, served, strict=True)
    )
    assert expected > 0
    assert sum(e.cost_usd for e in entries) == pytest.approx(expected)
    assert state.cost_usd == pytest.approx(expected)
