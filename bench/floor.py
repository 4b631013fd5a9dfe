"""The engine floor: a workflow that runs one no-op activity, one that runs many in a row
(what each step of a longer workflow costs, or a whole run's shape with a pause in each
step), and one that sleeps on a short timer (a module with no other imports, so the
workflow sandbox re-imports nothing else)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def noop() -> None:
    return None


@workflow.defn
class FloorWorkflow:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(noop, start_to_close_timeout=timedelta(seconds=10))


@activity.defn
async def pause(seconds: float) -> None:
    """A model call's latency, with nothing else to it."""
    await asyncio.sleep(seconds)


@workflow.defn
class StepsWorkflow:
    """`steps` activities one after another on `queue`, no-ops or `pause(seconds)`: each step
    has a model call's shape (a workflow task, then an activity on another task queue)."""

    @workflow.run
    async def run(self, steps: int, queue: str, seconds: float = 0.0) -> None:
        for _ in range(steps):
            if seconds:
                await workflow.execute_activity(
                    pause, seconds, task_queue=queue, start_to_close_timeout=timedelta(seconds=60)
                )
            else:
                await workflow.execute_activity(
                    noop, task_queue=queue, start_to_close_timeout=timedelta(seconds=10)
                )


TIMER_SECONDS = 0.05


@workflow.defn
class TimerWorkflow:
    """How late the server fires a timer (a retry's backoff, a heartbeat timeout, a wait
    for a person) is in its history: from TimerStarted to TimerFired, less the timer."""

    @workflow.run
    async def run(self) -> None:
        await workflow.sleep(TIMER_SECONDS)
