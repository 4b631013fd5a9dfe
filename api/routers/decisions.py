"""Steering a run: its pending decisions, gate decisions, dead letters, resets, plan changes.

Everything here is a signal or an update to the run's workflow, the same ones the CLI
and `temporal workflow signal` send; the workflow validates and records them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, status

from api.auth import CallerDep, WriterDep
from api.deps import TemporalDep
from api.ownership import OwnedRunDep
from api.schemas.common import Accepted
from api.schemas.decisions import (
    DeadLetter,
    DecisionRequest,
    ResetRequest,
    ResetResult,
    ResolutionRequest,
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
    """Decide a gate (`approve`, `reject`, `request_changes`) or the budget (`raise`, `abort`)."""
    decision = Decision(gate=gate, by=caller.subject, **body.model_dump())
    await steering.decide(temporal, run.id, decision)
    return Accepted(run_id=run.id, detail=f"{body.decision.value} sent for {gate}")


@router.post("/runs/{run_id}/tasks/{task}/resolve", status_code=status.HTTP_202_ACCEPTED)
async def resolve_task(
    task: Text,
    body: Annotated[ResolutionRequest, Storable],
    run: OwnedRunDep,
    caller: WriterDep,
    temporal: TemporalDep,
) -> Accepted:
    """Retry, skip or abort a dead-lettered task."""
    await steering.resolve(temporal, run.id, task, body.action, body.comment, caller.subject)
    return Accepted(run_id=run.id, detail=f"{body.action} sent for task {task}")


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
    body: Annotated[TaskModification, Storable],
    run: OwnedRunDep,
    _caller: WriterDep,
    temporal: TemporalDep,
) -> TaskState:
    """Change a pending task's role, dependencies, model or prompt addition."""
    return await steering.modify_task(temporal, run.id, body.model_copy(update={"task": task}))


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
