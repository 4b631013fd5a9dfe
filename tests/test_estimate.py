"""Cost estimates from a tenant's ledger history, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from agents.roles import ROLES
from core import storage
from core.contracts import RunPlan, RunState, RunStatus, TurnKey, Usage, workflow_id_for
from core.db import Database
from core.estimate import (
    DEFAULT_P90_FACTOR,
    DEFAULT_TASK_USAGE,
    Figure,
    estimate_run,
    percentile,
    task_history,
)
from workflows.dsl import compile_plan, parse_template, validate

TEMPLATE = """
name: shop
tasks:
  - id: requirements
    role: business_analyst
  - id: backend
    role: backend_engineer
    depends_on: [requirements]
    review_by: [tech_lead]
  - id: cleanup
    role: cleanup_agent
    depends_on: [backend]
"""

OTHER_TEMPLATE = TEMPLATE.replace("name: shop", "name: other")


def price(model: str, usage: Usage) -> float:
    """A made-up price list: `m2` costs 1 $/M input and 5 $/M output, anything else 10x."""
    factor = 1.0 if model == "m2" else 10.0
    return factor * (usage.input_tokens + 5 * usage.output_tokens) / 1_000_000


def plan_for(tenant: str, run_id: str, model: str | None = "m1", text: str = TEMPLATE) -> RunPlan:
    template = parse_template(text)
    validate(template, ROLES)
    return compile_plan(
        template, goal="Build a shop", run_id=run_id, roles=ROLES, tenant=tenant, model=model
    )


Turn = tuple[str, str, int, int, float]
"""(task, role, input tokens, output tokens, cost) of one model call."""


async def recorded_run(
    db: Database,
    tenant: str,
    run_id: str,
    turns: list[Turn],
    status: RunStatus | None = RunStatus.COMPLETED,
    text: str = TEMPLATE,
) -> None:
    """A run as the workflow's activities record it: row, ledger rows, final state."""
    plan = plan_for(tenant, run_id, text=text)
    workflow_id = workflow_id_for(run_id)
    await storage.record_run_started(db, plan, workflow_id)
    turn_of: dict[str, int] = {}
    for task, role, inp, out, cost in turns:
        turn = turn_of[task] = turn_of.get(task, -1) + 1
        await storage.record_model_call(
            db,
            TurnKey(run_id=run_id, workflow_id=workflow_id, task_id=task, turn=turn),
            tenant=tenant,
            role=role,
            provider="offline",
            model="m1",
            usage=Usage(input_tokens=inp, output_tokens=out, cache_read_input_tokens=7),
            cost_usd=cost,
            stop_reason="end_turn",
            response_json="{}",
        )
    if status is not None:
        await storage.record_run_finished(
            db,
            RunState(run_id=run_id, goal=plan.goal, template=plan.template, status=status),
            workflow_id,
        )


REVIEW = "backend.review-tech_lead"

FIRST: list[Turn] = [
    ("requirements", "business_analyst", 100, 20, 0.01),
    ("requirements", "business_analyst", 200, 30, 0.02),
    ("backend", "backend_engineer", 1000, 500, 0.5),
    (REVIEW, "tech_lead", 300, 100, 0.1),
]
SECOND: list[Turn] = [
    ("requirements", "business_analyst", 150, 50, 0.02),
    ("backend", "backend_engineer", 2000, 1000, 1.0),
    (REVIEW, "tech_lead", 500, 100, 0.2),
]
NOISE: list[Turn] = [
    ("requirements", "business_analyst", 90_000, 90_000, 9.0),
    ("backend", "backend_engineer", 90_000, 90_000, 9.0),
]


async def history(db: Database) -> None:
    """Two completed runs of `shop` for acme, and runs that must not count."""
    await recorded_run(db, "acme", "r1", FIRST)
    await recorded_run(db, "acme", "r2", SECOND)
    await recorded_run(db, "acme", "running", NOISE, status=None)
    await recorded_run(db, "acme", "failed", NOISE, status=RunStatus.FAILED)
    await recorded_run(db, "acme", "other", NOISE, text=OTHER_TEMPLATE)
    await recorded_run(db, "globex", "theirs", NOISE)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([float(v) for v in range(1, 11)], 90) == pytest.approx(9.1)
    assert percentile([200.0, 350.0], 90) == pytest.approx(335.0)
    assert percentile([4.0], 90) == 4.0
    assert percentile([3.0, 1.0, 2.0], 0) == 1.0
    assert percentile([3.0, 1.0, 2.0], 100) == 3.0
    with pytest.raises(ValueError):
        percentile([], 90)


async def test_history_sums_each_task_of_the_tenants_completed_runs_of_the_template(
    any_db: Database,
) -> None:
    await history(any_db)
    samples = await task_history(any_db, "acme", "shop")
    got = {(s.workflow_id, s.task_id, s.role): (s.tokens, round(s.cost_usd, 6)) for s in samples}
    assert got == {
        ("run-r1", "requirements", "business_analyst"): (350, 0.03),
        ("run-r1", "backend", "backend_engineer"): (1500, 0.5),
        ("run-r1", REVIEW, "tech_lead"): (400, 0.1),
        ("run-r2", "requirements", "business_analyst"): (200, 0.02),
        ("run-r2", "backend", "backend_engineer"): (3000, 1.0),
        ("run-r2", REVIEW, "tech_lead"): (600, 0.2),
    }
    latest = await task_history(any_db, "acme", "shop", runs=1)
    assert {s.workflow_id for s in latest} == {"run-r2"}
    assert await task_history(any_db, "initech", "shop") == []


async def test_estimate_from_history_per_role_and_in_total(any_db: Database) -> None:
    await history(any_db)
    estimate = await estimate_run(
        any_db, plan_for("acme", "next"), default_model="m-default", price=price
    )
    assert (estimate.template, estimate.model) == ("shop", "m1")
    assert (estimate.basis, estimate.runs_seen) == ("history", 2)
    assert estimate.note == (
        "no history for roles cleanup_agent in template shop: per-role defaults for them"
    )
    roles = {r.role: r for r in estimate.roles}
    assert list(roles) == ["business_analyst", "backend_engineer", "tech_lead", "cleanup_agent"]

    analyst = roles["business_analyst"]
    assert (analyst.basis, analyst.samples, analyst.tasks, analyst.models) == (
        "history",
        2,
        1,
        ["m1"],
    )
    assert analyst.tokens == Figure(mean=275, p90=335)
    assert analyst.cost_usd.mean == pytest.approx(0.025)
    assert analyst.cost_usd.p90 == pytest.approx(0.029)
    assert roles["backend_engineer"].tokens == Figure(mean=2250, p90=2850)
    assert roles["backend_engineer"].cost_usd.mean == pytest.approx(0.75)
    # The review pass of `backend` is a tech_lead unit of its own.
    assert roles["tech_lead"].tokens == Figure(mean=500, p90=580)
    assert roles["tech_lead"].tasks == 1

    cleanup = roles["cleanup_agent"]
    default = DEFAULT_TASK_USAGE["cleanup_agent"]
    default_tokens = default.input_tokens + default.output_tokens
    assert (cleanup.basis, cleanup.samples) == ("defaults", 0)
    assert cleanup.tokens == Figure(mean=default_tokens, p90=default_tokens * DEFAULT_P90_FACTOR)
    assert cleanup.cost_usd.mean == pytest.approx(price("m1", default))

    assert estimate.tokens.mean == 275 + 2250 + 500 + default_tokens
    assert estimate.tokens.p90 == 335 + 2850 + 580 + default_tokens * DEFAULT_P90_FACTOR
    assert estimate.cost_usd.mean == pytest.approx(0.025 + 0.75 + 0.15 + price("m1", default))


async def test_samples_from_another_model_are_repriced_for_the_runs_model(
    any_db: Database,
) -> None:
    await history(any_db)
    on_m2 = await estimate_run(
        any_db, plan_for("acme", "next", model="m2"), default_model="m-default", price=price
    )
    analyst = next(r for r in on_m2.roles if r.role == "business_analyst")
    # Same tokens as recorded on m1, priced for m2 from each sample's input and output.
    assert analyst.tokens == Figure(mean=275, p90=335)
    first, second = (
        price("m2", Usage(input_tokens=300, output_tokens=50)),
        price("m2", Usage(input_tokens=150, output_tokens=50)),
    )
    assert analyst.cost_usd.mean == pytest.approx((first + second) / 2)
    # No model on the plan: the provider's default model prices it.
    unset = await estimate_run(
        any_db, plan_for("acme", "next", model=None), default_model="m2", price=price
    )
    assert unset.model == "m2"
    assert unset.cost_usd == on_m2.cost_usd


async def test_without_history_the_estimate_says_it_uses_defaults(any_db: Database) -> None:
    await history(any_db)
    estimate = await estimate_run(
        any_db, plan_for("initech", "first"), default_model="m-default", price=price
    )
    assert (estimate.basis, estimate.runs_seen) == ("defaults", 0)
    assert estimate.note == "no history yet for template shop: per-role defaults"
    assert {r.basis for r in estimate.roles} == {"defaults"}
    expected = sum(
        DEFAULT_TASK_USAGE[role].input_tokens + DEFAULT_TASK_USAGE[role].output_tokens
        for role in ("business_analyst", "backend_engineer", "tech_lead", "cleanup_agent")
    )
    assert estimate.tokens == Figure(mean=expected, p90=expected * DEFAULT_P90_FACTOR)
    assert estimate.cost_usd.mean > 0
