"""Cost estimates from a tenant's ledger history, on SQLite and PostgreSQL; predicted vs
actual after a run; the estimate of a fourth offline run after three, on a real Temporal
dev server; `GET /runs/{id}/estimate` over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from functools import partial

import pytest
from sqlalchemy import event
from temporalio.client import Client

from agents.roles import ROLES
from core.contracts import (
    RunPlan,
    RunState,
    RunStatus,
    TaskState,
    TaskStatus,
    TurnKey,
    Usage,
    workflow_id_for,
)
from core.persistence import storage
from core.persistence.db import Database, LedgerEntry
from core.services.estimate import (
    DEFAULT_P90_FACTOR,
    DEFAULT_TASK_USAGE,
    Figure,
    HistoryCache,
    RunNotRecorded,
    estimate_run,
    percentile,
    predicted_vs_actual,
    task_history,
)
from core.services.templates import parse_template
from offline import OfflineProvider
from tests.api_harness import ApiHarness
from tests.helpers import make_plan, run_to_end
from workflows.dsl import compile_plan, validate

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
    model: str = "m1",
    tasks: list[TaskState] | None = None,
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
            model=model,
            usage=Usage(input_tokens=inp, output_tokens=out, cache_read_input_tokens=7),
            cost_usd=cost,
            stop_reason="end_turn",
            response_json="{}",
        )
    if status is not None:
        await storage.record_run_finished(
            db,
            RunState(
                run_id=run_id,
                goal=plan.goal,
                template=plan.template,
                status=status,
                tasks=tasks or [],
            ),
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


def ledger_aggregates(db: Database) -> list[str]:
    """The statements that sum the ledger (the history read) this engine runs, as they run."""
    seen: list[str] = []

    def listen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        text = statement.lower()
        if "sum(" in text and "from ledger" in text and "group by" in text:
            seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", listen)
    return seen


def completion_lookups(db: Database) -> list[str]:
    """The statements that ask for a template's newest completion, as they run."""
    seen: list[str] = []

    def listen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "max(runs.completed_at)" in statement.lower():
            seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", listen)
    return seen


async def test_the_history_cache_reads_again_only_after_another_run_completed(
    any_db: Database,
) -> None:
    await history(any_db)
    now = [0.0]
    cache = HistoryCache(clock=lambda: now[0])
    reads, lookups = ledger_aggregates(any_db), completion_lookups(any_db)
    estimate = partial(estimate_run, default_model="m-default", price=price, history=cache)

    first = await estimate(any_db, plan_for("acme", "next"))
    together = await asyncio.gather(*(estimate(any_db, plan_for("acme", "n")) for _ in range(5)))
    assert len(reads) == 1 and all(e == first for e in together)
    assert first.runs_seen == 2
    assert len(lookups) == 1  # within the window, no start asks for the newest completion

    # A run still going, or one of another tenant, changes nothing; a completed one does,
    # once the window in which the last answer stands has passed.
    await recorded_run(any_db, "acme", "r3-running", FIRST, status=None)
    await recorded_run(any_db, "globex", "r3-theirs", FIRST)
    now[0] += cache.mark_ttl
    assert await estimate(any_db, plan_for("acme", "next")) == first and len(reads) == 1
    await recorded_run(any_db, "acme", "r3", SECOND)
    assert await estimate(any_db, plan_for("acme", "next")) == first  # not yet asked again
    now[0] += cache.mark_ttl
    later = await estimate(any_db, plan_for("acme", "next"))
    assert later.runs_seen == 3 and len(reads) == 2 and len(lookups) == 3
    # An estimate a person asked for (`POST /runs/estimate`) asks every time.
    asked = await estimate(any_db, plan_for("acme", "next"), mark_max_age=0.0)
    assert asked == later and len(lookups) == 4 and len(reads) == 2
    fresh = await estimate_run(
        any_db, plan_for("acme", "x"), default_model="m-default", price=price
    )
    assert fresh == later


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


# --- conditional tasks, models, roles the plan does not name ------------------------------

COND_TEMPLATE = """
name: cond
tasks:
  - id: requirements
    role: business_analyst
  - id: analytics
    role: data_scientist
    depends_on: [requirements]
    when: requirements.needs_data_science
  - id: cleanup
    role: cleanup_agent
    depends_on: [requirements]
    when: requirements.cleanup
"""


async def test_a_conditional_task_counts_at_its_expected_cost(any_db: Database) -> None:
    analyst: Turn = ("requirements", "business_analyst", 100, 50, 0.01)
    await recorded_run(
        any_db,
        "acme",
        "c1",
        [analyst, ("analytics", "data_scientist", 600, 300, 0.9)],
        text=COND_TEMPLATE,
    )
    await recorded_run(any_db, "acme", "c2", [analyst], text=COND_TEMPLATE)
    await recorded_run(any_db, "acme", "c3", [analyst], text=COND_TEMPLATE)
    estimate = await estimate_run(
        any_db, plan_for("acme", "next", text=COND_TEMPLATE), default_model="m-x", price=price
    )
    assert (estimate.basis, estimate.runs_seen) == ("history", 3)
    roles = {r.role: r for r in estimate.roles}

    # Ran in one run of three: its mean is a third of what it spent there, not all of it.
    scientist = roles["data_scientist"]
    assert (scientist.basis, scientist.samples) == ("history", 1)
    assert scientist.tokens == Figure(mean=300, p90=720)
    assert scientist.cost_usd.mean == pytest.approx(0.3)

    # Never ran: nothing on average, a whole task if the condition turns true.
    cleanup = roles["cleanup_agent"]
    default = DEFAULT_TASK_USAGE["cleanup_agent"]
    assert (cleanup.basis, cleanup.samples) == ("never_ran", 0)
    assert cleanup.tokens == Figure(
        mean=0, p90=(default.input_tokens + default.output_tokens) * DEFAULT_P90_FACTOR
    )
    assert cleanup.cost_usd.p90 == pytest.approx(price("m1", default) * DEFAULT_P90_FACTOR)
    assert estimate.note == (
        "conditional tasks cleanup ran in none of the 3 earlier runs: counted as 0 "
        "(p90 as if they run)"
    )
    assert estimate.tokens.mean == 150 + 300 + 0


async def test_samples_on_the_units_model_are_preferred(any_db: Database) -> None:
    await recorded_run(
        any_db, "acme", "a", [("requirements", "business_analyst", 800, 200, 0.5)], model="m1"
    )
    await recorded_run(
        any_db, "acme", "b", [("requirements", "business_analyst", 2000, 1000, 0.7)], model="m2"
    )
    on_m2 = await estimate_run(
        any_db, plan_for("acme", "next", model="m2"), default_model="m-x", price=price
    )
    analyst = next(r for r in on_m2.roles if r.role == "business_analyst")
    assert (analyst.samples, analyst.models) == (1, ["m2"])
    assert analyst.tokens == Figure(mean=3000, p90=3000)
    assert analyst.cost_usd.mean == pytest.approx(0.7)  # its own model: the ledger's cost

    # A model the template never ran on: every sample, repriced for it.
    on_m3 = await estimate_run(
        any_db, plan_for("acme", "next", model="m3"), default_model="m-x", price=price
    )
    analyst = next(r for r in on_m3.roles if r.role == "business_analyst")
    assert (analyst.samples, analyst.models) == (2, ["m1", "m2"])
    assert analyst.tokens.mean == 2000
    assert analyst.cost_usd.mean == pytest.approx(
        (
            price("m3", Usage(input_tokens=800, output_tokens=200))
            + price("m3", Usage(input_tokens=2000, output_tokens=1000))
        )
        / 2
    )


async def test_roles_the_plan_does_not_name_are_estimated_per_run(any_db: Database) -> None:
    analyst: Turn = ("requirements", "business_analyst", 100, 50, 0.01)
    await recorded_run(
        any_db,
        "acme",
        "v1",
        [
            analyst,
            ("requirements.validate", "validator", 30, 10, 0.001),
            ("backend.validate", "validator", 50, 10, 0.002),
        ],
    )
    await recorded_run(
        any_db, "acme", "v2", [analyst, ("requirements.validate", "validator", 200, 100, 0.004)]
    )
    plan = plan_for("acme", "next")
    estimate = await estimate_run(any_db, plan, default_model="m-x", price=price)
    validator = next(r for r in estimate.roles if r.role == "validator")
    # Per run: 100 tokens in v1 (two tasks), 300 in v2.
    assert (validator.tasks, validator.basis, validator.samples) == (0, "history", 3)
    assert validator.tokens == Figure(mean=200, p90=280)
    assert validator.cost_usd.mean == pytest.approx(0.0035)

    unvalidated = plan.model_copy(update={"validate_tasks": False})
    without = await estimate_run(any_db, unvalidated, default_model="m-x", price=price)
    assert "validator" not in {r.role for r in without.roles}
    assert estimate.tokens.mean - without.tokens.mean == 200


# --- predicted vs actual -------------------------------------------------------------------


async def test_predicted_vs_actual_reads_the_runs_finished_before_it(any_db: Database) -> None:
    await recorded_run(any_db, "acme", "r1", FIRST)
    await recorded_run(any_db, "acme", "r2", SECOND)
    await recorded_run(
        any_db,
        "acme",
        "target",
        [
            ("requirements", "business_analyst", 300, 100, 0.04),
            ("backend", "backend_engineer", 1500, 500, 0.6),
            (REVIEW, "tech_lead", 400, 100, 0.1),
            ("backend.validate", "validator", 100, 20, 0.0),
        ],
        tasks=[
            TaskState(id="requirements", role="business_analyst", model="m1"),
            TaskState(id="backend", role="backend_engineer", model="m1"),
            TaskState(id="cleanup", role="cleanup_agent", status=TaskStatus.SKIPPED),
        ],
    )
    # Finished after `target` was created: an estimate made then could not have read it.
    await recorded_run(any_db, "acme", "later", NOISE)

    comparison = await predicted_vs_actual(any_db, "target", default_model="m-x", price=price)
    assert (comparison.run_id, comparison.template, comparison.status) == (
        "target",
        "shop",
        RunStatus.COMPLETED,
    )
    assert comparison.estimate.runs_seen == 2
    rows = {
        r.role: (r.basis, r.predicted_tokens.mean, r.actual_tokens, r.actual_cost_usd)
        for r in comparison.roles
    }
    assert rows == {
        "business_analyst": ("history", 275, 400, 0.04),
        "backend_engineer": ("history", 2250, 2000, 0.6),
        # The review pass is rebuilt from the ledger's `backend.review-tech_lead` rows.
        "tech_lead": ("history", 500, 500, 0.1),
        # Skipped in this run: conditional; it never ran before either.
        "cleanup_agent": ("never_ran", 0, 0, 0.0),
        # Spent, never predicted: no earlier run had validator calls.
        "validator": (None, 0, 120, 0.0),
    }
    assert comparison.actual_tokens == 400 + 2000 + 500 + 120
    assert comparison.actual_cost_usd == pytest.approx(0.74)
    assert comparison.estimate.tokens.mean == 275 + 2250 + 500
    assert comparison.tokens_error_pct == pytest.approx(0.2)

    # With the run's own plan (cleanup unconditional), that plan is what is predicted.
    with_plan = await predicted_vs_actual(
        any_db, "target", default_model="m-x", price=price, plan=plan_for("acme", "target")
    )
    cleanup = next(r for r in with_plan.roles if r.role == "cleanup_agent")
    assert (cleanup.basis, cleanup.actual_tokens) == ("defaults", 0)

    with pytest.raises(RunNotRecorded):
        await predicted_vs_actual(any_db, "nope", default_model="m-x", price=price)


# --- the done-when: three offline runs predict the fourth ------------------------------------

HISTORY_GOALS = [
    "Build a task management API with user authentication",
    "Build a bookstore inventory service",
    "Build a library lending API",
]
FOURTH_GOAL = "Build a recipe sharing API with user accounts"


def ledger_tokens_by_role(entries: list[LedgerEntry]) -> dict[str, int]:
    spent: dict[str, int] = defaultdict(int)
    for entry in entries:
        spent[entry.role] += entry.input_tokens + entry.output_tokens
    return dict(spent)


async def test_three_offline_runs_predict_the_fourth_within_25_percent(
    dev_client: Client, sqlite_db: Database
) -> None:
    provider = OfflineProvider()
    # What a user does: the same template, a different goal each time.
    for goal in HISTORY_GOALS:
        state = await run_to_end(dev_client, sqlite_db, provider, make_plan(goal))
        assert state.status == RunStatus.COMPLETED, state.error

    fourth = make_plan(FOURTH_GOAL)
    estimate = await estimate_run(
        sqlite_db, fourth, default_model=provider.default_model, price=provider.cost_usd
    )
    assert (estimate.basis, estimate.runs_seen, estimate.template) == ("history", 3, "sdlc")
    state = await run_to_end(dev_client, sqlite_db, provider, fourth)
    assert state.status == RunStatus.COMPLETED, state.error

    entries = await storage.ledger_entries(sqlite_db, workflow_id_for(fourth.run_id))
    actual = sum(e.input_tokens + e.output_tokens for e in entries)
    assert actual > 0
    assert abs(estimate.tokens.mean - actual) <= 0.25 * actual, (estimate.tokens.mean, actual)

    # After the run: the same prediction (from the three runs before it), next to the ledger,
    # whether the run's plan is given (the CLI) or rebuilt from the database (the API).
    for plan in (fourth, None):
        comparison = await predicted_vs_actual(
            sqlite_db,
            fourth.run_id,
            default_model=provider.default_model,
            price=provider.cost_usd,
            plan=plan,
        )
        assert comparison.estimate.runs_seen == 3
        assert comparison.estimate.tokens == estimate.tokens
        assert comparison.actual_tokens == actual
        assert {r.role: r.actual_tokens for r in comparison.roles if r.actual_tokens} == (
            ledger_tokens_by_role(entries)
        )
        by_role = {r.role: r for r in comparison.roles}
        # sdlc's data_science task ran in none of the runs: predicted 0, spent 0.
        assert (by_role["data_scientist"].basis, by_role["data_scientist"].actual_tokens) == (
            "never_ran",
            0,
        )


# --- GET /runs/{id}/estimate -----------------------------------------------------------------


async def test_the_api_shows_predicted_vs_actual_of_a_closed_run(api: ApiHarness) -> None:
    tenant = await api.tenant()
    http = api.http(tenant.headers)
    started = await http.post("/runs", json={"goal": "Build a library lending API"})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]

    # An open run has no actual yet: 409.
    open_plan = plan_for(tenant.org_id, f"open{run_id[:8]}")
    await storage.record_run_started(api.db, open_plan, workflow_id_for(open_plan.run_id))
    refused = await http.get(f"/runs/{open_plan.run_id}/estimate")
    assert refused.status_code == 409, refused.text
    assert "still running" in refused.json()["detail"]

    deadline = time.monotonic() + 180
    while (await http.get(f"/runs/{run_id}")).json()["status"] == "running":
        assert time.monotonic() < deadline, "the run did not finish"
        await asyncio.sleep(0.3)

    response = await http.get(f"/runs/{run_id}/estimate")
    assert response.status_code == 200, response.text
    body = response.json()
    entries = await storage.ledger_entries(api.db, workflow_id_for(run_id))
    assert body["run_id"] == run_id and body["status"] == "completed"
    # The organization's first run: the prediction was per-role defaults.
    assert (body["estimate"]["basis"], body["estimate"]["runs_seen"]) == ("defaults", 0)
    assert body["actual_tokens"] == sum(e.input_tokens + e.output_tokens for e in entries)
    spent = {r["role"]: r["actual_tokens"] for r in body["roles"] if r["actual_tokens"]}
    assert spent == ledger_tokens_by_role(entries)
    assert body["tokens_error_pct"] == pytest.approx(
        (body["estimate"]["tokens"]["mean"] - body["actual_tokens"]) / body["actual_tokens"] * 100,
        abs=0.05,
    )

    stranger = api.http((await api.tenant()).headers)
    hidden = await stranger.get(f"/runs/{run_id}/estimate")
    assert hidden.status_code == 404
    assert hidden.json() == {"detail": f"no run with id {run_id!r}"}
