"""Heartbeats while an activity awaits slow work, so a dead worker is noticed in seconds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import activity

HEARTBEAT_EVERY_SECONDS = 5.0

T = TypeVar("T")


def heartbeat_interval() -> float:
    """Often enough that three beats fit in the activity's heartbeat timeout."""
    timeout = activity.info().heartbeat_timeout
    if timeout is None:
        return HEARTBEAT_EVERY_SECONDS
    return min(HEARTBEAT_EVERY_SECONDS, max(timeout.total_seconds() / 3, 0.1))


async def heartbeating(work: Awaitable[T]) -> T:
    """Await `work`, heartbeating meanwhile when inside an activity (plain await outside)."""
    task = asyncio.ensure_future(work)
    if not activity.in_activity():
        return await task
    interval = heartbeat_interval()
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=interval)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        task.cancel()
