"""Claude through the official ``anthropic`` SDK (Messages API).

The SDK's own retries are switched off (``max_retries=0``): Temporal's activity retry
policy is the single place retries happen, so a failure here is only classified
(``ProviderError.retryable``, ``retry_after``) and raised, never retried.
"""

from __future__ import annotations

from typing import Any, cast, get_args

import anthropic
from anthropic import AsyncAnthropic
from anthropic.types import MessageParam, ToolUnionParam

from agents.pricing import PRICING, ModelPrice, PriceTable, cost_usd, price_usd
from agents.protocol import (
    ContentBlock,
    ModelRequest,
    ModelResponse,
    ProviderError,
    StopReason,
    TextBlock,
    ToolDefinition,
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

# PRICING, ModelPrice and price_usd live in agents.pricing (one table for every provider);
# they stay importable from here.
__all__ = ["PRICING", "AnthropicProvider", "ModelPrice", "price_usd"]

CHEAP_MODEL = "claude-haiku-4-5"
"""For side work such as summaries (SUMMARY_MODEL overrides it)."""

_STOP_REASONS: frozenset[str] = frozenset(get_args(StopReason))


class AnthropicProvider:
    """``LLMProvider`` for the Anthropic Messages API."""

    name = "anthropic"
    prompt_caching = True

    def __init__(
        self,
        api_key: str,
        model: str = "claude-sonnet-4-6",
        base_url: str | None = None,
        timeout_seconds: float = 600.0,
        pricing: PriceTable | None = None,
    ) -> None:
        self.default_model = model
        self.cheap_model = CHEAP_MODEL
        self._timeout_seconds = timeout_seconds
        self._pricing = pricing or PriceTable()
        self._client = AsyncAnthropic(
            api_key=api_key,
            base_url=base_url or None,
            max_retries=0,
            timeout=timeout_seconds,
        )

    async def complete(self, request: ModelRequest) -> ModelResponse:
        model = request.model or self.default_model
        params = _params(request, model)
        params["max_tokens"] = request.max_tokens
        try:
            message = await self._client.messages.create(**params)
        except anthropic.APIStatusError as exc:
            raise _status_error(exc) from exc
        except anthropic.APITimeoutError as exc:
            raise ProviderError(
                f"Anthropic API request timed out (timeout {self._timeout_seconds:g}s)",
                retryable=True,
            ) from exc
        except anthropic.APIConnectionError as exc:
            # The SDK's message is a bare "Connection error."; the cause says which one.
            cause = f": {describe(exc.__cause__)}" if exc.__cause__ else ""
            raise ProviderError(f"Anthropic API connection error{cause}", retryable=True) from exc
        except anthropic.AnthropicError as exc:
            # Client-side failures (bad configuration, an unparseable response) repeat on
            # every attempt, so retrying them only burns the retry budget.
            raise ProviderError(f"Anthropic SDK error: {exc}", retryable=False) from exc
        return _to_response(message, model)

    async def count_tokens(self, request: ModelRequest) -> int | None:
        """The API's exact input token count (free, rate-limited); None when it fails."""
        try:
            counted = await self._client.messages.count_tokens(
                **_params(request, request.model or self.default_model)
            )
        except anthropic.AnthropicError:
            # Only an optimisation: the caller falls back to its estimate.
            return None
        return counted.input_tokens

    def cost_usd(self, model: str, usage: Usage) -> float:
        """List price from the shared table; an unlisted Claude model at its family's price."""
        return cost_usd(self._pricing.claude_price(model), usage)

    async def aclose(self) -> None:
        await self._client.close()


def _params(request: ModelRequest, model: str) -> dict[str, Any]:
    """The request on the wire, without `max_tokens` (count_tokens takes none)."""
    params: dict[str, Any] = {
        "model": model,
        "messages": cast(
            "list[MessageParam]",
            [msg.model_dump(mode="json", exclude_none=True) for msg in request.messages],
        ),
    }
    cache = {"cache_control": {"type": "ephemeral"}} if request.cache_prefix else {}
    # Omitted rather than sent empty: the API rejects empty system text blocks, and an
    # empty tool list only adds noise to the request.
    if request.system:
        params["system"] = (
            [{"type": "text", "text": request.system, **cache}] if cache else request.system
        )
    if request.tools:
        tools = [_tool_param(tool) for tool in request.tools]
        # Tools come first in the cached prefix; a breakpoint on the last one covers them all.
        tools[-1].update(cache)
        params["tools"] = cast("list[ToolUnionParam]", tools)
    return params


def _tool_param(tool: ToolDefinition) -> dict[str, Any]:
    """Anthropic's own tools (text editor, bash) by type and name: no schema tokens."""
    if tool.native_type is not None:
        return {"type": tool.native_type, "name": tool.name, **tool.native_options}
    return {"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}


def _to_response(message: anthropic.types.Message, requested_model: str) -> ModelResponse:
    content: list[ContentBlock] = []
    for block in message.content:
        if isinstance(block, anthropic.types.TextBlock):
            content.append(TextBlock(text=block.text))
        elif isinstance(block, anthropic.types.ToolUseBlock):
            content.append(ToolUseBlock(id=block.id, name=block.name, input=dict(block.input)))
        # Thinking, server-tool and other block kinds have no place in our protocol; the
        # agent loop acts only on text and client tool calls.
    usage = message.usage
    return ModelResponse(
        id=message.id,
        model=str(message.model or requested_model),
        content=content,
        stop_reason=_stop_reason(message.stop_reason, content),
        usage=Usage(
            input_tokens=usage.input_tokens or 0,
            output_tokens=usage.output_tokens or 0,
            cache_read_input_tokens=usage.cache_read_input_tokens or 0,
            cache_creation_input_tokens=usage.cache_creation_input_tokens or 0,
        ),
    )


def _stop_reason(raw: str | None, content: list[ContentBlock]) -> StopReason:
    if raw in _STOP_REASONS:
        return cast(StopReason, raw)
    if raw == "model_context_window_exceeded":
        # Same consequence for the caller as max_tokens: the answer was cut short.
        return "max_tokens"
    # Absent or newer than our protocol: judge by what the model actually produced.
    return "tool_use" if any(isinstance(block, ToolUseBlock) for block in content) else "end_turn"


def _status_error(exc: anthropic.APIStatusError) -> ProviderError:
    status = exc.status_code
    headers = exc.response.headers
    error_type, detail = _error_detail(exc)
    # The API's explicit verdict beats our table, as it does in the SDK's own retry logic.
    verdict = should_retry_header(headers)
    retryable = retryable_status(status) if verdict is None else verdict
    request_id = headers.get("request-id")
    message = f"Anthropic API error {status}"
    if error_type:
        message += f" {error_type}"
    message += f": {detail}"
    if request_id:
        message += f" (request-id {request_id})"
    return ProviderError(
        message,
        retryable=retryable,
        status=status,
        retry_after=retry_after_seconds(headers) if retryable else None,
    )


def _error_detail(exc: anthropic.APIStatusError) -> tuple[str | None, str]:
    """The ``error.type`` and ``error.message`` of the JSON error envelope, when present."""
    body = exc.body
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        error_type = error.get("type")
        detail = error.get("message")
        if isinstance(detail, str) and detail:
            return (error_type if isinstance(error_type, str) else None), detail
    # Not the API's envelope (e.g. a proxy's HTML page): keep a bounded excerpt of it.
    return None, excerpt(body if isinstance(body, str) else exc.message)
