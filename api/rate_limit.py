"""Requests per minute per caller (API key or JWT subject), answered with 429 and Retry-After.

Counts live in `RATE_LIMIT_STORAGE_URI`: in memory for one API process, or Redis so
every replica shares them. The `limits` library does the counting (moving window).
`RATE_LIMIT_PER_MINUTE=0` turns the limit off.
"""

from __future__ import annotations

import math
import time

from fastapi import HTTPException, Request, status
from limits import RateLimitItemPerMinute
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from core.settings import Settings


def _limiter(request: Request, settings: Settings) -> MovingWindowRateLimiter:
    state = request.app.state
    limiter: MovingWindowRateLimiter | None = getattr(state, "rate_limiter", None)
    if limiter is None:
        storage = storage_from_string(f"async+{settings.rate_limit_storage_uri}")
        assert isinstance(storage, Storage)
        limiter = state.rate_limiter = MovingWindowRateLimiter(storage)
    return limiter


async def enforce_rate_limit(request: Request, bucket: str, settings: Settings) -> None:
    if settings.rate_limit_per_minute <= 0:
        return  # 0 turns the limit off
    limit = RateLimitItemPerMinute(settings.rate_limit_per_minute)
    limiter = _limiter(request, settings)
    if await limiter.hit(limit, bucket):
        return
    stats = await limiter.get_window_stats(limit, bucket)
    retry_after = max(1, math.ceil(stats.reset_time - time.time()))
    raise HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"rate limit of {settings.rate_limit_per_minute} requests per minute reached; "
        f"retry in {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )
