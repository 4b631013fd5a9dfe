"""`/metrics` of the API in Prometheus format.

Platform-wide gauges (runs by status, pending human decisions, dead-lettered tasks) are
computed from the database and Temporal visibility. Figures per tenant (this month's
tokens and cost) appear only for an admin credential: the operator token sees every
tenant, an organization admin key sees its own organization.

The endpoint needs no credentials, so each answer is reused for `METRICS_CACHE_SECONDS`:
however often anyone scrapes, the database and Temporal see one round of queries per
period (a Prometheus scrape interval is 15 s or more, so scrapes still see fresh figures).
A credential that fails counts against its address's failed authentications.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlmodel import select
from temporalio.client import Client

from api.deps import ApiSettingsDep, DatabaseDep, TemporalDep
from api.rate_limit import count_failed_authentication, refuse_guessing_client
from core.contracts import PendingDecision, RunState, RunStatus
from core.infrastructure.metrics import REGISTRY
from core.infrastructure.settings import ApiSettings
from core.persistence import tenancy
from core.persistence.db import Database, LedgerEntry, Run
from core.services.visibility import in_status, runs_query
from workflows.goal import GoalWorkflow

router = APIRouter(tags=["operations"])

QUERY_CONCURRENCY = 16
QUERY_TIMEOUT = timedelta(seconds=2)
MAX_WAITING_RUNS_SCANNED = 200


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


async def _run_counts(db: Database) -> GaugeMetricFamily:
    family = GaugeMetricFamily("orchestrator_runs", "Runs by status.", labels=["status"])
    async with db.session() as session:
        rows = (await session.execute(select(Run.status, func.count()).group_by(Run.status))).all()
    counts = {status: count for status, count in rows}
    for status in RunStatus:
        family.add_metric([status.value], counts.get(status.value, 0))
    return family


async def _waiting(temporal: Client) -> list[GaugeMetricFamily]:
    """Pending decisions by kind and dead-lettered tasks, from the runs that wait.

    Queries run concurrently, each with a short deadline: a query needs a worker to answer
    it, and with the workers down (when metrics matter most) each one would otherwise hang
    for the server's default of about 30 s and the scrape would time out.
    """
    # Running executions only: one a reset left behind still says "waiting".
    query = runs_query(in_status(RunStatus.WAITING))
    ids: list[str] = []
    async for execution in temporal.list_workflows(query):
        if len(ids) >= MAX_WAITING_RUNS_SCANNED:
            break
        ids.append(execution.id)
    limit = asyncio.Semaphore(QUERY_CONCURRENCY)

    async def pending_of(workflow_id: str) -> list[PendingDecision]:
        async with limit:
            try:
                handle = temporal.get_workflow_handle(workflow_id, result_type=RunState)
                return await handle.query(GoalWorkflow.pending_decisions, rpc_timeout=QUERY_TIMEOUT)
            except Exception:  # closed since listed, or no worker answered in time
                return []

    kinds: Counter[str] = Counter(
        p.kind for pending in await asyncio.gather(*map(pending_of, ids)) for p in pending
    )
    decisions = GaugeMetricFamily(
        "orchestrator_pending_decisions", "Human decisions runs wait for.", labels=["kind"]
    )
    for kind in ("gate", "budget", "dead_letter"):
        decisions.add_metric([kind], kinds.get(kind, 0))
    dead = GaugeMetricFamily(
        "orchestrator_dead_lettered_tasks", "Tasks waiting in the dead-letter state."
    )
    dead.add_metric([], kinds.get("dead_letter", 0))
    return [decisions, dead]


async def _tenant_spending(db: Database, tenant: str | None) -> list[Metric]:
    tokens = GaugeMetricFamily(
        "orchestrator_tenant_month_tokens", "Tokens this month by tenant.", labels=["tenant"]
    )
    cost = GaugeMetricFamily(
        "orchestrator_tenant_month_cost_usd", "Cost this month by tenant.", labels=["tenant"]
    )
    since = tenancy.month_start()
    async with db.session() as session:
        statement = (
            select(
                LedgerEntry.tenant,
                func.sum(LedgerEntry.input_tokens + LedgerEntry.output_tokens),
                func.sum(LedgerEntry.cost_usd),
            )
            .where(LedgerEntry.created_at >= since)
            .group_by(LedgerEntry.tenant)
        )
        if tenant is not None:
            statement = statement.where(LedgerEntry.tenant == tenant)
        for name, month_tokens, month_cost in (await session.execute(statement)).all():
            tokens.add_metric([name], float(month_tokens or 0))
            cost.add_metric([name], float(month_cost or 0.0))
    return [tokens, cost]


async def _tenant_scope(
    request: Request,
    settings: ApiSettings,
    db: Database,
    authorization: str | None,
    api_key: str | None,
) -> tuple[bool, str | None]:
    """(may see tenant figures, only this tenant or None for all)."""
    bearer = (authorization or "").removeprefix("Bearer ").strip()
    if not bearer and not api_key:
        return False, None
    await refuse_guessing_client(request, settings)
    operator = settings.admin_token.get_secret_value() if settings.admin_token else None
    if operator and bearer and hmac.compare_digest(bearer.encode(), operator.encode()):
        return True, None
    presented = api_key or (bearer if bearer.startswith(f"{tenancy.KEY_SCHEME}_") else None)
    row = await tenancy.verify_key(db, presented) if presented else None
    if row is None:
        await count_failed_authentication(request, settings)
        return False, None
    if row.role != tenancy.OrgRole.ADMIN.value:
        return False, None
    return True, row.org_id


class ScrapeCache:
    """Each part of the answer, kept for `METRICS_CACHE_SECONDS` after it was computed.

    Requests that find a part expired wait for one computation of it instead of each
    running the queries.
    """

    def __init__(self) -> None:
        self._parts: dict[str, tuple[float, list[Metric]]] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def get(
        self, part: str, ttl: float, compute: Callable[[], Awaitable[list[Metric]]]
    ) -> list[Metric]:
        async with self._locks[part]:
            kept = self._parts.get(part)
            if kept is not None and time.monotonic() < kept[0]:
                return kept[1]
            families = await compute()
            self._parts[part] = (time.monotonic() + ttl, families)
            return families


def _cache(request: Request) -> ScrapeCache:
    state = request.app.state
    cache: ScrapeCache | None = getattr(state, "metrics_cache", None)
    if cache is None:
        cache = state.metrics_cache = ScrapeCache()
    return cache


async def _platform(db: Database, temporal: Client) -> list[Metric]:
    return [await _run_counts(db), *await _waiting(temporal)]


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}},
        429: {"description": "Too many failed authentications from this address."},
    },
)
async def metrics(
    request: Request,
    settings: ApiSettingsDep,
    db: DatabaseDep,
    temporal: TemporalDep,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Response:
    """Prometheus exposition; tenant figures only with an admin credential."""
    allowed, tenant = await _tenant_scope(request, settings, db, authorization, x_api_key)
    cache, ttl = _cache(request), settings.metrics_cache_seconds
    families = await cache.get("platform", ttl, lambda: _platform(db, temporal))
    if allowed:
        families = families + await cache.get(
            f"tenants:{tenant or '*'}", ttl, lambda: _tenant_spending(db, tenant)
        )
    registry = CollectorRegistry()
    registry.register(_Families(families))
    body = generate_latest(registry) + generate_latest(REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
