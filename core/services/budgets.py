"""An organization's monthly budget: what it has spent and has left, and whether a run fits.

The API shows the month to the organization (`GET /orgs/me`) and refuses a run whose
estimate does not fit in what is left (`POST /runs` answers 402). Once a run has started,
`call_model` guards the same limits call by call (`core.persistence.spending_guard`, which
keeps each organization's limits for a few seconds and confirms a spent budget afresh).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.persistence.db import Database, Organization
from core.persistence.spending_guard import SpendingGuard
from core.persistence.tenancy import Spending, month_start, tenant_spending
from core.services.estimate import Estimate


@dataclass(frozen=True)
class MonthBudget:
    """This calendar month (UTC) of one organization; a limit of None is no limit."""

    since: datetime
    spent: Spending
    token_limit: int | None
    cost_limit_usd: float | None

    @property
    def remaining_tokens(self) -> int | None:
        if self.token_limit is None:
            return None
        return max(self.token_limit - self.spent.tokens, 0)

    @property
    def remaining_cost_usd(self) -> float | None:
        if self.cost_limit_usd is None:
            return None
        return max(self.cost_limit_usd - self.spent.cost_usd, 0.0)


async def month_budget(db: Database, org: Organization) -> MonthBudget:
    since = month_start()
    return MonthBudget(
        since=since,
        spent=await tenant_spending(db, org.id, since),
        token_limit=org.monthly_token_limit,
        cost_limit_usd=org.monthly_cost_limit_usd,
    )


@dataclass(frozen=True)
class Shortfall:
    """Why a run does not fit in the month's budget, and what is left of it."""

    detail: str
    remaining_tokens: int | None
    remaining_cost_usd: float | None
    since: datetime


async def run_shortfall(
    db: Database, tenant: str, estimate: Estimate, limits: SpendingGuard | None = None
) -> Shortfall | None:
    """A shortfall when the month's remaining budget is spent or below the estimate's *mean*.

    The mean, not the p90: a run that fits on average may start; if it turns out dearer,
    `call_model` pauses it on the budget gate before anything is overspent. With `limits`
    (an API process's), a tenant without limits costs no query while they are known: a
    limit set on it counts within `limits.ttl` seconds, as it does for `call_model`.
    """
    if limits is not None and (await limits.limits(db, tenant)).unlimited:
        return None
    async with db.session() as session:
        org = await session.get(Organization, tenant)
    if org is None or (org.monthly_token_limit is None and org.monthly_cost_limit_usd is None):
        return None
    month = await month_budget(db, org)
    tokens = month.remaining_tokens
    cost = month.remaining_cost_usd
    if cost is not None:
        cost = round(cost, 6)  # a sum of ledger costs carries float noise below a micro-dollar
    problems: list[str] = []
    if tokens is not None and (tokens <= 0 or tokens < estimate.tokens.mean):
        problems.append(
            f"{tokens} tokens left this month, the run is estimated at "
            f"{estimate.tokens.mean:.0f} (p90 {estimate.tokens.p90:.0f})"
        )
    if cost is not None and (cost <= 0 or cost < estimate.cost_usd.mean):
        problems.append(
            f"${cost:.4f} left this month, the run is estimated at "
            f"${estimate.cost_usd.mean:.4f} (p90 ${estimate.cost_usd.p90:.4f})"
        )
    if not problems:
        return None
    return Shortfall(
        detail=f"monthly budget of {org.name} too low for this run: " + "; ".join(problems),
        remaining_tokens=tokens,
        remaining_cost_usd=cost,
        since=month.since,
    )
