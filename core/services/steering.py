"""Steering a running goal: decisions, dead letters, resets and plan changes.

Every command here speaks to the run's workflow through Temporal: updates for decisions,
resolutions and plan changes (the workflow's validator refuses a wrong one with the reason,
which the caller sees), a workflow reset to re-run from a task.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from core.contracts import (
    Decision,
    NewTask,
    PendingDecision,
    RunStatus,
    TaskModification,
    TaskRemoval,
    TaskResolution,
    TaskState,
)
from core.services.runs import GoalHandle, goal_handle
from core.services.visibility import FAILED, current_only, in_status, runs_query
from workflows.goal import GoalWorkflow

Change = TypeVar("Change", NewTask, TaskModification, TaskRemoval)
Changed = TypeVar("Changed")
Sent = TypeVar("Sent")
Answered = TypeVar("Answered")


class SteeringError(ValueError):
    """A steering request that cannot apply; the message says why in one line."""


@contextmanager
def _known_to_temporal(run_id: str) -> Iterator[None]:
    """Temporal's NOT_FOUND for the run's workflow becomes one `SteeringError` line."""
    try:
        yield
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise SteeringError(f"no run with id {run_id!r} in Temporal") from None
        raise


async def running_handle(client: Client, run_id: str) -> GoalHandle:
    handle = goal_handle(client, run_id)
    with _known_to_temporal(run_id):
        description = await handle.describe()
    if description.status is None or description.status.name != "RUNNING":
        state = description.status.name.lower() if description.status else "unknown"
        raise SteeringError(f"run {run_id} is {state}, not running")
    return handle


async def pending(client: Client, run_id: str) -> list[PendingDecision]:
    handle = await running_handle(client, run_id)
    return await handle.query(GoalWorkflow.pending_decisions)


async def decide(client: Client, run_id: str, decision: Decision) -> Decision:
    """A gate's or the budget's decision; returns it as the run took it."""
    handle = await running_handle(client, run_id)
    return await _updated(handle, GoalWorkflow.submit_decision, decision)


async def resolve(
    client: Client, run_id: str, task: str, action: str, comment: str, by: str
) -> TaskResolution:
    """A dead-lettered task's resolution; returns it as the run took it."""
    resolution = TaskResolution.model_validate(
        {"task": task, "action": action, "comment": comment, "by": by}
    )
    handle = await running_handle(client, run_id)
    return await _updated(handle, GoalWorkflow.submit_resolution, resolution)


async def _updated(
    handle: GoalHandle,
    update: UpdateMethodMultiParam[[GoalWorkflow, Sent], Answered],
    sent: Sent,
    label: str = "",
) -> Answered:
    """Send an update; the workflow's refusal (its validator's reason) becomes one
    `SteeringError` line."""
    try:
        return await handle.execute_update(update, sent)
    except WorkflowUpdateFailedError as exc:
        reason = getattr(exc.cause, "message", exc.cause)
        raise SteeringError(f"{label} rejected: {reason}" if label else str(reason)) from None


async def dead_letters(client: Client, tenant: str | None = None) -> list[tuple[str, str, str]]:
    """(run id, task or '-', why) for every dead-lettered task and failed run.

    With `tenant`, only that organization's runs (the `TenantId` search attribute).
    """
    rows: list[tuple[str, str, str]] = []
    # Each run once, in its current execution: not the ones a reset left behind.
    query = runs_query(f"({in_status(RunStatus.WAITING)} OR {FAILED})", tenant=tenant)
    for execution in await current_only(client, query):
        run_id = execution.id.removeprefix("run-")
        if execution.status is not None and execution.status.name == "RUNNING":
            handle = client.get_workflow_handle_for(GoalWorkflow.run, execution.id)
            waiting = await handle.query(GoalWorkflow.pending_decisions)
            rows += [(run_id, p.key, p.reason) for p in waiting if p.kind == "dead_letter"]
        else:
            rows.append((run_id, "-", "run failed"))
    return rows


async def _change_plan(
    client: Client,
    run_id: str,
    label: str,
    update: UpdateMethodMultiParam[[GoalWorkflow, Change], Changed],
    change: Change,
) -> Changed:
    """Apply a plan change; the workflow's refusal becomes one `SteeringError` line."""
    handle = await running_handle(client, run_id)
    return await _updated(handle, update, change, label)


async def add_task(client: Client, run_id: str, new: NewTask) -> TaskState:
    return await _change_plan(client, run_id, "add_task", GoalWorkflow.add_task, new)


async def modify_task(client: Client, run_id: str, change: TaskModification) -> TaskState:
    return await _change_plan(client, run_id, "modify_task", GoalWorkflow.modify_task, change)


async def remove_task(client: Client, run_id: str, removal: TaskRemoval) -> None:
    await _change_plan(client, run_id, "remove_task", GoalWorkflow.remove_task, removal)


def _summary(event: Any) -> str:
    if not event.HasField("user_metadata") or not event.user_metadata.HasField("summary"):
        return ""
    try:
        return str(json.loads(event.user_metadata.summary.data))
    except ValueError:
        return ""


async def reset_to_task(client: Client, run_id: str, task: str) -> str:
    """Reset the run to just before `task` first ran; returns the new Temporal run id.

    Everything before that point is replayed from history (no model call is made again);
    the task and what follows run anew.
    """
    handle = goal_handle(client, run_id)
    with _known_to_temporal(run_id):
        history = await handle.fetch_history()
    last_completed: int | None = None
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            last_completed = event.event_id
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and _summary(
            event
        ).startswith(f"{task} ("):
            break
    else:
        raise SteeringError(f"task {task!r} never ran in run {run_id}: nothing to reset to")
    if last_completed is None:
        raise SteeringError(f"run {run_id} has no point before task {task!r} to reset to")
    response = await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=handle.id),
            reason=f"orchestrator reset to before task {task}",
            workflow_task_finish_event_id=last_completed,
            request_id=str(uuid.uuid4()),
        )
    )
    return str(response.run_id)
