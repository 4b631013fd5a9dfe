"""What a run will probably cost, before it starts: from the tenant's history, else defaults.

A *sample* is what one task of one earlier run spent: the sum over its model calls (every
attempt and turn) of input + output tokens and of cost, read from the ledger joined with
the runs of that tenant and template. A plan is a list of *units*: each task, plus one per
reviewer of a task's `review_by` (a supervision pass is its own agent run, with its own
task id `<task>.review-<role>` in the ledger).

A unit is predicted from samples, by their mean and 90th percentile:

- the samples of the same task id and role, if the history has any; else those of its
  role in any task (a task new to the template, a task added to a run);
- of those, the ones recorded on the unit's own model if there are any: a template run on
  two models is estimated per model;
- a task with a `when` condition counts what it spent in each earlier run, 0 where its
  condition was false, so its mean is the expected cost. If it never ran, its mean is 0
  (basis `never_ran`) and its p90 is what it would cost if it did run.

Roles the plan does not name but earlier runs of the template spent tokens on (e.g.
`validator` calls after each task) are estimated per run: their total in each earlier run,
0 where they spent nothing. The validator is left out for a plan with `validate_tasks` off.

Roles without samples (a template never run) use `DEFAULT_TASK_USAGE`, priced for the
unit's model, with the 90th percentile at `DEFAULT_P90_FACTOR` times the mean.

Totals add the units up. The total's p90 is the sum of the units' p90s: an upper bound
(it assumes a bad run is bad everywhere), which is the safe side for a budget check.

Costs: a sample recorded on the unit's own model keeps its ledger cost; a sample from
another model is repriced for the unit's model from its tokens, so switching models
changes the cost estimate and not the token estimate.

After a run, `predicted_vs_actual` puts the estimate the run would have got when it
started (history of the runs completed before it was created) next to what the ledger
says it spent, per role: nothing is stored at start for it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, func
from sqlalchemy import select as sa_select
from sqlmodel import col, select

from core.contracts import (
    VALIDATOR_ROLE,
    RunPlan,
    RunState,
    RunStatus,
    TaskPlan,
    TaskStatus,
    Usage,
)
from core.persistence.db import Database, LedgerEntry, Run

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

SKIPPED_IN_RUN = "(skipped in this run)"
"""`when` of a task rebuilt from a finished run in which it was skipped."""


class Figure(BaseModel):
    mean: float
    p90: float

    def __add__(self, other: Figure) -> Figure:
        return Figure(mean=self.mean + other.mean, p90=self.p90 + other.p90)

    def rounded(self, digits: int) -> Figure:
        return Figure(mean=round(self.mean, digits), p90=round(self.p90, digits))


ZERO = Figure(mean=0.0, p90=0.0)

Basis = Literal["history", "defaults", "never_ran"]


class RoleEstimate(BaseModel):
    role: str
    tasks: int = Field(
        description="Units of the plan this role plays (tasks and reviews); 0 for a role the "
        "plan does not name that earlier runs spent tokens on (estimated per run)."
    )
    basis: Basis = Field(
        description="`history`: earlier runs; `defaults`: no history for this role; "
        "`never_ran`: its only tasks are conditional and ran in none of the earlier runs "
        "(mean 0, p90 as if they ran)."
    )
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


@dataclass(frozen=True)
class Unit:
    """One agent run the plan asks for."""

    task_id: str
    role: str
    model: str
    conditional: bool


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


# --- reading the ledger ------------------------------------------------------------------


async def _samples(db: Database, *where: Any) -> list[TaskSample]:
    """Ledger rows summed per (run, task, role, model), filtered by `where`."""
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
        .where(*where)
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


async def task_history(
    db: Database,
    tenant: str,
    template: str,
    *,
    runs: int = HISTORY_RUNS,
    finished_before: datetime | None = None,
) -> list[TaskSample]:
    """Per (run, task, role, model) sums of the ledger for the tenant's latest completed runs.

    Only completed runs count: a failed or cancelled run stopped early and would make
    the estimate too low. `finished_before` keeps the runs completed before that moment
    (what an estimate made then would have read).
    """
    conditions: list[ColumnElement[bool]] = [
        col(Run.tenant) == tenant,
        col(Run.template) == template,
        col(Run.status) == RunStatus.COMPLETED.value,
    ]
    if finished_before is not None:
        conditions.append(col(Run.completed_at) < finished_before)
    latest = (
        select(Run.id)
        .where(*conditions)
        .order_by(col(Run.created_at).desc())
        .limit(runs)
        .scalar_subquery()
    )
    return await _samples(db, col(Run.tenant) == tenant, col(Run.id).in_(latest))


# --- the estimate (pure) -----------------------------------------------------------------


def plan_units(plan: RunPlan, default_model: str) -> list[Unit]:
    """Every agent run the plan asks for: each task and each review pass."""
    units: list[Unit] = []
    for task in plan.tasks:
        model = task.model or plan.model or default_model
        conditional = bool(task.when)
        units.append(Unit(task.id, task.role, model, conditional))
        # Reviewers run on the run's model: the workflow gives them no task override.
        units.extend(
            Unit(f"{task.id}.review-{reviewer}", reviewer, plan.model or default_model, conditional)
            for reviewer in task.review_by
        )
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


@dataclass
class _UnitFigures:
    tokens: Figure
    cost: Figure
    basis: Basis
    used: list[TaskSample]


class _History:
    def __init__(self, samples: Sequence[TaskSample]) -> None:
        self.runs = sorted({s.workflow_id for s in samples})
        self.by_task: dict[tuple[str, str], list[TaskSample]] = defaultdict(list)
        self.by_role: dict[str, list[TaskSample]] = defaultdict(list)
        for sample in samples:
            self.by_task[(sample.task_id, sample.role)].append(sample)
            self.by_role[sample.role].append(sample)

    def unit(self, unit: Unit, price: Pricing) -> _UnitFigures:
        own = self.by_task.get((unit.task_id, unit.role), [])
        if unit.conditional and self.runs:
            return self._conditional(unit, own, price)
        pool = own or self.by_role.get(unit.role, [])
        if not pool:
            tokens, cost = _default_unit(unit.role, unit.model, price)
            return _UnitFigures(tokens, cost, "defaults", [])
        # Per model: what this template spent on the unit's model, when it ran on it.
        pool = [s for s in pool if s.model == unit.model] or pool
        return _UnitFigures(
            figure([float(s.tokens) for s in pool]),
            figure([_sample_cost(s, unit.model, price) for s in pool]),
            "history",
            pool,
        )

    def _conditional(self, unit: Unit, own: list[TaskSample], price: Pricing) -> _UnitFigures:
        """Expected cost: what it spent in each earlier run, 0 where its condition was false."""
        if not own:
            # Never ran: nothing on average, but as much as an unconditional unit if it does.
            if_it_runs = self.unit(Unit(unit.task_id, unit.role, unit.model, False), price)
            return _UnitFigures(
                Figure(mean=0.0, p90=if_it_runs.tokens.p90),
                Figure(mean=0.0, p90=if_it_runs.cost.p90),
                "never_ran",
                [],
            )
        tokens: dict[str, float] = dict.fromkeys(self.runs, 0.0)
        cost: dict[str, float] = dict.fromkeys(self.runs, 0.0)
        for sample in own:
            tokens[sample.workflow_id] += sample.tokens
            cost[sample.workflow_id] += _sample_cost(sample, unit.model, price)
        return _UnitFigures(
            figure(list(tokens.values())), figure(list(cost.values())), "history", own
        )

    def per_run(self, role: str) -> tuple[Figure, Figure, list[TaskSample]]:
        """A role the plan does not name: its total in each earlier run (0 where absent)."""
        tokens: dict[str, float] = dict.fromkeys(self.runs, 0.0)
        cost: dict[str, float] = dict.fromkeys(self.runs, 0.0)
        samples = self.by_role[role]
        for sample in samples:
            tokens[sample.workflow_id] += sample.tokens
            cost[sample.workflow_id] += sample.cost_usd
        return figure(list(tokens.values())), figure(list(cost.values())), samples


def _role_basis(bases: set[Basis]) -> Basis:
    if "history" in bases:
        return "history"
    return "defaults" if "defaults" in bases else "never_ran"


def estimate_plan(
    plan: RunPlan, samples: Sequence[TaskSample], *, default_model: str, price: Pricing
) -> Estimate:
    """The estimate of `plan` from task samples (pure: no I/O)."""
    history = _History(samples)
    runs_seen = len(history.runs)

    units_by_role: dict[str, list[Unit]] = defaultdict(list)
    for unit in plan_units(plan, default_model):
        units_by_role[unit.role].append(unit)

    roles: list[RoleEstimate] = []
    never_ran: list[str] = []
    for role, units in units_by_role.items():
        tokens, cost = ZERO, ZERO
        bases: set[Basis] = set()
        used: dict[tuple[str, str, str], TaskSample] = {}
        for unit in units:
            got = history.unit(unit, price)
            tokens, cost = tokens + got.tokens, cost + got.cost
            bases.add(got.basis)
            used.update({(s.workflow_id, s.task_id, s.model): s for s in got.used})
            if got.basis == "never_ran":
                never_ran.append(unit.task_id)
        roles.append(
            RoleEstimate(
                role=role,
                tasks=len(units),
                basis=_role_basis(bases),
                samples=len({(s.workflow_id, s.task_id) for s in used.values()}),
                models=sorted({s.model for s in used.values()}),
                tokens=tokens.rounded(0),
                cost_usd=cost.rounded(6),
            )
        )
    for role in history.by_role:
        if role in units_by_role or (role == VALIDATOR_ROLE and not plan.validate_tasks):
            continue
        tokens, cost, seen = history.per_run(role)
        roles.append(
            RoleEstimate(
                role=role,
                tasks=0,
                basis="history",
                samples=len({(s.workflow_id, s.task_id) for s in seen}),
                models=sorted({s.model for s in seen}),
                tokens=tokens.rounded(0),
                cost_usd=cost.rounded(6),
            )
        )

    total_tokens = sum((r.tokens for r in roles), ZERO)
    total_cost = sum((r.cost_usd for r in roles), ZERO)
    defaulted = [r.role for r in roles if r.basis == "defaults"]
    notes: list[str] = []
    if runs_seen == 0:
        basis: Basis = "defaults"
        notes.append(f"no history yet for template {plan.template}: per-role defaults")
    else:
        basis = "history"
        if defaulted:
            notes.append(
                f"no history for roles {', '.join(defaulted)} in template {plan.template}: "
                "per-role defaults for them"
            )
        if never_ran:
            notes.append(
                f"conditional tasks {', '.join(never_ran)} ran in none of the {runs_seen} "
                "earlier runs: counted as 0 (p90 as if they run)"
            )
    return Estimate(
        template=plan.template,
        model=plan.model or default_model,
        basis=basis,
        runs_seen=runs_seen,
        note="; ".join(notes) or None,
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
    finished_before: datetime | None = None,
) -> Estimate:
    """The estimate of `plan` from its tenant's history of the plan's template."""
    samples = await task_history(
        db, plan.tenant, plan.template, runs=history_runs, finished_before=finished_before
    )
    return estimate_plan(plan, samples, default_model=default_model, price=price)


# --- predicted vs actual -----------------------------------------------------------------


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


class RunNotRecorded(LookupError):
    """No run with this id in the database."""


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
    async with db.session() as session:
        run = await session.get(Run, run_id)
    if run is None:
        raise RunNotRecorded(f"no run with id {run_id!r}")
    spent = await _samples(db, col(LedgerEntry.workflow_id) == run.workflow_id)
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
