"""Queries over Temporal visibility that see each run once: in its current execution.

A run is one workflow id (`run-<run_id>`). A reset (`orchestrator reset`, `temporal
workflow reset`) ends the current execution and goes on in a new one, and the execution
it left keeps its last search attributes for ever: a run reset while it waited leaves a
Terminated execution whose `RunStatus` still says `waiting`; a failed run that is reset
leaves its Failed execution behind. So every product query keeps to the current
execution, by structure rather than by reading termination reasons:

- a run in progress is matched with `ExecutionStatus="Running"`: of the executions of one
  workflow id, only the current one can be running;
- a closed run counts when its execution is the latest of its workflow id (`current_only`
  asks Temporal which one that is); terminated executions are never failed runs (a
  person or a reset ended them).

The Web UI filters of docs/gates-and-decisions.md follow the same rule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

from core.contracts import SEARCH_ATTRIBUTE_RUN_STATUS, SEARCH_ATTRIBUTE_TENANT, RunStatus

CURRENT_LOOKUPS = 16
"""Closed executions whose currency is asked at once."""

IN_PROGRESS = 'ExecutionStatus="Running"'


def runs_query(*conditions: str, tenant: str | None = None) -> str:
    """A visibility query over `GoalWorkflow` executions; `tenant` keeps one organization's."""
    parts = ['WorkflowType="GoalWorkflow"', *conditions]
    if tenant is not None:
        parts.append(f'{SEARCH_ATTRIBUTE_TENANT}="{tenant}"')
    return " AND ".join(parts)


def in_status(status: RunStatus) -> str:
    """Runs whose current execution is in progress with this `RunStatus`."""
    return f'({IN_PROGRESS} AND {SEARCH_ATTRIBUTE_RUN_STATUS}="{status.value}")'


FAILED = (
    '(ExecutionStatus="Failed" OR ExecutionStatus="TimedOut" OR '
    f'(ExecutionStatus="Completed" AND {SEARCH_ATTRIBUTE_RUN_STATUS}="{RunStatus.FAILED.value}"))'
)
"""Closed runs that failed: an execution that failed or timed out, or (runs recorded before
a failed run ended its execution as failed) completed with `RunStatus="failed"`."""


async def current_only(client: Client, query: str) -> list[WorkflowExecution]:
    """The executions `query` matches that are the current one of their workflow id."""
    matched = [execution async for execution in client.list_workflows(query)]
    closed = [e for e in matched if e.status != WorkflowExecutionStatus.RUNNING]
    latest = await _latest_run_ids(client, {e.id for e in closed})
    return [
        e
        for e in matched
        if e.status == WorkflowExecutionStatus.RUNNING or latest.get(e.id) == e.run_id
    ]


async def _latest_run_ids(client: Client, workflow_ids: Iterable[str]) -> dict[str, str]:
    limit = asyncio.Semaphore(CURRENT_LOOKUPS)

    async def latest(workflow_id: str) -> tuple[str, str]:
        async with limit:
            description = await client.get_workflow_handle(workflow_id).describe()
            return workflow_id, description.run_id or ""

    return dict(await asyncio.gather(*map(latest, workflow_ids)))
