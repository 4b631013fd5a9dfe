"""What a run will probably cost, before it starts: from the tenant's history, else defaults.

A *sample* is what one task of one earlier run spent: the sum over its model calls (every
attempt and turn) of input + output tokens and of cost, read from the ledger joined with
the runs of that tenant and template. A plan is a list of *units*: each task, plus one per
reviewer of a task's `review_by` (a supervision pass is its own agent run). A unit is
predicted from the samples of its role: their mean and their 90th percentile.

Roles without samples (a template never run, or a task whose `when` condition was always
false) use `DEFAULT_TASK_USAGE`, priced for the unit's model, with the 90th percentile at
`DEFAULT_P90_FACTOR` times the mean.

Totals add the units up. The total's p90 is the sum of the units' p90s: an upper bound
(it assumes a bad run is bad everywhere), which is the safe side for a budget check.

Costs: a sample recorded on the unit's own model keeps its ledger cost; a sample from
another model is repriced for the unit's model from its tokens, so switching models
changes the cost estimate and not the token estimate.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import col, select

from core.contracts import RunPlan, RunStatus, Usage
from core.db import Database, LedgerEntry, Run

Pricing = Callable[[str, Usage], float]
"""USD for `usage` on a model: the provider's `cost_usd`."""

HISTORY_RUNS = 50
"""How many of the tenant's latest completed runs of a template the estimate reads."""

DEFAULT_P90_FACTOR = 2.0

DEFAULT_TASK_USAGE: dict[str, Usage] = {
    "business_analyst": Usage(input_tokens=25_000, output_tokens=4_000),
    "project_manager": Usage(input_tokens=30_000, output_tokens=4_000),
    "ux_engineer": Usage(input_tokens=35_000, output_tokens=5_000),
    "tech_lead": Usage(input_tokens=45_000, output_tokens=6_000),
    "database_engineer": Usage(input_tokens=45_000, output_tokens=6_000),
    "backend_engineer": Usage(input_tokens=160_000, output_tokens=28_000),
    "frontend_engineer": Usage(input_tokens=120_000, output_tokens=22_000),
    "code_reviewer": Usage(input_tokens=90_000, output_tokens=6_000),
    "security_reviewer": Usage(input_tokens=90_000, output_tokens=6_000),
    "data_scientist": Usage(input_tokens=70_000, output_tokens=12_000),
    "cleanup_agent": Usage(input_tokens=60_000, output_tokens=5_000),
}
"""Per task of a role, for a template with no history: a few turns of a real model."""

FALLBACK_TASK_USAGE = Usage(input_tokens=60_000, output_tokens=8_000)
"""A role missing from `DEFAULT_TASK_USAGE`."""


class Figure(BaseModel):
    mean: float
    p90: float

    def __add__(self, other: Figure) -> Figure:
        return Figure(mean=self.mean + other.mean, p90=self.p90 + other.p90)

    def rounded(self, digits: int) -> Figure:
        return Figure(mean=round(self.mean, digits), p90=round(self.p90, digits))


ZERO = Figure(mean=0.0, p90=0.0)

Basis = Literal["history", "defaults"]


class RoleEstimate(BaseModel):
    role: str
    tasks: int = Field(description="Units of the plan this role plays (tasks and reviews).")
    basis: Basis
    samples: int = Field(description="Earlier task executions of this role that were read.")
    models: list[str] = Field(description="Models those executions ran on.")
    tokens: Figure = Field(description="Input + output tokens for all of this role's units.")
    cost_usd: Figure


class Estimate(BaseModel):
    template: str
    model: str = Field(description="The run's model (tasks may override it).")
    basis: Basis
    runs_seen: int = Field(description="Completed runs of this template the history covers.")
    note: str | None = None
    roles: list[RoleEstimate]
    tokens: Figure
    cost_usd: Figure


@dataclass(frozen=True)
class TaskSample:
    """What one task of one earlier run spent, on one model."""

    workflow_id: str
    task_id: str
    role: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def figure(values: Sequence[float]) -> Figure:
    return Figure(mean=sum(values) / len(values), p90=percentile(values, 90))


async def task_history(
    db: Database, tenant: str, template: str, *, runs: int = HISTORY_RUNS
) -> list[TaskSample]:
    """Per (run, task, role, model) sums of the ledger for the tenant's latest completed runs.

    Only completed runs count: a failed or cancelled run stopped early and would make
    the estimate too low.
    """
    latest = (
        select(Run.id)
        .where(
            Run.tenant == tenant,
            Run.template == template,
            Run.status == RunStatus.COMPLETED.value,
        )
        .order_by(col(Run.created_at).desc())
        .limit(runs)
        .scalar_subquery()
    )
    query = (
        sa_select(
            col(LedgerEntry.workflow_id),
            col(LedgerEntry.task_id),
            col(LedgerEntry.role),
            col(LedgerEntry.model),
            func.sum(LedgerEntry.input_tokens),
            func.sum(LedgerEntry.output_tokens),
            func.sum(LedgerEntry.cost_usd),
        )
        .join(Run, col(Run.id) == col(LedgerEntry.run_id))
        .where(col(Run.tenant) == tenant, col(Run.id).in_(latest))
        .group_by(
            col(LedgerEntry.workflow_id),
            col(LedgerEntry.task_id),
            col(LedgerEntry.role),
            col(LedgerEntry.model),
        )
        .order_by(col(LedgerEntry.workflow_id), col(LedgerEntry.task_id))
    )
    async with db.session() as session:
        rows = (await session.execute(query)).all()
    return [
        TaskSample(
            workflow_id=str(workflow_id),
            task_id=str(task_id),
            role=str(role),
            model=str(model),
            input_tokens=int(inp or 0),
            output_tokens=int(out or 0),
            cost_usd=float(cost or 0.0),
        )
        for workflow_id, task_id, role, model, inp, out, cost in rows
    ]


def plan_units(plan: RunPlan, default_model: str) -> list[tuple[str, str]]:
    """(role, model) of every agent run the plan asks for: each task and each review pass."""
    units: list[tuple[str, str]] = []
    for task in plan.tasks:
        model = task.model or plan.model or default_model
        units.append((task.role, model))
        # Reviewers run on the run's model: the workflow gives them no task override.
        units.extend((reviewer, plan.model or default_model) for reviewer in task.review_by)
    return units


def _sample_cost(sample: TaskSample, model: str, price: Pricing) -> float:
    if sample.model == model:
        return sample.cost_usd
    return price(model, Usage(input_tokens=sample.input_tokens, output_tokens=sample.output_tokens))


def _default_unit(role: str, model: str, price: Pricing) -> tuple[Figure, Figure]:
    usage = DEFAULT_TASK_USAGE.get(role, FALLBACK_TASK_USAGE)
    tokens = float(usage.input_tokens + usage.output_tokens)
    cost = price(model, usage)
    return (
        Figure(mean=tokens, p90=tokens * DEFAULT_P90_FACTOR),
        Figure(mean=cost, p90=cost * DEFAULT_P90_FACTOR),
    )


def estimate_plan(
    plan: RunPlan, samples: Sequence[TaskSample], *, default_model: str, price: Pricing
) -> Estimate:
    """The estimate of `plan` from task samples (pure: no I/O)."""
    by_role: dict[str, list[TaskSample]] = defaultdict(list)
    for sample in samples:
        by_role[sample.role].append(sample)
    runs_seen = len({s.workflow_id for s in samples})

    units_by_role: dict[str, list[str]] = defaultdict(list)
    for role, model in plan_units(plan, default_model):
        units_by_role[role].append(model)

    roles: list[RoleEstimate] = []
    for role, models in units_by_role.items():
        seen = by_role.get(role, [])
        tokens, cost = ZERO, ZERO
        for model in models:
            if seen:
                unit_tokens = figure([float(s.tokens) for s in seen])
                unit_cost = figure([_sample_cost(s, model, price) for s in seen])
            else:
                unit_tokens, unit_cost = _default_unit(role, model, price)
            tokens, cost = tokens + unit_tokens, cost + unit_cost
        roles.append(
            RoleEstimate(
                role=role,
                tasks=len(models),
                basis="history" if seen else "defaults",
                samples=len(seen),
                models=sorted({s.model for s in seen}),
                tokens=tokens.rounded(0),
                cost_usd=cost.rounded(6),
            )
        )

    total_tokens = sum((r.tokens for r in roles), ZERO)
    total_cost = sum((r.cost_usd for r in roles), ZERO)
    defaulted = [r.role for r in roles if r.basis == "defaults"]
    if runs_seen == 0:
        basis: Basis = "defaults"
        note: str | None = f"no history yet for template {plan.template}: per-role defaults"
    else:
        basis = "history"
        note = (
            f"no history for roles {', '.join(defaulted)} in template {plan.template}: "
            "per-role defaults for them"
            if defaulted
            else None
        )
    return Estimate(
        template=plan.template,
        model=plan.model or default_model,
        basis=basis,
        runs_seen=runs_seen,
        note=note,
        roles=roles,
        tokens=total_tokens.rounded(0),
        cost_usd=total_cost.rounded(6),
    )


async def estimate_run(
    db: Database,
    plan: RunPlan,
    *,
    default_model: str,
    price: Pricing,
    history_runs: int = HISTORY_RUNS,
) -> Estimate:
    """The estimate of `plan` from its tenant's history of the plan's template."""
    samples = await task_history(db, plan.tenant, plan.template, runs=history_runs)
    return estimate_plan(plan, samples, default_model=default_model, price=price)
