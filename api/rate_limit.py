"""Requests per minute per caller, and failed authentications per client address: 429 and Retry-After.

Counts live in `RATE_LIMIT_STORAGE_URI`: in memory for one API process, or Redis so
every replica shares them. The `limits` library does the counting (moving window).

- A caller (an API key, or a JWT subject within its organization) may make
  `RATE_LIMIT_PER_MINUTE` requests a minute; 0 turns the limit off.
- A client address may fail authentication `AUTH_FAILURE_LIMIT` times per
  `AUTH_FAILURE_WINDOW_SECONDS`; then every request from it that presents credentials
  answers 429 until the window has moved past the failures; 0 turns it off.
"""

from __future__ import annotations

import math
import time

from fastapi import HTTPException, Request, status
from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from core.infrastructure.settings import ApiSettings


def _limiter(request: Request, settings: ApiSettings) -> MovingWindowRateLimiter:
    state = request.app.state
    limiter: MovingWindowRateLimiter | None = getattr(state, "rate_limiter", None)
    if limiter is None:
        storage = storage_from_string(f"async+{settings.rate_limit_storage_uri}")
        assert isinstance(storage, Storage)
        limiter = state.rate_limiter = MovingWindowRateLimiter(storage)
    return limiter


async def _too_many(
    limiter: MovingWindowRateLimiter, limit: RateLimitItem, bucket: str, why: str
) -> HTTPException:
    stats = await limiter.get_window_stats(limit, bucket)
    retry_after = max(1, math.ceil(stats.reset_time - time.time()))
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"{why}; retry in {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )


async def enforce_rate_limit(request: Request, bucket: str, settings: ApiSettings) -> None:
    if settings.rate_limit_per_minute <= 0:
        return  # 0 turns the limit off
    limit = RateLimitItemPerMinute(settings.rate_limit_per_minute)
    limiter = _limiter(request, settings)
    if await limiter.hit(limit, bucket):
        return
    raise await _too_many(
        limiter,
        limit,
        bucket,
        f"rate limit of {settings.rate_limit_per_minute} requests per minute reached",
    )


# --- failed authentication ----------------------------------------------------------------


def _failures(request: Request, settings: ApiSettings) -> tuple[RateLimitItem, str]:
    limit = RateLimitItemPerSecond(
        settings.auth_failure_limit, settings.auth_failure_window_seconds
    )
    client = request.client.host if request.client else "unknown"
    return limit, f"auth-failures:{client}"


async def refuse_guessing_client(request: Request, settings: ApiSettings) -> None:
    """429 while the client's address has used up its failed authentications.

    Called before a credential is checked, so a guess made while refused learns nothing,
    not even that it was right. Refused requests are not counted as failures: a good key
    behind the same address waits at most one window after the guessing stops.
    """
    if settings.auth_failure_limit <= 0:
        return
    limit, bucket = _failures(request, settings)
    limiter = _limiter(request, settings)
    if await limiter.test(limit, bucket):
        return
    raise await _too_many(
        limiter,
        limit,
        bucket,
        f"{settings.auth_failure_limit} failed authentications from this address in "
        f"{settings.auth_failure_window_seconds} s",
    )


async def count_failed_authentication(request: Request, settings: ApiSettings) -> None:
    if settings.auth_failure_limit <= 0:
        return
    limit, bucket = _failures(request, settings)
    await _limiter(request, settings).hit(limit, bucket)
