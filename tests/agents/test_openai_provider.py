"""OpenAICompatibleProvider with the real `openai` SDK against the loopback chat completions fake."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
import structlog

from agents.llm import ProviderConfigError, RoleOverrides
from agents.pricing import PRICING
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
from agents.providers.anthropic import AnthropicProvider
from agents.providers.openai_compat import OpenAICompatibleProvider, is_openai_platform
from core.contracts import Usage
from core.infrastructure.settings import ProviderSettings, Settings
from core.services.providers import make_provider
from offline import OfflineProvider
from tests.fakes.openai_api import (
    DropConnection,
    FakeOpenAIAPI,
    MessageReply,
    RawReply,
    completion,
    text_completion,
    tool_call_completion,
)

pytestmark = pytest.mark.timeout(30)

MODEL = "llama3.1:8b"

WRITE_FILE = ToolDefinition(
    name="write_file",
    description="Create or overwrite a file in the workspace.",
    input_schema={
        "type": "object",
        "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["path", "content"],
    },
)
READ_FILE = ToolDefinition(
    name="read_file",
    description="Read a file.",
    input_schema={"type": "object", "properties": {"path": {"type": "string"}}},
)


@pytest.fixture
def api() -> Iterator[FakeOpenAIAPI]:
    with FakeOpenAIAPI() as fake:
        yield fake


@pytest_asyncio.fixture
async def provider(api: FakeOpenAIAPI) -> AsyncIterator[OpenAICompatibleProvider]:
    client = OpenAICompatibleProvider(model=MODEL, base_url=api.base_url)
    yield client
    await client.aclose()


def ask(
    text: str, *, tools: list[ToolDefinition] | None = None, model: str = MODEL, role: str = ""
) -> ModelRequest:
    return ModelRequest(
        model=model,
        system="You are the backend engineer.",
        messages=[Message(role="user", content=[TextBlock(text=text)])],
        tools=tools or [],
        max_tokens=1024,
        role=role,
    )


async def failure(provider: LLMProvider, request: ModelRequest) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await provider.complete(request)
    return caught.value


# --------------------------------------------------------------------------- success


async def test_text_completion_without_a_key(
    api: FakeOpenAIAPI, provider: OpenAICompatibleProvider
) -> None:
    api.enqueue_text("Hello from the fake.")

    response = await provider.complete(ask("Say hello"))

    assert isinstance(provider, LLMProvider)
    assert (provider.name, provider.default_model) == ("openai", MODEL)
    assert response.text == "Hello from the fake."
    assert response.stop_reason == "end_turn"
    assert response.model == MODEL
    assert response.id.startswith("chatcmpl")
    assert response.tool_uses == []
    [received] = api.requests
    assert (received.method, received.path) == ("POST", "/v1/chat/completions")
    assert "authorization" not in received.headers  # a local server gets no key at all
    assert received.json == {
        "model": MODEL,
        "max_tokens": 1024,  # what local servers read; see test_max_tokens_field
        "messages": [
            {"role": "system", "content": "You are the backend engineer."},
            {"role": "user", "content": "Say hello"},
        ],
    }


async def test_api_key_is_sent_as_bearer_and_a_wrong_one_is_final() -> None:
    with FakeOpenAIAPI(api_key="sk-test-key") as api:
        good = OpenAICompatibleProvider(model=MODEL, api_key="sk-test-key", base_url=api.base_url)
        bad = OpenAICompatibleProvider(model=MODEL, api_key="sk-wrong", base_url=api.base_url)
        keyless = OpenAICompatibleProvider(model=MODEL, base_url=api.base_url)
        try:
            assert (await good.complete(ask("hi"))).text == "Done."
            wrong = await failure(bad, ask("hi"))
            missing = await failure(keyless, ask("hi"))
        finally:
            for client in (good, bad, keyless):
                await client.aclose()

    assert api.requests[0].api_key == "sk-test-key"
    assert wrong.retryable is False
    assert wrong.status == 401
    assert "401 invalid_api_key: Incorrect API key provided: sk-wrong" in str(wrong)
    assert missing.retryable is False
    assert "You didn't provide an API key" in str(missing)


async def test_empty_model_falls_back_to_default(
    api: FakeOpenAIAPI, provider: OpenAICompatibleProvider
) -> None:
    response = await provider.complete(ask("hi", model=""))

    assert api.requests[0].json["model"] == MODEL
    assert response.model == MODEL


@pytest.mark.parametrize(
    ("field", "expected"),
    [(None, "max_tokens"), ("max_completion_tokens", "max_completion_tokens")],
)
async def test_max_tokens_field(api: FakeOpenAIAPI, field: str | None, expected: str) -> None:
    provider = OpenAICompatibleProvider(
        model=MODEL,
        base_url=api.base_url,
        max_tokens_field=field,  # type: ignore[arg-type]
    )
    try:
        await provider.complete(ask("hi"))
    finally:
        await provider.aclose()

    body = api.requests[0].json
    assert body[expected] == 1024
    assert {"max_tokens", "max_completion_tokens"} & set(body) == {expected}


def test_openai_platform_detection() -> None:
    assert is_openai_platform(None)
    assert is_openai_platform("https://api.openai.com/v1")
    assert not is_openai_platform("http://127.0.0.1:11434/v1")
    assert not is_openai_platform("https://api.openai.com.evil.example/v1")
    # OpenAI's own API gets the field its reasoning models require
    platform = OpenAICompatibleProvider(model="gpt-4.1", api_key="sk-x")
    assert platform.max_tokens_field == "max_completion_tokens"


async def test_tool_call_round_trip(api: FakeOpenAIAPI, provider: OpenAICompatibleProvider) -> None:
    request = ask("Write a note", tools=[WRITE_FILE], role="backend_engineer")

    first = await provider.complete(request)

    assert first.stop_reason == "tool_use"
    [call] = first.tool_uses
    assert call.name == "write_file"
    assert call.input == {
        "path": "notes/1.md",
        "content": "# Note 1\n\nWritten by the fake OpenAI API.\n",
    }
    assert first.text == "I'll write that down."

    request.messages += [
        Message(role="assistant", content=first.content),
        Message(role="user", content=[ToolResultBlock(tool_use_id=call.id, content="wrote it")]),
    ]
    second = await provider.complete(request)

    assert second.stop_reason == "end_turn"
    assert second.text == "Done."
    first_body, second_body = api.bodies
    assert first_body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "write_file",
                "description": WRITE_FILE.description,
                "parameters": WRITE_FILE.input_schema,
            },
        }
    ]
    assert second_body["tools"] == first_body["tools"]
    assistant, tool = second_body["messages"][2:]
    assert assistant == {
        "role": "assistant",
        "content": "I'll write that down.",
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": "write_file", "arguments": json.dumps(call.input)},
            }
        ],
    }
    assert tool == {"role": "tool", "tool_call_id": call.id, "content": "wrote it"}
    assert "role" not in first_body  # our routing field never reaches the wire


async def test_parallel_tool_calls_errors_and_text_after_results(
    api: FakeOpenAIAPI, provider: OpenAICompatibleProvider
) -> None:
    api.enqueue(
        completion(
            None,
            [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "a.md"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "b.md"}'},
                },
            ],
        )
    )
    request = ask("Read both", tools=[READ_FILE])

    first = await provider.complete(request)

    assert [(c.id, c.input) for c in first.tool_uses] == [
        ("call_a", {"path": "a.md"}),
        ("call_b", {"path": "b.md"}),
    ]
    assert first.text == ""
    request.messages += [
        Message(role="assistant", content=first.content),
        Message(
            role="user",
            content=[
                TextBlock(text="Also, hurry."),
                ToolResultBlock(tool_use_id="call_a", content="A"),
                ToolResultBlock(tool_use_id="call_b", content="no such file", is_error=True),
            ],
        ),
    ]
    await provider.complete(request)

    assert api.bodies[1]["messages"][2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "a.md"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "b.md"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "A"},
        {"role": "tool", "tool_call_id": "call_b", "content": "Error: no such file"},
        {"role": "user", "content": "Also, hurry."},
    ]


async def test_usage_splits_cached_and_cache_write_tokens_out_of_prompt_tokens(
    api: FakeOpenAIAPI, provider: OpenAICompatibleProvider
) -> None:
    api.enqueue(
        text_completion(
            "cached",
            usage={
                "prompt_tokens": 1000,
                "completion_tokens": 50,
                "prompt_tokens_details": {"cached_tokens": 600},
            },
        ),
        text_completion(
            "written",
            usage={
                "prompt_tokens": 900,
                "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 300},
            },
        ),
    )

    cached = await provider.complete(ask("hi"))
    written = await provider.complete(ask("hi"))

    assert cached.usage == Usage(input_tokens=400, output_tokens=50, cache_read_input_tokens=600)
    assert written.usage == Usage(
        input_tokens=500,
        output_tokens=5,
        cache_read_input_tokens=100,
        cache_creation_input_tokens=300,
    )
    served = api.successes[0]["usage"]
    assert cached.usage.total == served["total_tokens"] == 1050


async def test_missing_usage_counts_as_zero(
    api: FakeOpenAIAPI, provider: OpenAICompatibleProvider
) -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "k"}}
        ],
    }
    api.enqueue(RawReply(200, json.dumps(body).encode(), "application/json"))

    response = await provider.complete(ask("hi"))

    assert response.usage == Usage()
    assert response.text == "k"


@pytest.mark.parametrize(
    ("reply", "stop_reason", "text"),
    [
        (text_completion("cut", finish_reason="length"), "max_tokens", "cut"),
        (text_completion("", finish_reason="content_filter"), "refusal", ""),
        (completion(None, refusal="I can't help with that."), "refusal", "I can't help with that."),
        # Ollama says "stop" even when it returns tool calls: what came back decides
        (tool_call_completion("read_file", {"path": "x"}, finish_reason="stop"), "tool_use", ""),
        # a "tool_calls" finish without a call leaves nothing to run
        (text_completion("hm", finish_reason="tool_calls"), "end_turn", "hm"),
        (text_completion("odd", finish_reason="eos"), "end_turn", "odd"),
    ],
)
async def test_finish_reasons(
    api: FakeOpenAIAPI,
    provider: OpenAICompatibleProvider,
    reply: dict[str, object],
    stop_reason: str,
    text: str,
) -> None:
    api.enqueue(reply)

    response = await provider.complete(ask("hi", tools=[READ_FILE]))

    assert response.stop_reason == stop_reason
    assert response.text == text


async def test_empty_arguments_are_an_empty_input(
    api: FakeOpenAIAPI, provider: OpenAICompatibleProvider
) -> None:
    api.enqueue(tool_call_completion("list_files", ""))

    response = await provider.complete(ask("hi"))

    assert [(c.name, c.input) for c in response.tool_uses] == [("list_files", {})]


@pytest.mark.parametrize("arguments", ['{"path": "a.md"', '["a.md"]'])
async def test_arguments_that_are_not_a_json_object_are_retryable(
    api: FakeOpenAIAPI, provider: OpenAICompatibleProvider, arguments: str
) -> None:
    api.enqueue(tool_call_completion("read_file", arguments))

    error = await failure(provider, ask("hi", tools=[READ_FILE]))

    assert error.retryable is True
    assert "arguments for tool 'read_file' are not a JSON object" in str(error)
    assert arguments in str(error)


async def test_no_choices_is_retryable_with_the_servers_reason(
    api: FakeOpenAIAPI, provider: OpenAICompatibleProvider
) -> None:
    body = {"id": "x", "object": "chat.completion", "created": 1, "model": MODEL, "choices": []}
    api.enqueue(
        RawReply(
            200,
            json.dumps({**body, "error": {"message": "model runner crashed"}}).encode(),
            "application/json",
        )
    )

    error = await failure(provider, ask("hi"))

    assert error.retryable is True
    assert "no choices: model runner crashed" in str(error)


# --------------------------------------------------------------------------- retryable failures


async def test_rate_limit_is_retryable_with_retry_after_and_not_retried_by_sdk(
    api: FakeOpenAIAPI, provider: OpenAICompatibleProvider
) -> None:
    api.enqueue_error(
        429,
        "Rate limit reached for gpt-4.1 on requests per min (RPM): Limit 3, Used 3.",
        headers={"retry-after": "2"},
    )
    api.enqueue_text("never reached: the SDK must not retry")

    error = await failure(provider, ask("hi"))

    assert error.retryable is True
    assert error.status == 429
    assert error.retry_after == 2.0
    assert "429 rate_limit_exceeded: Rate limit reached for gpt-4.1" in str(error)
    assert "request-id req_" in str(error)
    assert len(api.requests) == 1
    assert api.pending == 1


async def test_retry_after_ms_wins_over_retry_after(
    api: FakeOpenAIAPI, provider: OpenAICompatibleProvider
) -> None:
    api.enqueue_error(429, "slow down", headers={"retry-after-ms": "1500", "retry-after": "2"})

    error = await failure(provider, ask("hi"))

    assert error.retry_after == 1.5


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503, 504])
async def test_transient_statuses_are_retryable(
    api: FakeOpenAIAPI, provider: OpenAICompatibleProvider, status: int
) -> None:
    api.enqueue_error(status, "try again later")

    error = await failure(provider, ask("hi"))

    assert error.retryable is True
    assert error.status == status
    assert error.retry_after is None
    assert "try again later" in str(error)
    assert len(api.requests) == 1


async def test_exhausted_quota_is_not_retryable_though_it_is_a_429(
    api: FakeOpenAIAPI, provider: OpenAICompatibleProvider
) -> None:
    api.enqueue_error(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        error_type="insufficient_quota",
        code="insufficient_quota",
        headers={"retry-after": "5"},
    )

    error = await failure(provider, ask("hi"))

    assert error.retryable is False
    assert error.retry_after is None
    assert "exceeded your current quota" in str(error)


async def test_non_json_gateway_error_is_retryable(
    api: FakeOpenAIAPI, provider: OpenAICompatibleProvider
) -> None:
    api.enqueue(RawReply(502, b"<html><body>502 Bad Gateway</body></html>"))

    error = await failure(provider, ask("hi"))

    assert error.retryable is True
    assert "502 Bad Gateway" in str(error)


@pytest.mark.parametrize("fault", ["drop", "mid-response"])
async def test_dropped_connections_are_retryable(
    api: FakeOpenAIAPI, provider: OpenAICompatibleProvider, fault: str
) -> None:
    if fault == "drop":
        api.enqueue(DropConnection())
    else:
        api.enqueue_drop_mid_response()
    api.enqueue_text("never reached")

    error = await failure(provider, ask("hi"))

    assert error.retryable is True
    assert error.status is None
    assert "connection error" in str(error)
    assert api.base_url in str(error)
    assert len(api.requests) == 1
    assert api.successes == []  # a cut-off answer was never delivered


async def test_unreachable_server_is_retryable() -> None:
    with FakeOpenAIAPI() as api:
        base_url = api.base_url  # the port is free again once the server is closed
    provider = OpenAICompatibleProvider(model=MODEL, base_url=base_url)
    try:
        error = await failure(provider, ask("hi"))
    finally:
        await provider.aclose()

    assert error.retryable is True
    assert "connection error" in str(error)


async def test_timeout_is_retryable(api: FakeOpenAIAPI) -> None:
    api.enqueue(MessageReply(text_completion("too late"), delay_seconds=5))
    provider = OpenAICompatibleProvider(model=MODEL, base_url=api.base_url, timeout_seconds=0.3)
    try:
        error = await failure(provider, ask("hi"))
    finally:
        await provider.aclose()

    assert error.retryable is True
    assert "timed out" in str(error)
    assert len(api.requests) == 1


async def test_should_retry_header_overrides_status(
    api: FakeOpenAIAPI, provider: OpenAICompatibleProvider
) -> None:
    api.enqueue_error(500, "do not bother", headers={"x-should-retry": "false"})
    api.enqueue_error(400, "transient after all", headers={"x-should-retry": "true"})

    first = await failure(provider, ask("hi"))
    second = await failure(provider, ask("hi"))

    assert first.retryable is False
    assert second.retryable is True


# --------------------------------------------------------------------------- permanent failures


@pytest.mark.parametrize(
    ("status", "label"),
    [
        (400, "invalid_request_error"),
        (403, "unsupported_country_region_territory"),
        (404, "model_not_found"),
        (413, "invalid_request_error"),
        (422, "invalid_request_error"),
    ],
)
async def test_client_errors_are_not_retryable(
    api: FakeOpenAIAPI, provider: OpenAICompatibleProvider, status: int, label: str
) -> None:
    api.enqueue_error(status, "This model's maximum context length is 8192 tokens.")

    error = await failure(provider, ask("hi"))

    assert error.retryable is False
    assert error.status == status
    assert error.retry_after is None
    assert f"{status} {label}: This model's maximum context length is 8192 tokens." in str(error)
    assert len(api.requests) == 1


async def test_unanswered_tool_call_is_rejected_like_the_real_api(
    api: FakeOpenAIAPI, provider: OpenAICompatibleProvider
) -> None:
    request = ask("hi", tools=[READ_FILE])
    request.messages += [
        Message(
            role="assistant",
            content=[ToolUseBlock(id="call_1", name="read_file", input={"path": "a"})],
        ),
        Message(role="user", content=[TextBlock(text="forgot the tool result")]),
    ]

    error = await failure(provider, request)

    assert error.retryable is False
    assert error.status == 400
    assert "did not have response messages: call_1" in str(error)


async def test_fake_server_error_from_a_broken_responder(api: FakeOpenAIAPI) -> None:
    def broken(body: dict[str, object]) -> dict[str, object]:
        raise KeyError("oops")

    api.responder = broken
    with httpx.Client(base_url=api.base_url) as http:
        response = http.post(
            "/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        )
        unknown_field = http.post(
            "/chat/completions",
            json={"model": "m", "role": "x", "messages": [{"role": "user", "content": "hi"}]},
        )

    assert response.status_code == 500
    assert response.headers["x-request-id"].startswith("req_")
    assert response.json()["error"]["type"] == "server_error"
    assert "fake responder raised KeyError('oops')" in response.json()["error"]["message"]
    assert unknown_field.status_code == 400
    assert unknown_field.json()["error"] == {
        "message": "Unrecognized request argument supplied: role",
        "type": "invalid_request_error",
        "param": "role",
        "code": None,
    }


# --------------------------------------------------------------------------- pricing


def test_cost_of_a_listed_model_counts_cached_tokens_at_the_cache_rate() -> None:
    provider = OpenAICompatibleProvider(model="gpt-4o-mini", api_key="sk-x")
    usage = Usage(input_tokens=400_000, output_tokens=100_000, cache_read_input_tokens=600_000)

    price = PRICING["gpt-4o-mini"]
    assert provider.cost_usd("gpt-4o-mini-2024-07-18", usage) == pytest.approx(
        0.4 * price.input + 0.1 * price.output + 0.6 * price.cache_read
    )
    assert price.cache_read < price.input


def test_an_unlisted_model_is_free_and_says_so_once() -> None:
    provider = OpenAICompatibleProvider(model=MODEL, base_url="http://127.0.0.1:9/v1")
    with structlog.testing.capture_logs() as logs:
        first = provider.cost_usd("qwen2.5-coder:32b", Usage(input_tokens=10**6))
        second = provider.cost_usd("qwen2.5-coder:32b", Usage(output_tokens=10**6))

    assert first == second == 0.0
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert [w["model"] for w in warnings] == ["qwen2.5-coder:32b"]
    assert "MODEL_PRICING" in warnings[0]["event"]


# --------------------------------------------------------------------------- settings


def settings(**values: object) -> ProviderSettings:
    """Provider settings from these values only: no environment, no .env file."""
    return Settings.model_validate(values).provider


async def test_make_provider_builds_the_openai_provider_from_settings(
    api: FakeOpenAIAPI,
) -> None:
    provider = make_provider(
        settings(
            LLM_PROVIDER="openai",
            OPENAI_BASE_URL=api.base_url,
            LLM_MODEL=MODEL,
            MODEL_PRICING={MODEL: {"input": 1.0, "output": 2.0}},
        )
    )
    assert isinstance(provider, OpenAICompatibleProvider)
    try:
        response = await provider.complete(ask("", model=""))
    finally:
        await provider.aclose()

    assert api.requests[0].json["model"] == MODEL
    assert "authorization" not in api.requests[0].headers
    assert provider.cost_usd(response.model, Usage(input_tokens=10**6, output_tokens=10**6)) == 3.0


def test_make_provider_on_openais_own_api_defaults_the_model_and_needs_a_key() -> None:
    provider = make_provider(settings(LLM_PROVIDER="openai", OPENAI_API_KEY="sk-x"))

    assert isinstance(provider, OpenAICompatibleProvider)
    assert provider.default_model == "gpt-4.1"
    assert provider.base_url == "https://api.openai.com/v1"
    with pytest.raises(ProviderConfigError, match="needs OPENAI_API_KEY"):
        make_provider(settings(LLM_PROVIDER="openai"))


def test_make_provider_refuses_bad_settings() -> None:
    with pytest.raises(ProviderConfigError, match="needs LLM_MODEL"):
        make_provider(settings(LLM_PROVIDER="openai", OPENAI_BASE_URL="http://127.0.0.1:1/v1"))
    with pytest.raises(ProviderConfigError, match=r"unknown LLM_PROVIDER 'gemini'.*openai"):
        make_provider(settings(LLM_PROVIDER="gemini"))
    with pytest.raises(ProviderConfigError, match=r"MODEL_PRICING\['local'\]: output"):
        make_provider(
            settings(
                LLM_PROVIDER="anthropic",
                ANTHROPIC_API_KEY="k",
                MODEL_PRICING={"local": {"input": 1.0}},
            )
        )
    with pytest.raises(ProviderConfigError, match="LLM_ROLE_MODELS names unknown roles: wizard"):
        make_provider(
            settings(
                LLM_PROVIDER="anthropic",
                ANTHROPIC_API_KEY="k",
                LLM_ROLE_MODELS={"wizard": "claude-opus-4-5"},
            )
        )
    with pytest.raises(ProviderConfigError, match="at least 1 token; not so for: tech_lead"):
        make_provider(
            settings(
                LLM_PROVIDER="anthropic",
                ANTHROPIC_API_KEY="k",
                LLM_ROLE_MAX_TOKENS={"tech_lead": 0},
            )
        )


def test_role_settings_are_read_from_the_environment_as_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_ROLE_MODELS", '{"backend_engineer": "gpt-4.1"}')
    monkeypatch.setenv("LLM_ROLE_MAX_TOKENS", '{"backend_engineer": 32000}')
    monkeypatch.setenv("MODEL_PRICING", '{"my-model": {"input": 1, "output": 2}}')

    loaded = Settings(_env_file=None)

    assert loaded.provider.llm_role_models == {"backend_engineer": "gpt-4.1"}
    assert loaded.provider.llm_role_max_tokens == {"backend_engineer": 32000}
    assert loaded.provider.model_pricing == {"my-model": {"input": 1.0, "output": 2.0}}


def test_no_role_settings_no_wrapper_and_offline_is_never_wrapped() -> None:
    plain = make_provider(settings(LLM_PROVIDER="anthropic", ANTHROPIC_API_KEY="k"))
    offline = make_provider(
        settings(LLM_PROVIDER="offline", LLM_ROLE_MODELS={"tech_lead": "claude-opus-4-5"})
    )

    assert isinstance(plain, AnthropicProvider)
    assert isinstance(offline, OfflineProvider)


async def test_role_models_and_max_tokens_reach_the_wire(api: FakeOpenAIAPI) -> None:
    provider = make_provider(
        settings(
            LLM_PROVIDER="openai",
            OPENAI_BASE_URL=api.base_url,
            LLM_MODEL=MODEL,
            LLM_ROLE_MODELS={"backend_engineer": "qwen2.5-coder:32b"},
            LLM_ROLE_MAX_TOKENS={"backend_engineer": 32000, "tech_lead": 2048},
        )
    )
    assert isinstance(provider, RoleOverrides)
    assert (provider.name, provider.default_model) == ("openai", MODEL)
    try:
        # the deployment's default model (what the activity asks for when nothing else was
        # chosen) gives way to the role's model
        backend = await provider.complete(ask("hi", model=MODEL, role="backend_engineer"))
        await provider.complete(ask("hi", model="", role="backend_engineer"))
        # a model chosen for the run or the task wins over the role's model
        await provider.complete(ask("hi", model="llama3.3:70b", role="backend_engineer"))
        # other roles keep the default model; their own limit applies
        await provider.complete(ask("hi", model=MODEL, role="tech_lead"))
        await provider.complete(ask("hi", model=MODEL, role="business_analyst"))
    finally:
        await provider.aclose()

    assert provider.model_for("backend_engineer") == "qwen2.5-coder:32b"
    assert provider.model_for("backend_engineer", "llama3.3:70b") == "llama3.3:70b"
    assert provider.model_for("tech_lead") == MODEL
    sent = [(body["model"], body["max_tokens"]) for body in api.bodies]
    assert sent == [
        ("qwen2.5-coder:32b", 32000),
        ("qwen2.5-coder:32b", 32000),
        ("llama3.3:70b", 32000),
        (MODEL, 2048),
        (MODEL, 1024),
    ]
    assert backend.model == "qwen2.5-coder:32b"
