"""Any OpenAI-compatible chat completions endpoint through the official ``openai`` SDK.

OpenAI itself, or a local or self-hosted server that speaks the same wire format (Ollama,
vLLM, llama.cpp's server, LM Studio, LiteLLM...): ``base_url`` says which, and the API key
is optional for servers that do not check one.

Our protocol is Anthropic-shaped; the translation both ways:

- the system prompt is the first message (``role: system``);
- an assistant turn's text is its ``content`` and its ``tool_use`` blocks its ``tool_calls``
  (``type: function``, input as a JSON ``arguments`` string);
- each ``tool_result`` block is a ``role: tool`` message carrying its ``tool_call_id``
  (OpenAI has no error flag, so an error result says so in its text);
- ``finish_reason`` maps to our stop reasons (``stop`` -> end_turn, ``tool_calls`` ->
  tool_use, ``length`` -> max_tokens, ``content_filter`` -> refusal);
- ``usage.prompt_tokens`` includes cached prompt tokens
  (``prompt_tokens_details.cached_tokens``) and any reported cache writes
  (``cache_write_tokens``); they are split out so our four token counts never overlap and
  each is priced at its own rate.

As with Anthropic, the SDK's retries are off (``max_retries=0``) and failures are only
classified for Temporal's retry policy.
"""

from __future__ import annotations

import json
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion

from agents.pricing import FREE, PriceTable, cost_usd
from agents.protocol import (
    ContentBlock,
    ModelRequest,
    ModelResponse,
    ProviderError,
    StopReason,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from agents.providers.errors import (
    describe,
    excerpt,
    retry_after_seconds,
    retryable_status,
    should_retry_header,
)
from core.contracts import Usage
from core.infrastructure.logs import get_logger

__all__ = [
    "DEFAULT_OPENAI_MODEL",
    "OPENAI_PLATFORM_URL",
    "MaxTokensField",
    "OpenAICompatibleProvider",
    "is_openai_platform",
]

OPENAI_PLATFORM_URL = "https://api.openai.com/v1"
DEFAULT_OPENAI_MODEL = "gpt-4.1"
"""The model when LLM_MODEL is unset and the endpoint is OpenAI's own; a self-hosted endpoint
has no name that works everywhere, so there LLM_MODEL is required (see ``agents.llm``)."""

MaxTokensField = Literal["max_tokens", "max_completion_tokens"]

# Error codes OpenAI sends (with a 429) for a spent account: no retry helps until someone pays.
_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})

_STOP_REASONS: dict[str, StopReason] = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}

log = get_logger(__name__)


def is_openai_platform(base_url: str | None) -> bool:
    """Whether ``base_url`` is OpenAI's own API (also when unset: the SDK's default)."""
    if not base_url:
        return True
    return (urlsplit(base_url).hostname or "").lower() == "api.openai.com"


class OpenAICompatibleProvider:
    """``LLMProvider`` for OpenAI-compatible ``/chat/completions`` endpoints, with tools."""

    name = "openai"

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout_seconds: float = 600.0,
        pricing: PriceTable | None = None,
        max_tokens_field: MaxTokensField | None = None,
    ) -> None:
        """``max_tokens_field``: the request field for the output limit. OpenAI's own API
        wants ``max_completion_tokens`` (its reasoning models reject ``max_tokens``); many
        local servers (Ollama, older llama.cpp) read only ``max_tokens``. Default: the first
        for OpenAI's own API, the second for any other endpoint."""
        self.default_model = model
        self.base_url = base_url or OPENAI_PLATFORM_URL
        self._timeout_seconds = timeout_seconds
        self._pricing = pricing or PriceTable()
        self.max_tokens_field: MaxTokensField = max_tokens_field or (
            "max_completion_tokens" if is_openai_platform(base_url) else "max_tokens"
        )
        # Without a key, send no Authorization header at all (local servers need none). The
        # SDK insists on a key at construction, so it gets a placeholder it never sends.
        self._extra_headers: dict[str, Any] | None = (
            None if api_key else {"Authorization": openai.omit}
        )
        self._client = AsyncOpenAI(
            api_key=api_key or "no-key",
            base_url=self.base_url,
            max_retries=0,
            timeout=timeout_seconds,
        )
        self._unpriced: set[str] = set()

    async def complete(self, request: ModelRequest) -> ModelResponse:
        model = request.model or self.default_model
        params: dict[str, Any] = {
            "model": model,
            "messages": chat_messages(request),
            self.max_tokens_field: request.max_tokens,
        }
        if request.tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.input_schema,
                    },
                }
                for tool in request.tools
            ]
        try:
            completion = await self._client.chat.completions.create(
                **params, extra_headers=self._extra_headers
            )
        except openai.APIStatusError as exc:
            raise _status_error(exc) from exc
        except openai.APITimeoutError as exc:
            raise ProviderError(
                f"OpenAI-compatible API request to {self.base_url} timed out "
                f"(timeout {self._timeout_seconds:g}s)",
                retryable=True,
            ) from exc
        except openai.APIConnectionError as exc:
            cause = f": {describe(exc.__cause__)}" if exc.__cause__ else ""
            raise ProviderError(
                f"OpenAI-compatible API connection error ({self.base_url}){cause}",
                retryable=True,
            ) from exc
        except openai.OpenAIError as exc:
            # Client-side failures (configuration, an unparseable response) repeat on every
            # attempt, so retrying them only burns the retry budget.
            raise ProviderError(f"OpenAI SDK error: {exc}", retryable=False) from exc
        return to_response(completion, model)

    def cost_usd(self, model: str, usage: Usage) -> float:
        """List price from the shared table; an unlisted model costs 0 (a local server)."""
        price = self._pricing.lookup(model)
        if price is None:
            if model not in self._unpriced:
                self._unpriced.add(model)
                log.warning(
                    "no price for model: its calls are counted as free; set MODEL_PRICING "
                    "if they cost money",
                    model=model,
                    base_url=self.base_url,
                )
            price = FREE
        return cost_usd(price, usage)

    async def aclose(self) -> None:
        await self._client.close()


# --------------------------------------------------------------------------- request


def chat_messages(request: ModelRequest) -> list[dict[str, Any]]:
    """Our system prompt and messages as chat completion messages."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for message in request.messages:
        texts = [block.text for block in message.content if isinstance(block, TextBlock)]
        if message.role == "assistant":
            calls = [
                {
                    "id": block.id,
                    "type": "function",
                    "function": {"name": block.name, "arguments": json.dumps(block.input)},
                }
                for block in message.content
                if isinstance(block, ToolUseBlock)
            ]
            assistant: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts)}
            if calls:
                assistant["tool_calls"] = calls
                assistant["content"] = assistant["content"] or None
            messages.append(assistant)
            continue
        # Tool results first: the API wants them right after the assistant's tool_calls.
        for block in message.content:
            if isinstance(block, ToolResultBlock):
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": block.tool_use_id,
                        "content": f"Error: {block.content}" if block.is_error else block.content,
                    }
                )
        if texts:
            messages.append({"role": "user", "content": "\n".join(texts)})
    return messages


# --------------------------------------------------------------------------- response


def to_response(completion: ChatCompletion, requested_model: str) -> ModelResponse:
    if not completion.choices:
        # Some compatible servers answer 200 with an error object instead of choices.
        extra = completion.model_extra or {}
        error = extra.get("error")
        detail = error.get("message") if isinstance(error, dict) else error
        raise ProviderError(
            f"OpenAI-compatible API returned no choices: {detail or 'empty response'}",
            retryable=True,
        )
    choice = completion.choices[0]
    message = choice.message
    content: list[ContentBlock] = []
    if message.content:
        content.append(TextBlock(text=message.content))
    elif message.refusal:
        content.append(TextBlock(text=message.refusal))
    for index, call in enumerate(message.tool_calls or []):
        if call.type != "function":
            continue  # custom (free-text) tools are never offered
        content.append(
            ToolUseBlock(
                # Some servers leave the id out; the next request needs one to pair results.
                id=call.id or f"call_{completion.id}_{index}",
                name=call.function.name,
                input=_arguments(call.function.name, call.function.arguments),
            )
        )
    return ModelResponse(
        id=completion.id,
        model=completion.model or requested_model,
        content=content,
        stop_reason=_stop_reason(
            cast(str | None, choice.finish_reason), content, refused=bool(message.refusal)
        ),
        usage=_usage(completion),
    )


def _arguments(name: str, raw: str | None) -> dict[str, Any]:
    if raw is None or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        # Sampling again may well produce valid JSON, so let the retry policy try.
        raise ProviderError(
            f"the model's arguments for tool {name!r} are not a JSON object: {excerpt(raw, 200)}",
            retryable=True,
        )
    return value


def _stop_reason(raw: str | None, content: list[ContentBlock], *, refused: bool) -> StopReason:
    has_tool_use = any(isinstance(block, ToolUseBlock) for block in content)
    if refused and not has_tool_use:
        return "refusal"
    mapped = _STOP_REASONS.get(raw or "")
    if mapped == "max_tokens" or mapped == "refusal":
        return mapped
    # Some servers (Ollama among them) say "stop" even when they return tool calls, and a
    # "tool_calls" finish with no call we could read has nothing for the agent to run.
    return "tool_use" if has_tool_use else "end_turn"


def _usage(completion: ChatCompletion) -> Usage:
    usage = completion.usage
    if usage is None:
        return Usage()
    details = usage.prompt_tokens_details
    cache_read = (details.cached_tokens if details else None) or 0
    cache_write = (details.cache_write_tokens if details else None) or 0
    return Usage(
        input_tokens=max((usage.prompt_tokens or 0) - cache_read - cache_write, 0),
        output_tokens=usage.completion_tokens or 0,
        cache_read_input_tokens=cache_read,
        cache_creation_input_tokens=cache_write,
    )


# --------------------------------------------------------------------------- errors


def _status_error(exc: openai.APIStatusError) -> ProviderError:
    status = exc.status_code
    headers = exc.response.headers
    error_type, code, detail = _error_detail(exc)
    verdict = should_retry_header(headers)
    retryable = retryable_status(status) if verdict is None else verdict
    if code in _QUOTA_CODES or error_type in _QUOTA_CODES:
        retryable = False  # a 429 for a spent quota, not a rate limit
    message = f"OpenAI-compatible API error {status}"
    label = code or error_type
    if label:
        message += f" {label}"
    message += f": {detail}"
    request_id = headers.get("x-request-id")
    if request_id:
        message += f" (request-id {request_id})"
    return ProviderError(
        message,
        retryable=retryable,
        status=status,
        retry_after=retry_after_seconds(headers) if retryable else None,
    )


def _error_detail(exc: openai.APIStatusError) -> tuple[str | None, str | None, str]:
    """``type``, ``code`` and ``message`` of OpenAI's error object, when the body is one.

    The SDK already unwrapped ``{"error": {...}}`` into ``exc.body``; some servers send a
    bare ``{"message": ...}`` or ``{"detail": ...}`` (FastAPI-based ones), or a plain string.
    """
    body = exc.body
    if isinstance(body, dict):
        error_type = body.get("type")
        code = body.get("code")
        detail = body.get("message") or body.get("detail") or body.get("error")
        if isinstance(detail, str | list | dict) and detail:
            return (
                error_type if isinstance(error_type, str) and error_type else None,
                str(code) if code not in (None, "") else None,
                detail if isinstance(detail, str) else json.dumps(detail),
            )
    return None, None, excerpt(body if isinstance(body, str) else exc.message)
