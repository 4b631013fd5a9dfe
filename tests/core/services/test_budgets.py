"""The monthly budget service on both databases: what `GET /orgs/me` shows and `POST /runs` refuses."""

from __future__ import annotations

from datetime import timedelta

from core.persistence import tenancy
from core.persistence.db import Database
from core.services import budgets
from core.services.estimate import Estimate, Figure
from tests.helpers import spend


def estimate(tokens: tuple[float, float], cost: tuple[float, float]) -> Estimate:
    """An estimate of (mean, p90) tokens and cost."""
    return Estimate(
        template="sdlc",
        model="offline-sim-1",
        basis="history",
        runs_seen=3,
        roles=[],
        tokens=Figure(mean=tokens[0], p90=tokens[1]),
        cost_usd=Figure(mean=cost[0], p90=cost[1]),
    )


async def test_the_month_shows_what_is_spent_and_left(any_db: Database) -> None:
    org = await tenancy.create_org(
        any_db, "acme", monthly_token_limit=1000, monthly_cost_limit_usd=1.0
    )
    await spend(any_db, org.id, "a", 0, 600, 0.25)
    await spend(any_db, "someone-else", "b", 0, 5000, 5.0)

    month = await budgets.month_budget(any_db, org)
    assert (month.since.day, month.since.hour, month.since.utcoffset()) == (1, 0, timedelta(0))
    assert (month.spent.tokens, month.spent.cost_usd) == (600, 0.25)
    assert (month.remaining_tokens, month.remaining_cost_usd) == (400, 0.75)

    await spend(any_db, org.id, "a", 1, 900, 1.0)
    overspent = await budgets.month_budget(any_db, org)
    assert (overspent.remaining_tokens, overspent.remaining_cost_usd) == (0, 0.0)

    unlimited = await tenancy.create_org(any_db, "free")
    month = await budgets.month_budget(any_db, unlimited)
    assert (month.remaining_tokens, month.remaining_cost_usd) == (None, None)


async def test_a_run_fits_on_its_mean_and_a_shortfall_names_each_limit(any_db: Database) -> None:
    org = await tenancy.create_org(
        any_db, "acme", monthly_token_limit=1000, monthly_cost_limit_usd=1.0
    )
    await spend(any_db, org.id, "a", 0, 600, 0.5)

    # 400 tokens and $0.50 left: a run estimated below that on average starts, p90 or not.
    fits = estimate(tokens=(399, 5000), cost=(0.49, 9.0))
    assert await budgets.run_shortfall(any_db, org.id, fits) is None

    too_dear = estimate(tokens=(401, 800), cost=(0.51, 0.9))
    shortfall = await budgets.run_shortfall(any_db, org.id, too_dear)
    assert shortfall is not None
    assert shortfall.detail == (
        "monthly budget of acme too low for this run: "
        "400 tokens left this month, the run is estimated at 401 (p90 800); "
        "$0.5000 left this month, the run is estimated at $0.5100 (p90 $0.9000)"
    )
    assert (shortfall.remaining_tokens, shortfall.remaining_cost_usd) == (400, 0.5)
    assert shortfall.since == tenancy.month_start(shortfall.since)


async def test_a_spent_month_refuses_even_a_free_run(any_db: Database) -> None:
    org = await tenancy.create_org(any_db, "acme", monthly_token_limit=20)
    await spend(any_db, org.id, "a", 0, 20, 0.0)

    shortfall = await budgets.run_shortfall(any_db, org.id, estimate((0, 0), (0.0, 0.0)))
    assert shortfall is not None
    assert (shortfall.remaining_tokens, shortfall.remaining_cost_usd) == (0, None)
    assert "0 tokens left this month" in shortfall.detail


async def test_what_is_left_is_shown_to_the_micro_dollar(any_db: Database) -> None:
    org = await tenancy.create_org(any_db, "acme", monthly_cost_limit_usd=1.0)
    await spend(any_db, org.id, "a", 0, 10, 0.1)
    await spend(any_db, org.id, "a", 1, 10, 0.2)

    shortfall = await budgets.run_shortfall(any_db, org.id, estimate((0, 0), (0.8, 0.8)))
    # 1.0 - (0.1 + 0.2) is 0.6999999999999999 in floats.
    assert shortfall is not None and shortfall.remaining_cost_usd == 0.7


async def test_an_organization_without_limits_or_row_is_never_short(any_db: Database) -> None:
    org = await tenancy.create_org(any_db, "free")
    await spend(any_db, org.id, "a", 0, 10**9, 10**6)
    huge = estimate(tokens=(10**12, 10**12), cost=(10**9, 10**9))
    assert await budgets.run_shortfall(any_db, org.id, huge) is None
    assert await budgets.run_shortfall(any_db, "no-such-org", huge) is None
