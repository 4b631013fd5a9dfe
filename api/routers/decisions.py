"""Steering a run: its pending decisions, gate decisions, dead letters, resets, plan changes.

Everything here is an update to the run's workflow, the same ones the CLI sends; the
workflow's validator refuses a wrong answer with the reason (409), else records it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, status

from api.auth import CallerDep, WriterDep
from api.deps import TemporalDep
from api.errors import unprocessable
from api.ownership import OwnedRunDep
from api.schemas.common import Accepted
from api.schemas.decisions import (
    DeadLetter,
    DecisionRequest,
    ResetRequest,
    ResetResult,
    ResolutionRequest,
    TaskChangeRequest,
)
from api.schemas.fields import Storable, Text
from core.contracts import (
    Decision,
    NewTask,
    PendingDecision,
    TaskModification,
    TaskRemoval,
    TaskState,
)
from core.services import steering

router = APIRouter(tags=["decisions"])


@router.get("/runs/{run_id}/decisions")
async def pending_decisions(run: OwnedRunDep, temporal: TemporalDep) -> list[PendingDecision]:
    """What the run waits for (gates, the budget, dead-lettered tasks); empty when closed."""
    try:
        return await steering.pending(temporal, run.id)
    except steering.SteeringError:
        return []


@router.post("/runs/{run_id}/decisions/{gate}", status_code=status.HTTP_202_ACCEPTED)
async def decide(
    gate: Text,
    body: Annotated[DecisionRequest, Storable],
    run: OwnedRunDep,
    caller: WriterDep,
    temporal: TemporalDep,
) -> Accepted:
    """Decide a gate (`approve`, `reject`, `request_changes`) or the budget (`raise`, `abort`).

    409 with the reason when the run does not wait for this gate or does not offer the
    decision; else the decision was taken and the run acts on it."""
    decision = Decision(gate=gate, by=caller.subject, **body.model_dump())
    taken = await steering.decide(temporal, run.id, decision)
    return Accepted(
        run_id=run.id, detail=f"{taken.decision.value} by {taken.by} accepted for {gate}"
    )


@router.post("/runs/{run_id}/tasks/{task}/resolve", status_code=status.HTTP_202_ACCEPTED)
async def resolve_task(
    task: Text,
    body: Annotated[ResolutionRequest, Storable],
    run: OwnedRunDep,
    caller: WriterDep,
    temporal: TemporalDep,
) -> Accepted:
    """Retry, skip or abort a dead-lettered task (409 with the reason when the run does not
    wait for it)."""
    taken = await steering.resolve(
        temporal, run.id, task, body.action, body.comment, caller.subject
    )
    return Accepted(run_id=run.id, detail=f"{taken.action} by {taken.by} accepted for task {task}")


@router.post("/runs/{run_id}/reset")
async def reset(
    body: Annotated[ResetRequest, Storable],
    run: OwnedRunDep,
    _caller: WriterDep,
    temporal: TemporalDep,
) -> ResetResult:
    """Temporal workflow reset to just before a task: earlier model calls are not repeated."""
    execution = await steering.reset_to_task(temporal, run.id, body.to_task)
    return ResetResult(
        run_id=run.id, execution_id=execution, detail=f"reset to before task {body.to_task}"
    )


@router.post("/runs/{run_id}/tasks", status_code=status.HTTP_201_CREATED)
async def add_task(
    body: Annotated[NewTask, Storable], run: OwnedRunDep, _caller: WriterDep, temporal: TemporalDep
) -> TaskState:
    """Add a task to a running plan (the workflow rejects cycles and unknown roles)."""
    return await steering.add_task(temporal, run.id, body)


@router.patch("/runs/{run_id}/tasks/{task}")
async def modify_task(
    task: Text,
    body: Annotated[TaskChangeRequest, Storable],
    run: OwnedRunDep,
    _caller: WriterDep,
    temporal: TemporalDep,
) -> TaskState:
    """Change a pending task's role, dependencies, model or prompt addition; the body holds
    only what changes (the path names the task)."""
    if body.task is not None and body.task != task:
        raise unprocessable(
            ("body", "task"), f"the path names task {task!r}, the body {body.task!r}"
        )
    change = TaskModification(**body.model_dump(exclude={"task"}, exclude_unset=True), task=task)
    return await steering.modify_task(temporal, run.id, change)


@router.delete("/runs/{run_id}/tasks/{task}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_task(
    task: Text, run: OwnedRunDep, _caller: WriterDep, temporal: TemporalDep
) -> None:
    """Remove a pending task nothing depends on."""
    await steering.remove_task(temporal, run.id, TaskRemoval(task=task))


@router.get("/dlq")
async def dead_letters(caller: CallerDep, temporal: TemporalDep) -> list[DeadLetter]:
    """The organization's dead-lettered tasks and failed runs (from Temporal visibility)."""
    rows = await steering.dead_letters(temporal, tenant=caller.org_id)
    return [DeadLetter(run_id=r, task=t, reason=why) for r, t, why in rows]
