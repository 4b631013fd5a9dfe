"""Claude through the official ``anthropic`` SDK (Messages API).

The SDK's own retries are switched off (``max_retries=0``): Temporal's activity retry
policy is the single place retries happen, so a failure here is only classified
(``ProviderError.retryable``, ``retry_after``) and raised, never retried.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple, cast, get_args

import anthropic
from anthropic import AsyncAnthropic
from anthropic.types import MessageParam, ToolUnionParam

from agents.protocol import (
    ContentBlock,
    ModelRequest,
    ModelResponse,
    ProviderError,
    StopReason,
    TextBlock,
    ToolUseBlock,
)
from core.contracts import Usage

__all__ = ["PRICING", "AnthropicProvider", "ModelPrice", "price_usd"]


class ModelPrice(NamedTuple):
    """USD per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float


# The longest key found in the model id wins, so a generation can override its family and
# cloud-vendor ids ("us.anthropic.claude-3-5-haiku-20241022-v1:0") price like the originals.
# List prices, 5-minute cache writes. An unlisted generation falls to its family's price,
# which is the newest or highest known: for budget caps, erring high is the safe side.
PRICING: dict[str, ModelPrice] = {
    "claude-opus-4-5": ModelPrice(5.00, 25.00, 6.25, 0.50),
    "claude-opus": ModelPrice(15.00, 75.00, 18.75, 1.50),
    "claude-3-opus": ModelPrice(15.00, 75.00, 18.75, 1.50),
    "claude-sonnet": ModelPrice(3.00, 15.00, 3.75, 0.30),
    "claude-3-7-sonnet": ModelPrice(3.00, 15.00, 3.75, 0.30),
    "claude-3-5-sonnet": ModelPrice(3.00, 15.00, 3.75, 0.30),
    "claude-haiku": ModelPrice(1.00, 5.00, 1.25, 0.10),
    "claude-3-5-haiku": ModelPrice(0.80, 4.00, 1.00, 0.08),
    "claude-3-haiku": ModelPrice(0.25, 1.25, 0.30, 0.03),
}
_FAMILY_FALLBACK = {"opus": "claude-opus", "haiku": "claude-haiku", "sonnet": "claude-sonnet"}
_DEFAULT_PRICE_KEY = "claude-sonnet"


def _price_for(model: str) -> ModelPrice:
    name = model.lower()
    matches = [key for key in PRICING if key in name]
    if matches:
        return PRICING[max(matches, key=len)]
    for family, key in _FAMILY_FALLBACK.items():
        if family in name:
            return PRICING[key]
    return PRICING[_DEFAULT_PRICE_KEY]


def price_usd(model: str, usage: Usage) -> float:
    """What ``usage`` costs on ``model`` at list price.

    The API reports cache reads and writes apart from ``input_tokens``, so the four
    counts add up without overlap.
    """
    price = _price_for(model)
    return (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_creation_input_tokens * price.cache_write
        + usage.cache_read_input_tokens * price.cache_read
    ) / 1_000_000


# Statuses a later attempt can succeed on: timeout, conflict (lock contention), rate limit
# and every server-side failure, including 529 overloaded.
_RETRYABLE_STATUSES = frozenset({408, 409, 429})
_STOP_REASONS: frozenset[str] = frozenset(get_args(StopReason))


class AnthropicProvider:
    """``LLMProvider`` for the Anthropic Messages API."""

    name = "anthropic"

    def __init__(
        self,
        api_key: str,
        model: str = "claude-sonnet-4-6",
        base_url: str | None = None,
        timeout_seconds: float = 600.0,
    ) -> None:
        self.default_model = model
        self._timeout_seconds = timeout_seconds
        self._client = AsyncAnthropic(
            api_key=api_key,
            base_url=base_url or None,
            max_retries=0,
            timeout=timeout_seconds,
        )

    async def complete(self, request: ModelRequest) -> ModelResponse:
        model = request.model or self.default_model
        params: dict[str, Any] = {
            "model": model,
            "max_tokens": request.max_tokens,
            "messages": cast(
                "list[MessageParam]",
                [msg.model_dump(mode="json", exclude_none=True) for msg in request.messages],
            ),
        }
        # Omitted rather than sent empty: the API rejects empty system text blocks, and an
        # empty tool list only adds noise to the request.
        if request.system:
            params["system"] = request.system
        if request.tools:
            params["tools"] = cast(
                "list[ToolUnionParam]",
                [tool.model_dump(mode="json", exclude_none=True) for tool in request.tools],
            )
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
            cause = f": {_describe(exc.__cause__)}" if exc.__cause__ else ""
            raise ProviderError(f"Anthropic API connection error{cause}", retryable=True) from exc
        except anthropic.AnthropicError as exc:
            # Client-side failures (bad configuration, an unparseable response) repeat on
            # every attempt, so retrying them only burns the retry budget.
            raise ProviderError(f"Anthropic SDK error: {exc}", retryable=False) from exc
        return _to_response(message, model)

    def cost_usd(self, model: str, usage: Usage) -> float:
        return price_usd(model, usage)

    async def aclose(self) -> None:
        await self._client.close()


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


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
    retryable = status in _RETRYABLE_STATUSES or status >= 500
    # The API's explicit verdict beats our table, as it does in the SDK's own retry logic.
    should_retry = (headers.get("x-should-retry") or "").strip().lower()
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"
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
        retry_after=_retry_after(headers) if retryable else None,
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
    text = body if isinstance(body, str) else exc.message
    return None, text.strip()[:500] or "no error message"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, else ``retry-after``.

    ``retry-after`` may be delta-seconds or an HTTP date (RFC 9110).
    """
    millis = _finite_float(headers.get("retry-after-ms"))
    if millis is not None:
        return max(millis / 1000.0, 0.0)
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _finite_float(raw)
    if seconds is not None:
        return max(seconds, 0.0)
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; HTTP dates are UTC by definition
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - time.time(), 0.0)


def _finite_float(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
