"""What only the Anthropic adapter does, with the real SDK against the loopback Messages API:
its headers, cache token counts, block kinds and stop reasons, the 529 overload, its price
table, and the fake itself. What every adapter does is in `test_provider_contract.py`.
"""

from __future__ import annotations

import httpx
import pytest

from agents.protocol import TextBlock
from agents.providers.anthropic import AnthropicProvider, price_usd
from core.contracts import Usage
from tests.agents.wire_formats import MessagesWire, Wire, ask, failure
from tests.fakes.loopback import DropConnection, MessageReply
from tests.fakes.messages_api import FakeMessagesAPI, message, text_message

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def wire() -> Wire:
    return MessagesWire()


async def test_the_key_and_the_api_version_travel_in_headers(
    api: FakeMessagesAPI, provider: AnthropicProvider
) -> None:
    await provider.complete(ask("hi"))

    [received] = api.requests
    assert received.api_key == "test-key"
    assert received.headers["anthropic-version"]


async def test_usage_with_cache_tokens(api: FakeMessagesAPI, provider: AnthropicProvider) -> None:
    api.enqueue(
        text_message(
            "cached",
            usage={
                "input_tokens": 12,
                "output_tokens": 34,
                "cache_creation_input_tokens": 56,
                "cache_read_input_tokens": 78,
            },
        )
    )

    response = await provider.complete(ask("hi"))

    assert response.usage == Usage(
        input_tokens=12,
        output_tokens=34,
        cache_creation_input_tokens=56,
        cache_read_input_tokens=78,
    )


async def test_null_cache_tokens_count_as_zero(
    api: FakeMessagesAPI, provider: AnthropicProvider
) -> None:
    api.enqueue(
        MessageReply(
            {
                "content": [{"type": "text", "text": "ok"}],
                "usage": {
                    "input_tokens": 5,
                    "output_tokens": 6,
                    "cache_creation_input_tokens": None,
                    "cache_read_input_tokens": None,
                },
            }
        )
    )

    response = await provider.complete(ask("hi"))

    assert response.usage == Usage(input_tokens=5, output_tokens=6)


async def test_unknown_blocks_skipped_and_stop_reasons_mapped(
    api: FakeMessagesAPI, provider: AnthropicProvider
) -> None:
    api.enqueue(
        message(
            [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "answer"},
            ],
            stop_reason="model_context_window_exceeded",
        ),
        message([{"type": "text", "text": "paused"}], stop_reason="pause_turn"),
    )

    first = await provider.complete(ask("think"))
    second = await provider.complete(ask("again"))

    assert first.content == [TextBlock(text="answer")]
    assert first.stop_reason == "max_tokens"
    assert second.stop_reason == "pause_turn"


# --------------------------------------------------------------------------- failures


async def test_overloaded_529_honours_retry_after(
    api: FakeMessagesAPI, provider: AnthropicProvider
) -> None:
    api.enqueue_overloaded(**{"retry-after": "3"})
    api.enqueue_overloaded("Overloaded", **{"retry-after-ms": "250"})

    first = await failure(provider, ask("hi"))
    second = await failure(provider, ask("hi"))

    assert (first.retryable, first.status, first.retry_after) == (True, 529, 3.0)
    assert "529 overloaded_error: Overloaded" in str(first)
    assert second.retry_after == 0.25
    assert api.replies[0].body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


# --------------------------------------------------------------------------- pricing


def test_cost_usd_uses_price_table() -> None:
    provider = AnthropicProvider(api_key="test-key")
    usage = Usage(input_tokens=100, output_tokens=200)
    assert provider.cost_usd("claude-sonnet-4-5", usage) == price_usd("claude-sonnet-4-5", usage)


# --------------------------------------------------------------------------- the fake itself


def test_fake_validates_like_the_real_api(api: FakeMessagesAPI) -> None:
    good_headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=api.base_url) as http:
        cases = [
            (
                http.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"}),
                401,
                "authentication_error",
            ),
            (
                http.post("/v1/messages", json=body, headers={"x-api-key": "k"}),
                400,
                "invalid_request_error",
            ),
            (
                http.post("/v1/messages", json={**body, "role": "backend"}, headers=good_headers),
                400,
                "invalid_request_error",
            ),
            (
                http.post(
                    "/v1/messages", json={"model": "m", "messages": []}, headers=good_headers
                ),
                400,
                "invalid_request_error",
            ),
            (http.get("/v1/messages", headers=good_headers), 404, "not_found_error"),
        ]
        ok = http.post("/v1/messages", json=body, headers=good_headers)
    for response, status, error_type in cases:
        assert response.status_code == status
        assert response.headers["request-id"].startswith("req_")
        assert response.json()["type"] == "error"
        assert response.json()["error"]["type"] == error_type
    assert ok.status_code == 200
    assert ok.headers["content-type"] == "application/json"
    assert set(ok.json()) == {
        "id",
        "type",
        "role",
        "model",
        "content",
        "stop_reason",
        "stop_sequence",
        "usage",
    }
    assert ok.json()["content"] == [{"type": "text", "text": "Done."}]
    assert len(api.requests) == len(cases) + 1


def test_fake_serves_script_then_responder_and_survives_drops(api: FakeMessagesAPI) -> None:
    api.enqueue(DropConnection(), text_message("scripted"))
    api.responder = lambda body: text_message(f"echo {body['messages'][0]['content']}")
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=api.base_url, headers=headers) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.post("/v1/messages", json=body)
        texts = [
            http.post("/v1/messages", json=body).json()["content"][0]["text"] for _ in range(2)
        ]
    assert texts == ["scripted", "echo hi"]
    assert api.pending == 0
    assert len(api.wait_for_requests(3, timeout=1)) == 3


def test_fake_reports_a_broken_responder(api: FakeMessagesAPI) -> None:
    def broken(body: dict[str, object]) -> dict[str, object]:
        raise KeyError("oops")

    api.responder = broken
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=api.base_url, headers=headers) as http:
        response = http.post("/v1/messages", json=body)

    assert response.status_code == 500
    assert "fake responder raised KeyError('oops')" in response.json()["error"]["message"]
    assert [type(exc) for exc in api.responder_errors] == [KeyError]
