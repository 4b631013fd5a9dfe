"""What only the OpenAI-compatible adapter does, with the real `openai` SDK against the
loopback chat completions fake: its key, the output limit's field, parallel tool calls,
how prompt tokens split into cached and fresh, finish reasons, malformed answers, a spent
quota, its pricing, and the fake itself. What every adapter does is in
`test_provider_contract.py`.
"""

from __future__ import annotations

import json

import httpx
import pytest
import structlog

from agents.pricing import PRICING
from agents.protocol import Message, TextBlock, ToolResultBlock
from agents.providers.openai_compat import OpenAICompatibleProvider, is_openai_platform
from core.contracts import Usage
from tests.agents.wire_formats import READ_FILE, ChatCompletionsWire, Wire, ask, failure
from tests.fakes.loopback import RawReply
from tests.fakes.openai_api import FakeOpenAIAPI, completion, text_completion, tool_call_completion

pytestmark = pytest.mark.timeout(30)

MODEL = "llama3.1:8b"


class LocalServerWire(ChatCompletionsWire):
    """A local server's model, which has no price: nothing here is about cost."""

    model = MODEL


@pytest.fixture
def wire() -> Wire:
    return LocalServerWire()


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
    assert "authorization" not in api.requests[2].headers  # a keyless provider sends none
    assert wrong.retryable is False
    assert wrong.status == 401
    assert "401 invalid_api_key: Incorrect API key provided: sk-wrong" in str(wrong)
    assert missing.retryable is False
    assert "You didn't provide an API key" in str(missing)


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


# --------------------------------------------------------------------------- failures


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
