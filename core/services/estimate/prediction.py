"""The estimate of a plan: its units priced from the history's samples, else from defaults."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from core.contracts import VALIDATOR_ROLE, RunPlan, Usage
from core.persistence.db import Database
from core.services.estimate.figures import (
    ZERO,
    Basis,
    Estimate,
    Figure,
    Pricing,
    RoleEstimate,
    figure,
)
from core.services.estimate.history_cache import HistoryCache
from core.services.estimate.ledger import HISTORY_RUNS, TaskSample, task_history

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


@dataclass(frozen=True)
class Unit:
    """One agent run the plan asks for."""

    task_id: str
    role: str
    model: str
    conditional: bool


def plan_units(plan: RunPlan, default_model: str) -> list[Unit]:
    """Every agent run the plan asks for: each task and each review pass."""
    units: list[Unit] = []
    for task in plan.tasks:
        if task.skip_reason is not None:
            continue  # a gate the deployment turned off never runs
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
    history: HistoryCache | None = None,
    mark_max_age: float | None = None,
) -> Estimate:
    """The estimate of `plan` from its tenant's history of the plan's template (read through
    `history` when given: an API process's recent reads; `HistoryCache.samples` says what
    `mark_max_age` is)."""
    if history is not None and finished_before is None:
        samples = await history.samples(
            db, plan.tenant, plan.template, runs=history_runs, mark_max_age=mark_max_age
        )
    else:
        samples = await task_history(
            db, plan.tenant, plan.template, runs=history_runs, finished_before=finished_before
        )
    return estimate_plan(plan, samples, default_model=default_model, price=price)
