"""HTTP failure classification shared by every provider that talks to a remote API.

Temporal's activity retry policy is the only place a model call is retried, so providers
switch their SDK's retries off and only classify a failure: can a later attempt succeed
(``retryable``), and how long did the server ask us to wait (``retry_after``)?
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime

__all__ = [
    "RETRYABLE_STATUSES",
    "describe",
    "excerpt",
    "provider_retry_delay",
    "retry_after_seconds",
    "retryable_status",
    "should_retry_header",
]

# Statuses a later attempt can succeed on, besides every 5xx (including Anthropic's 529
# overloaded): request timeout, conflict (lock contention) and rate limit.
RETRYABLE_STATUSES = frozenset({408, 409, 429})


def retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


def should_retry_header(headers: Mapping[str, str]) -> bool | None:
    """The server's explicit verdict (``x-should-retry: true|false``), when it gave one.

    Both Anthropic and OpenAI send it, and their SDKs let it beat the status table.
    """
    value = (headers.get("x-should-retry") or "").strip().lower()
    if value in ("true", "false"):
        return value == "true"
    return None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, else ``retry-after``.

    ``retry-after`` may be delta-seconds or an HTTP date (RFC 9110); a date in the past
    means "now", never a negative wait.
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


def provider_retry_delay(attempt: int, retry_after: float | None) -> float:
    """Seconds before attempt `attempt + 1` of a call the provider failed: what the server
    asked for, else 1 s doubling per attempt up to a minute (Temporal's default backoff)."""
    if retry_after is not None:
        return retry_after
    return float(min(2 ** (attempt - 1), 60))


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, for the cause of a connection error."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def excerpt(text: str, limit: int = 500) -> str:
    """A bounded excerpt of a body that is not the API's JSON envelope (a proxy's HTML page)."""
    return text.strip()[:limit] or "no error message"


def _finite_float(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
