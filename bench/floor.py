"""The engine floor: a workflow that runs one no-op activity, and one that sleeps on a short
timer (a module with no other imports, so the workflow sandbox re-imports nothing else)."""

from __future__ import annotations

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


TIMER_SECONDS = 0.05


@workflow.defn
class TimerWorkflow:
    """How late the server fires a timer (a retry's backoff, a heartbeat timeout, a wait
    for a person) is in its history: from TimerStarted to TimerFired, less the timer."""

    @workflow.run
    async def run(self) -> None:
        await workflow.sleep(TIMER_SECONDS)
