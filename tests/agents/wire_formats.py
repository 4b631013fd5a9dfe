"""The two wire formats the provider adapters speak, as the provider-contract suite drives them.

Each ``Wire`` pairs a loopback fake (``tests/fakes``) with the adapter that talks to it and
says what a request and an answer look like on that wire: the contract suite asks the
same of both, and each expectation that differs is written here once, explicitly.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from agents.pricing import PRICING, cost_usd, price_usd
from agents.protocol import (
    LLMProvider,
    Message,
    ModelRequest,
    ProviderError,
    TextBlock,
    ToolDefinition,
)
from agents.providers.anthropic import AnthropicProvider
from agents.providers.openai_compat import OpenAICompatibleProvider
from core.contracts import Usage
from tests.fakes import messages_api, openai_api
from tests.fakes.loopback import DropMidResponse, ErrorReply, LoopbackAPI, Reply, turn_of

Adapter = AnthropicProvider | OpenAICompatibleProvider

SYSTEM = "You are the backend engineer."

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


# What each adapter names after the status of an error the fake answers with by default:
# (the Messages API's error type, OpenAI's error code or else its type).
ERROR_LABELS = {
    400: ("invalid_request_error", "invalid_request_error"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "unsupported_country_region_territory"),
    404: ("not_found_error", "model_not_found"),
    408: ("timeout_error", "invalid_request_error"),
    409: ("invalid_request_error", "invalid_request_error"),
    413: ("request_too_large", "invalid_request_error"),
    422: ("invalid_request_error", "invalid_request_error"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("api_error", "server_error"),
    502: ("api_error", "server_error"),
    503: ("api_error", "server_error"),
    504: ("timeout_error", "server_error"),
    529: ("overloaded_error", "server_error"),
}


def ask(
    text: str, *, tools: list[ToolDefinition] | None = None, model: str = "", role: str = ""
) -> ModelRequest:
    """One user message to the backend engineer; `model` "" is the provider's default."""
    return ModelRequest(
        model=model,
        system=SYSTEM,
        messages=[Message(role="user", content=[TextBlock(text=text)])],
        tools=tools or [],
        max_tokens=1024,
        role=role,
    )


async def failure(provider: LLMProvider, request: ModelRequest) -> ProviderError:
    """The ProviderError the call raises; the test fails if it raises none."""
    with pytest.raises(ProviderError) as caught:
        await provider.complete(request)
    return caught.value


class Wire(ABC):
    """One wire format: its fake, its adapter and what travels between them."""

    name: str
    """The provider's name, as the ledger records it."""
    model: str
    other_model: str
    """A model that is nobody's default, to see whose default a request gets."""
    path: str
    response_id_prefix: str
    call_id_prefix: str
    labels: ClassVar[Mapping[int, str]]
    """What the adapter names after the status of an error the fake answers with."""
    run_faults: ClassVar[Mapping[tuple[str, int], Reply]]
    """What the whole run meets: a fault for the first request of some (role, turn)."""

    def __repr__(self) -> str:
        return self.name

    @abstractmethod
    def fake(self, api_key: str | None = None) -> LoopbackAPI:
        """The fake server, requiring `api_key` where its wire format checks one."""

    @abstractmethod
    def connect(self, base_url: str, **options: Any) -> Adapter:
        """The adapter on the fake at `base_url`; `options` as its constructor takes them."""

    @abstractmethod
    def request_body(self, model: str, user_text: str, max_tokens: int) -> dict[str, Any]:
        """What `ask(user_text)` looks like on the wire."""

    @abstractmethod
    def tool_param(self, tool: ToolDefinition) -> dict[str, Any]:
        """How a tool is offered on the wire."""

    @abstractmethod
    def conversation(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The request's messages without the system prompt."""

    @abstractmethod
    def answered_turn(
        self, call_id: str, tool_input: Mapping[str, Any], text: str, result: str
    ) -> list[dict[str, Any]]:
        """The messages that follow the first user message once a write_file call of
        this turn (said with `text`) was answered with `result`."""

    @abstractmethod
    def answered_call(self, body: Mapping[str, Any]) -> tuple[str, str, str, str]:
        """(tool, call id, id its result answers, result) of a second turn's request."""

    @abstractmethod
    def tool_names(self, body: Mapping[str, Any]) -> list[str]:
        """The names of the tools a request offers."""

    @abstractmethod
    def connection_error(self, base_url: str) -> str:
        """How the adapter begins the message of a connection error with `base_url`."""

    @abstractmethod
    def refused_key(self, key: str) -> str:
        """What the adapter reports when the fake refuses `key`."""

    @abstractmethod
    def unanswered_call(self, call_id: str) -> list[str]:
        """What the fake says about a tool call nobody answered."""

    @abstractmethod
    def cached_usage(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Served usage of the whole run's answers: part of every prompt cached."""

    @abstractmethod
    def usage_of(self, served: Mapping[str, Any]) -> Usage:
        """A served usage object as our four token counts."""

    @abstractmethod
    def total_tokens(self, served: Mapping[str, Any]) -> int:
        """Every token a served usage object reports."""

    @abstractmethod
    def price(self, model: str, usage: Usage) -> float:
        """The list price of `usage` on `model`, from the price table."""


class MessagesWire(Wire):
    """Anthropic's Messages API."""

    name = "anthropic"
    model = "claude-sonnet-4-6"  # not an SDK-deprecated model: those warn on every call
    other_model = "claude-haiku-4-5"
    path = messages_api.MESSAGES_PATH
    response_id_prefix = "msg_"
    call_id_prefix = "toolu_"
    labels: ClassVar[Mapping[int, str]] = {
        status: label for status, (label, _) in ERROR_LABELS.items()
    }
    run_faults: ClassVar[Mapping[tuple[str, int], Reply]] = {
        ("business_analyst", 1): ErrorReply(
            429, "rate limited, slow down", headers={"retry-after": "1"}
        ),
        ("tech_lead", 2): ErrorReply(529, "Overloaded", headers={"retry-after": "2"}),
        ("backend_engineer", 1): ErrorReply(500, "Internal server error"),
        ("frontend_engineer", 2): DropMidResponse(),
    }

    def fake(self, api_key: str | None = None) -> LoopbackAPI:
        return messages_api.FakeMessagesAPI()  # any key but BAD_API_KEY is accepted

    def connect(self, base_url: str, **options: Any) -> Adapter:
        return AnthropicProvider(
            **{"api_key": "test-key", "model": self.model, "base_url": base_url, **options}
        )

    def request_body(self, model: str, user_text: str, max_tokens: int) -> dict[str, Any]:
        return {
            "model": model,
            "max_tokens": max_tokens,
            "system": SYSTEM,
            "messages": [{"role": "user", "content": [{"type": "text", "text": user_text}]}],
        }

    def tool_param(self, tool: ToolDefinition) -> dict[str, Any]:
        return {
            "name": tool.name,
            "description": tool.description,
            "input_schema": tool.input_schema,
        }

    def conversation(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        return list(body["messages"])

    def answered_turn(
        self, call_id: str, tool_input: Mapping[str, Any], text: str, result: str
    ) -> list[dict[str, Any]]:
        call = {"type": "tool_use", "id": call_id, "name": "write_file", "input": dict(tool_input)}
        answer = {"type": "tool_result", "tool_use_id": call_id, "content": result}
        return [
            {"role": "assistant", "content": [{"type": "text", "text": text}, call]},
            {"role": "user", "content": [{**answer, "is_error": False}]},
        ]

    def answered_call(self, body: Mapping[str, Any]) -> tuple[str, str, str, str]:
        assistant, answer = self.conversation(body)[1:3]
        [call] = [b for b in assistant["content"] if b["type"] == "tool_use"]
        [result] = [b for b in answer["content"] if b["type"] == "tool_result"]
        content = result["content"]
        if not isinstance(content, str):
            content = "".join(block.get("text", "") for block in content)
        return call["name"], call["id"], result["tool_use_id"], content

    def tool_names(self, body: Mapping[str, Any]) -> list[str]:
        return [tool["name"] for tool in body.get("tools") or []]

    def connection_error(self, base_url: str) -> str:
        return "Anthropic API connection error"

    def refused_key(self, key: str) -> str:
        return "401 authentication_error: invalid x-api-key"

    def unanswered_call(self, call_id: str) -> list[str]:
        return ["`tool_use` ids were found without `tool_result` blocks", call_id]

    def cached_usage(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return {"cache_read_input_tokens": 120, "cache_creation_input_tokens": 30}

    def usage_of(self, served: Mapping[str, Any]) -> Usage:
        return Usage.model_validate(served)

    def total_tokens(self, served: Mapping[str, Any]) -> int:
        return sum(
            served.get(kind) or 0
            for kind in (
                "input_tokens",
                "output_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
            )
        )

    def price(self, model: str, usage: Usage) -> float:
        return price_usd(model, usage)


class ChatCompletionsWire(Wire):
    """An OpenAI-compatible chat completions endpoint: a local server, without a key."""

    name = "openai"
    model = "gpt-4.1-mini"
    other_model = "qwen2.5-coder:32b"
    path = openai_api.CHAT_PATH
    response_id_prefix = "chatcmpl"
    call_id_prefix = "call_"
    labels: ClassVar[Mapping[int, str]] = {
        status: label for status, (_, label) in ERROR_LABELS.items()
    }
    run_faults: ClassVar[Mapping[tuple[str, int], Reply]] = {
        ("business_analyst", 1): ErrorReply(
            429, "Rate limit reached for requests", headers={"retry-after-ms": "1000"}
        ),
        ("backend_engineer", 2): DropMidResponse(),
    }

    def fake(self, api_key: str | None = None) -> LoopbackAPI:
        return openai_api.FakeOpenAIAPI(api_key=api_key)

    def connect(self, base_url: str, **options: Any) -> Adapter:
        return OpenAICompatibleProvider(**{"model": self.model, "base_url": base_url, **options})

    def request_body(self, model: str, user_text: str, max_tokens: int) -> dict[str, Any]:
        return {
            "model": model,
            "max_tokens": max_tokens,  # what local servers read; see test_max_tokens_field
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": user_text},
            ],
        }

    def tool_param(self, tool: ToolDefinition) -> dict[str, Any]:
        function = {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.input_schema,
        }
        return {"type": "function", "function": function}

    def conversation(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [m for m in body["messages"] if m["role"] != "system"]

    def answered_turn(
        self, call_id: str, tool_input: Mapping[str, Any], text: str, result: str
    ) -> list[dict[str, Any]]:
        arguments = json.dumps(dict(tool_input))
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": "write_file", "arguments": arguments},
        }
        return [
            {"role": "assistant", "content": text, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": result},
        ]

    def answered_call(self, body: Mapping[str, Any]) -> tuple[str, str, str, str]:
        assistant, tool = self.conversation(body)[1:3]
        [call] = assistant["tool_calls"]
        assert tool["role"] == "tool"
        return call["function"]["name"], call["id"], tool["tool_call_id"], tool["content"]

    def tool_names(self, body: Mapping[str, Any]) -> list[str]:
        return [tool["function"]["name"] for tool in body.get("tools") or []]

    def connection_error(self, base_url: str) -> str:
        return f"OpenAI-compatible API connection error ({base_url})"

    def refused_key(self, key: str) -> str:
        return f"401 invalid_api_key: Incorrect API key provided: {key}"

    def unanswered_call(self, call_id: str) -> list[str]:
        return [f"did not have response messages: {call_id}"]

    def cached_usage(self, request: Mapping[str, Any]) -> dict[str, Any]:
        prompt_tokens = 400 + 100 * turn_of(request)
        return {
            "prompt_tokens": prompt_tokens,
            "prompt_tokens_details": {"cached_tokens": prompt_tokens // 4},
        }

    def usage_of(self, served: Mapping[str, Any]) -> Usage:
        # Prompt tokens include the cached ones; OpenAI reports no cache writes.
        cached = served["prompt_tokens_details"]["cached_tokens"]
        return Usage(
            input_tokens=served["prompt_tokens"] - cached,
            output_tokens=served["completion_tokens"],
            cache_read_input_tokens=cached,
        )

    def total_tokens(self, served: Mapping[str, Any]) -> int:
        return int(served["total_tokens"])

    def price(self, model: str, usage: Usage) -> float:
        return cost_usd(PRICING[model], usage)


WIRES = [MessagesWire(), ChatCompletionsWire()]
