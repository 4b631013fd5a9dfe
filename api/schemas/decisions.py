"""Bodies of the steering API: gate and budget decisions, dead letters, resets."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas.common import Accepted
from api.schemas.fields import Tokens, Usd
from core.contracts import DecisionKind, ResolutionAction, TaskChanges, WorkBreakdown


class DecisionRequest(BaseModel):
    decision: DecisionKind
    comment: str = Field(default="", max_length=10_000)
    budget_tokens: Tokens | None = None
    """Budget gate with `raise`: the run's new token limit."""
    budget_usd: Usd | None = None
    """Budget gate with `raise`: the run's new cost limit."""
    breakdown: WorkBreakdown | None = None
    """`plan_approval` with `edit`: the work packages to run instead of the planner's."""


class ResolutionRequest(BaseModel):
    action: ResolutionAction
    comment: str = Field(default="", max_length=10_000)


class ResetRequest(BaseModel):
    to_task: str = Field(description="Re-run from just before this task first ran.")


class ResetResult(Accepted):
    execution_id: str


class DeadLetter(BaseModel):
    run_id: str
    task: str
    """The dead-lettered task, or `-` for a failed run."""
    reason: str


class TaskChangeRequest(TaskChanges):
    """`PATCH /runs/{id}/tasks/{task}`: the fields to change; the path names the task."""

    task: str | None = Field(
        default=None,
        description="Not needed: the path names the task. Accepted when it names the same one.",
    )
