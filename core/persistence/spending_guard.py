"""The budget check before every model call, without reading the organization each time.

`tenancy.budget_problem` reads the organization and its month's spending on every call.
`SpendingGuard` keeps each tenant's monthly limits for a few seconds instead: a tenant
without limits (the common case) then costs no query at all, and one with limits only its
month's spending. A spent budget is always confirmed with the organization read afresh, so
a limit raised to answer the budget gate counts at once; a limit set or lowered counts
within `ttl` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from core.persistence.db import Database, Organization
from core.persistence.tenancy import budget_problem, run_spending, tenant_spending

LIMITS_TTL_SECONDS = 5.0


@dataclass(frozen=True)
class MonthLimits:
    """An organization's monthly limits as read at `read_at` (monotonic seconds)."""

    tokens: int | None
    cost_usd: float | None
    read_at: float

    @property
    def unlimited(self) -> bool:
        return self.tokens is None and self.cost_usd is None


class SpendingGuard:
    def __init__(
        self, ttl: float = LIMITS_TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self._limits: dict[str, MonthLimits] = {}

    async def problem(
        self,
        db: Database,
        *,
        tenant: str,
        workflow_id: str,
        run_tokens: int | None,
        run_usd: float | None,
    ) -> str | None:
        """Why no more may be spent on this run (run limit or tenant's month), or None: the
        same answer as `tenancy.budget_problem`, up to `ttl` late for a limit set or lowered."""
        if run_tokens is not None or run_usd is not None:
            spent = await run_spending(db, workflow_id)
            if run_tokens is not None and spent.tokens >= run_tokens:
                return f"run token budget spent: {spent.tokens} of {run_tokens} tokens"
            if run_usd is not None and spent.cost_usd >= run_usd:
                return f"run cost budget spent: ${spent.cost_usd:.4f} of ${run_usd:.4f}"
        limits = await self.limits(db, tenant)
        if limits.unlimited:
            return None
        month = await tenant_spending(db, tenant)
        over = (limits.tokens is not None and month.tokens >= limits.tokens) or (
            limits.cost_usd is not None and month.cost_usd >= limits.cost_usd
        )
        if not over:
            return None
        # Confirmed with the organization as it is now (a person may just have raised it).
        self.forget(tenant)
        return await budget_problem(
            db, tenant=tenant, workflow_id=workflow_id, run_tokens=None, run_usd=None
        )

    def forget(self, tenant: str) -> None:
        """The tenant's limits changed here: read them again next time."""
        self._limits.pop(tenant, None)

    async def limits(self, db: Database, tenant: str) -> MonthLimits:
        """The tenant's monthly limits, read at most once per `ttl` seconds."""
        now = self.clock()
        known = self._limits.get(tenant)
        if known is not None and now - known.read_at < self.ttl:
            return known
        async with db.session() as session:
            org = await session.get(Organization, tenant)
        limits = MonthLimits(
            tokens=org.monthly_token_limit if org else None,
            cost_usd=org.monthly_cost_limit_usd if org else None,
            read_at=now,
        )
        self._limits[tenant] = limits
        return limits
