"""After a run: the estimate it would have got when it started, next to what it spent.

Nothing is stored at start for it: the estimate is made again from the history of the
runs completed before this one was created.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from pydantic import BaseModel, Field
from sqlmodel import col

from core.contracts import VALIDATOR_ROLE, RunPlan, RunState, RunStatus, TaskPlan, TaskStatus
from core.persistence.db import Database, LedgerEntry, Run
from core.services.estimate.figures import ZERO, Basis, Estimate, Figure, Pricing
from core.services.estimate.ledger import HISTORY_RUNS, TaskSample, ledger_samples
from core.services.estimate.prediction import estimate_run
from core.services.runs import recorded_run

SKIPPED_IN_RUN = "(skipped in this run)"
"""`when` of a task rebuilt from a finished run in which it was skipped."""


class RoleComparison(BaseModel):
    role: str
    basis: Basis | None = Field(
        description="How the prediction was made; null: the role was not predicted."
    )
    predicted_tokens: Figure
    actual_tokens: int = Field(description="Input + output tokens the ledger recorded.")
    predicted_cost_usd: Figure
    actual_cost_usd: float


class PredictedVsActual(BaseModel):
    """What the estimate said when the run started, next to what the run spent."""

    run_id: str
    template: str
    status: RunStatus
    estimate: Estimate = Field(
        description="The estimate from the runs completed before this one was created."
    )
    roles: list[RoleComparison]
    actual_tokens: int
    actual_cost_usd: float
    tokens_error_pct: float | None = Field(
        description="(predicted mean - actual) / actual, in percent; null when nothing was spent."
    )


def plan_of_run(run: Run, spent: Sequence[TaskSample]) -> RunPlan:
    """The plan a finished run ran, rebuilt from its final state and its ledger.

    Tasks come from the final state (tasks added by steering included); a skipped task is
    taken as conditional; reviewers come from the ledger's `<task>.review-<role>` rows. A
    run without a final state has no tasks: every role is then estimated per run.
    """
    state = RunState.model_validate_json(run.final_state) if run.final_state else None
    # The run's model: what its agents mostly ran on (the validator may run on a cheaper one).
    models = Counter(s.model for s in spent if s.role != VALIDATOR_ROLE)
    tasks = [
        TaskPlan(
            id=t.id,
            role=t.role,
            model=t.model,
            when=SKIPPED_IN_RUN if t.status == TaskStatus.SKIPPED else None,
        )
        for t in (state.tasks if state is not None else [])
    ]
    by_id = {t.id: t for t in tasks}
    for sample in spent:
        task_id, marker, reviewer = sample.task_id.partition(".review-")
        reviewed = by_id.get(task_id) if marker and reviewer == sample.role else None
        if reviewed is not None and reviewer not in reviewed.review_by:
            reviewed.review_by.append(reviewer)
    return RunPlan(
        run_id=run.id,
        goal=run.goal,
        template=run.template,
        tenant=run.tenant,
        tasks=tasks,
        model=models.most_common(1)[0][0] if models else None,
        # The plan's switch is not stored; the run's validator calls tell it.
        validate_tasks=any(s.role == VALIDATOR_ROLE for s in spent),
    )


async def predicted_vs_actual(
    db: Database,
    run_id: str,
    *,
    default_model: str,
    price: Pricing,
    plan: RunPlan | None = None,
    history_runs: int = HISTORY_RUNS,
) -> PredictedVsActual:
    """Per role: the estimate the run would have got when it was created, and its ledger.

    `plan` is the run's own plan when the caller has it (the CLI that started it); else it
    is rebuilt from the database (`plan_of_run`).
    """
    run = await recorded_run(db, run_id)
    spent = await ledger_samples(db, col(LedgerEntry.workflow_id) == run.workflow_id)
    estimate = await estimate_run(
        db,
        plan or plan_of_run(run, spent),
        default_model=default_model,
        price=price,
        history_runs=history_runs,
        finished_before=run.created_at,
    )
    actual_tokens: dict[str, int] = defaultdict(int)
    actual_cost: dict[str, float] = defaultdict(float)
    for sample in spent:
        actual_tokens[sample.role] += sample.tokens
        actual_cost[sample.role] += sample.cost_usd
    predicted = {r.role: r for r in estimate.roles}
    roles = [
        RoleComparison(
            role=role,
            basis=predicted[role].basis if role in predicted else None,
            predicted_tokens=predicted[role].tokens if role in predicted else ZERO,
            actual_tokens=actual_tokens.get(role, 0),
            predicted_cost_usd=predicted[role].cost_usd if role in predicted else ZERO,
            actual_cost_usd=round(actual_cost.get(role, 0.0), 6),
        )
        for role in [*predicted, *(r for r in actual_tokens if r not in predicted)]
    ]
    total = sum(actual_tokens.values())
    return PredictedVsActual(
        run_id=run.id,
        template=run.template,
        status=RunStatus(run.status),
        estimate=estimate,
        roles=roles,
        actual_tokens=total,
        actual_cost_usd=round(sum(actual_cost.values()), 6),
        tokens_error_pct=round((estimate.tokens.mean - total) / total * 100, 1) if total else None,
    )
