"""The engine floor: a workflow that runs one no-op activity (a module with no other imports,
so the workflow sandbox re-imports nothing else)."""

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
