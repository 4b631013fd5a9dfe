"""Heartbeats while an activity awaits slow work, so a dead worker is noticed in seconds.

A model call is given a short heartbeat timeout (`ORCHESTRATOR_MODEL_HEARTBEAT_TIMEOUT`, 2 s
by default): when its worker is killed, the server retries it elsewhere that soon. The call
beats four times per timeout from its start to its end (`heartbeat_throughout`), and the
worker sends at most one beat a second to the server (`MAX_HEARTBEAT_THROTTLE`), so a beat
can be late by a second before the call counts as lost.

A worker told to stop (SIGTERM) lets its calls finish for a grace period; one still running
then is cancelled and fails with `WorkerShutdown`, a retryable error, so the server hands it
to another worker at once instead of waiting for its heartbeat timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

HEARTBEAT_EVERY_SECONDS = 5.0
BEATS_PER_TIMEOUT = 4
MAX_HEARTBEAT_THROTTLE = timedelta(seconds=1)
"""The longest a worker holds back a heartbeat (the SDK's default is 0.8 x the timeout)."""
WORKER_SHUTDOWN_ERROR = "WorkerShutdown"

T = TypeVar("T")


def heartbeat_interval() -> float:
    """Often enough that four beats fit in the activity's heartbeat timeout."""
    timeout = activity.info().heartbeat_timeout
    if timeout is None:
        return HEARTBEAT_EVERY_SECONDS
    return min(HEARTBEAT_EVERY_SECONDS, max(timeout.total_seconds() / BEATS_PER_TIMEOUT, 0.1))


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


@asynccontextmanager
async def heartbeat_throughout() -> AsyncIterator[None]:
    """Heartbeat for as long as the block runs (its database work included), and turn the
    cancel of a worker shutdown into a retryable `WorkerShutdown` failure."""
    if not activity.in_activity():
        yield
        return
    beats = asyncio.create_task(_beat(heartbeat_interval()))
    try:
        yield
    except asyncio.CancelledError:
        details = activity.cancellation_details()
        if not (activity.is_worker_shutdown() or (details and details.worker_shutdown)):
            raise
        raise ApplicationError(
            "the worker shut down before the activity finished; another worker retries it",
            type=WORKER_SHUTDOWN_ERROR,
        ) from None
    finally:
        beats.cancel()


async def _beat(interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        activity.heartbeat()
