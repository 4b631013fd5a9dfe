"""AnthropicProvider with the real SDK against the loopback Messages API fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from agents.protocol import (
    LLMProvider,
    Message,
    ModelRequest,
    ProviderError,
    TextBlock,
    ToolDefinition,
    ToolResultBlock,
    ToolUseBlock,
)
from agents.providers.anthropic import PRICING, AnthropicProvider, price_usd
from core.contracts import Usage
from tests.fakes.messages_api import (
    DropConnection,
    FakeMessagesAPI,
    MessageReply,
    RawReply,
    message,
    text_message,
)

pytestmark = pytest.mark.timeout(30)

# Not the provider's default: the SDK warns on every call to a model it lists as deprecated.
MODEL = "claude-sonnet-4-6"

WRITE_FILE = ToolDefinition(
    name="write_file",
    description="Create or overwrite a file in the workspace.",
    input_schema={
        "type": "object",
        "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["path", "content"],
    },
)


@pytest.fixture
def api() -> Iterator[FakeMessagesAPI]:
    with FakeMessagesAPI() as fake:
        yield fake


@pytest_asyncio.fixture
async def provider(api: FakeMessagesAPI) -> AsyncIterator[AnthropicProvider]:
    client = AnthropicProvider(api_key="test-key", base_url=api.base_url)
    yield client
    await client.aclose()


def ask(
    text: str, *, tools: list[ToolDefinition] | None = None, model: str = MODEL
) -> ModelRequest:
    return ModelRequest(
        model=model,
        system="You are the backend engineer.",
        messages=[Message(role="user", content=[TextBlock(text=text)])],
        tools=tools or [],
        max_tokens=1024,
        role="backend",
    )


async def failure(provider: AnthropicProvider, request: ModelRequest) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await provider.complete(request)
    return caught.value


# --------------------------------------------------------------------------- success


@pytest.mark.asyncio
async def test_text_completion(api: FakeMessagesAPI, provider: AnthropicProvider) -> None:
    api.enqueue_text("Hello from the fake.")

    response = await provider.complete(ask("Say hello"))

    assert response.text == "Hello from the fake."
    assert response.stop_reason == "end_turn"
    assert response.model == MODEL
    assert response.id.startswith("msg_")
    assert response.tool_uses == []
    [received] = api.requests
    assert (received.method, received.path) == ("POST", "/v1/messages")
    assert received.api_key == "test-key"
    assert received.headers["anthropic-version"]
    assert received.json == {
        "model": MODEL,
        "max_tokens": 1024,
        "system": "You are the backend engineer.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}],
    }


@pytest.mark.asyncio
async def test_empty_model_falls_back_to_default(api: FakeMessagesAPI) -> None:
    provider = AnthropicProvider(
        api_key="test-key", model="claude-haiku-4-5", base_url=api.base_url
    )
    try:
        response = await provider.complete(ask("hi", model=""))
    finally:
        await provider.aclose()

    assert isinstance(provider, LLMProvider)
    assert provider.name == "anthropic"
    assert provider.default_model == "claude-haiku-4-5"
    assert api.requests[0].json["model"] == "claude-haiku-4-5"
    assert response.model == "claude-haiku-4-5"


@pytest.mark.asyncio
async def test_tool_use_round_trip(api: FakeMessagesAPI, provider: AnthropicProvider) -> None:
    request = ask("Write a note", tools=[WRITE_FILE])

    first = await provider.complete(request)

    assert first.stop_reason == "tool_use"
    [call] = first.tool_uses
    assert call.name == "write_file"
    assert call.id.startswith("toolu_")
    assert call.input == {
        "path": "notes/1.md",
        "content": "# Note 1\n\nWritten by the fake Messages API.\n",
    }
    assert first.text == "I'll write that down."

    request.messages += [
        Message(role="assistant", content=first.content),
        Message(
            role="user",
            content=[
                ToolResultBlock(tool_use_id=call.id, content="wrote notes/1.md"),
            ],
        ),
    ]
    second = await provider.complete(request)

    assert second.stop_reason == "end_turn"
    assert second.text == "Done."
    assert second.tool_uses == []
    first_body, second_body = api.bodies
    assert first_body["system"] == "You are the backend engineer."
    assert first_body["tools"] == [WRITE_FILE.model_dump()]
    assert second_body["tools"] == first_body["tools"]
    assert second_body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "I'll write that down."},
            {"type": "tool_use", "id": call.id, "name": "write_file", "input": call.input},
        ],
    }
    assert second_body["messages"][2] == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": call.id,
                "content": "wrote notes/1.md",
                "is_error": False,
            }
        ],
    }
    assert "role" not in first_body  # our routing field never reaches the wire


@pytest.mark.asyncio
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


@pytest.mark.asyncio
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


@pytest.mark.asyncio
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


# --------------------------------------------------------------------------- retryable failures


@pytest.mark.asyncio
async def test_rate_limit_is_retryable_with_retry_after_and_not_retried_by_sdk(
    api: FakeMessagesAPI, provider: AnthropicProvider
) -> None:
    api.enqueue_error(
        429,
        "Number of request tokens has exceeded your per-minute rate limit",
        headers={"retry-after": "2"},
    )
    api.enqueue_text("never reached: the SDK must not retry")

    error = await failure(provider, ask("hi"))

    assert error.retryable is True
    assert error.status == 429
    assert error.retry_after == 2.0
    assert "rate_limit_error" in str(error)
    assert "per-minute rate limit" in str(error)
    assert len(api.requests) == 1
    assert api.pending == 1


@pytest.mark.asyncio
async def test_retry_after_ms_wins_over_retry_after(
    api: FakeMessagesAPI, provider: AnthropicProvider
) -> None:
    api.enqueue_error(429, "slow down", headers={"retry-after-ms": "1500", "retry-after": "2"})

    error = await failure(provider, ask("hi"))

    assert error.retryable is True
    assert error.retry_after == 1.5


@pytest.mark.asyncio
async def test_retry_after_http_date(api: FakeMessagesAPI, provider: AnthropicProvider) -> None:
    # A date in the past means "now": never a negative wait.
    api.enqueue_error(503, "maintenance", headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})

    error = await failure(provider, ask("hi"))

    assert error.retryable is True
    assert error.retry_after == 0.0


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (529, "overloaded_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "api_error"),
        (408, "timeout_error"),
        (409, "api_error"),
    ],
)
async def test_transient_statuses_are_retryable(
    api: FakeMessagesAPI, provider: AnthropicProvider, status: int, error_type: str
) -> None:
    api.enqueue_error(status, "try again later", error_type=error_type)

    error = await failure(provider, ask("hi"))

    assert error.retryable is True
    assert error.status == status
    assert error.retry_after is None
    assert f"{status} {error_type}: try again later" in str(error)
    assert "request-id req_" in str(error)
    assert len(api.requests) == 1


@pytest.mark.asyncio
async def test_non_json_gateway_error_is_retryable(
    api: FakeMessagesAPI, provider: AnthropicProvider
) -> None:
    api.enqueue(RawReply(502, b"<html><body>502 Bad Gateway</body></html>"))

    error = await failure(provider, ask("hi"))

    assert error.retryable is True
    assert error.status == 502
    assert "502 Bad Gateway" in str(error)


@pytest.mark.asyncio
async def test_dropped_connection_is_retryable(
    api: FakeMessagesAPI, provider: AnthropicProvider
) -> None:
    api.enqueue_drop()
    api.enqueue_text("never reached")

    error = await failure(provider, ask("hi"))

    assert error.retryable is True
    assert error.status is None
    assert "connection error" in str(error)
    assert len(api.requests) == 1


@pytest.mark.asyncio
async def test_timeout_is_retryable(api: FakeMessagesAPI) -> None:
    api.enqueue(MessageReply(text_message("too late"), delay_seconds=5))
    provider = AnthropicProvider(api_key="test-key", base_url=api.base_url, timeout_seconds=0.3)
    try:
        error = await failure(provider, ask("hi"))
    finally:
        await provider.aclose()

    assert error.retryable is True
    assert "timed out" in str(error)
    assert len(api.requests) == 1


@pytest.mark.asyncio
async def test_should_retry_header_overrides_status(
    api: FakeMessagesAPI, provider: AnthropicProvider
) -> None:
    api.enqueue_error(500, "do not bother", headers={"x-should-retry": "false"})
    api.enqueue_error(400, "transient after all", headers={"x-should-retry": "true"})

    first = await failure(provider, ask("hi"))
    second = await failure(provider, ask("hi"))

    assert first.retryable is False
    assert second.retryable is True


# --------------------------------------------------------------------------- permanent failures


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
    ],
)
async def test_client_errors_are_not_retryable(
    api: FakeMessagesAPI, provider: AnthropicProvider, status: int, error_type: str
) -> None:
    api.enqueue_error(status, "messages.0.content: Field required", headers={"retry-after": "9"})

    error = await failure(provider, ask("hi"))

    assert error.retryable is False
    assert error.status == status
    assert error.retry_after is None
    assert f"{status} {error_type}" in str(error)
    assert "messages.0.content: Field required" in str(error)
    assert len(api.requests) == 1


@pytest.mark.asyncio
async def test_bad_api_key_is_not_retryable(api: FakeMessagesAPI) -> None:
    provider = AnthropicProvider(api_key="bad-key", base_url=api.base_url)
    try:
        error = await failure(provider, ask("hi"))
    finally:
        await provider.aclose()

    assert error.retryable is False
    assert error.status == 401
    assert "authentication_error: invalid x-api-key" in str(error)


@pytest.mark.asyncio
async def test_unanswered_tool_use_is_rejected_like_the_real_api(
    api: FakeMessagesAPI, provider: AnthropicProvider
) -> None:
    request = ask("hi", tools=[WRITE_FILE])
    request.messages += [
        Message(
            role="assistant",
            content=[
                ToolUseBlock(id="toolu_1", name="write_file", input={"path": "a", "content": ""}),
            ],
        ),
        Message(role="user", content=[TextBlock(text="forgot the tool_result")]),
    ]

    error = await failure(provider, request)

    assert error.retryable is False
    assert error.status == 400
    assert "`tool_use` ids were found without `tool_result` blocks" in str(error)
    assert "toolu_1" in str(error)


# --------------------------------------------------------------------------- pricing


def test_price_usd_arithmetic() -> None:
    usage = Usage(
        input_tokens=1_000,
        output_tokens=2_000,
        cache_creation_input_tokens=4_000,
        cache_read_input_tokens=10_000,
    )

    # 1000*3 + 2000*15 + 4000*3.75 + 10000*0.30 = 51,000 USD per million tokens
    assert price_usd("claude-sonnet-4-5-20250929", usage) == pytest.approx(0.051)
    # 1000*15 + 2000*75 + 4000*18.75 + 10000*1.50 = 255,000
    assert price_usd("claude-opus-4-1", usage) == pytest.approx(0.255)
    # 1000*0.80 + 2000*4 + 4000*1.00 + 10000*0.08 = 13,600
    assert price_usd("claude-3-5-haiku-20241022", usage) == pytest.approx(0.0136)
    assert price_usd("some-future-model", usage) == price_usd("claude-sonnet-4-5", usage)
    assert price_usd("claude-sonnet-4-5", Usage()) == 0.0


def test_price_prefers_most_specific_key() -> None:
    assert PRICING["claude-opus-4-5"].input < PRICING["claude-opus"].input
    usage = Usage(input_tokens=1_000_000)
    assert price_usd("claude-opus-4-5-20251101", usage) == PRICING["claude-opus-4-5"].input
    assert price_usd("claude-opus-4-20250514", usage) == PRICING["claude-opus"].input
    assert price_usd("claude-haiku-4-5", usage) == PRICING["claude-haiku"].input
    bedrock_id = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
    assert price_usd(bedrock_id, usage) == PRICING["claude-3-5-haiku"].input
    assert price_usd("haiku-finetune", usage) == PRICING["claude-haiku"].input


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
