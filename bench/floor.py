"""The engine floor: a workflow that runs one no-op activity, one that runs many in a row
(what each step of a longer workflow costs), and one that sleeps on a short timer (a module
with no other imports, so the workflow sandbox re-imports nothing else)."""

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


@workflow.defn
class StepsWorkflow:
    """`steps` no-op activities one after another on `queue`: each step has a model call's
    shape (a workflow task, then an activity on another task queue)."""

    @workflow.run
    async def run(self, steps: int, queue: str) -> None:
        for _ in range(steps):
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
