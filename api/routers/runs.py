"""Runs: start one, list them, follow one (status, server-sent events), stop one.

Every query is scoped to the caller's organization: another tenant's run answers 404
exactly as a missing one does (`api/ownership.py`). What a run built is `artifacts.py`'s.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterable
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from temporalio.service import RPCError

from agents.protocol import LLMProvider
from api.auth import CallerDep, WriterDep
from api.deps import (
    DatabaseDep,
    HistoryCacheDep,
    OptionalTemporalDep,
    PricingDep,
    SettingsDep,
    SpendingLimitsDep,
    TemporalDep,
    TemporalSettingsDep,
    app_db,
    app_statuses,
    get_optional_temporal,
    get_temporal,
)
from api.ownership import RUN_NOT_FOUND, OwnedRunDep, run_not_found
from api.paging import decode_cursor, encode_cursor, first_page, next_link
from api.routers.repositories import run_repository
from api.run_requests import check_request_escalation, request_plan
from api.schemas.fields import ShortText, Storable, Text, UtcDateTime
from api.schemas.runs import (
    BudgetRefusal,
    CancelAccepted,
    EstimateRequest,
    Remaining,
    RunAccepted,
    RunCreate,
    RunEstimate,
    RunLinks,
    RunPage,
    RunProgress,
    RunRecord,
    RunSummary,
    RunTotals,
)
from core.contracts import RunPlan, RunStatus, workflow_id_for
from core.infrastructure.settings import TemporalSettings
from core.infrastructure.temporal import start_run
from core.persistence import storage
from core.persistence.db import Database, Run
from core.services import budgets, runs, steering
from core.services.estimate import Estimate, HistoryCache, estimate_run, predicted_vs_actual
from core.services.graph import run_mermaid

router = APIRouter(tags=["runs"])
polled = APIRouter(tags=["runs"])
"""`GET /runs/{id}/status` alone, matched before every other route (`api/app.py`): clients
poll it, and each route tried before the one that matches costs a little."""

EVENTS_POLL_SECONDS = 0.5

# --- helpers -----------------------------------------------------------------------------


async def _estimate(
    db: Database,
    plan: RunPlan,
    provider: LLMProvider,
    history: HistoryCache,
    mark_max_age: float | None = None,
) -> Estimate:
    return await estimate_run(
        db,
        plan,
        default_model=provider.default_model,
        price=provider.cost_usd,
        history=history,
        mark_max_age=mark_max_age,
    )


def _refusal(shortfall: budgets.Shortfall, estimate: Estimate) -> JSONResponse:
    refusal = BudgetRefusal(
        detail=shortfall.detail,
        remaining=Remaining(
            tokens=shortfall.remaining_tokens,
            cost_usd=shortfall.remaining_cost_usd,
            since=shortfall.since,
        ),
        estimate=estimate,
    )
    return JSONResponse(
        refusal.model_dump(mode="json"), status_code=status.HTTP_402_PAYMENT_REQUIRED
    )


def _links(settings: TemporalSettings, run_id: str) -> RunLinks:
    base = f"/runs/{run_id}"
    return RunLinks(
        self=base,
        status=f"{base}/status",
        events=f"{base}/events",
        artifacts=f"{base}/artifacts",
        archive=f"{base}/archive",
        patch=f"{base}/patch",
        bundle=f"{base}/bundle",
        pull_request=f"{base}/pull-request",
        web_ui=f"{settings.ui_url}/namespaces/{settings.temporal_namespace}"
        f"/workflows/{workflow_id_for(run_id)}",
    )


async def _totals(db: Database, run: Run) -> RunTotals:
    """A closed run's row holds its totals; an open run's are summed from the ledger."""
    if run.completed_at is not None:
        return RunTotals.model_validate(run, from_attributes=True)
    usage, cost = await runs.run_totals(db, run.workflow_id)
    return RunTotals(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_input_tokens,
        cache_write_tokens=usage.cache_creation_input_tokens,
        cost_usd=cost,
    )


async def _summary(db: Database, settings: TemporalSettings, run: Run) -> RunSummary:
    return RunSummary(
        **RunRecord.model_validate(run, from_attributes=True).model_dump(),
        totals=await _totals(db, run),
        links=_links(settings, run.id),
    )


# --- starting runs -----------------------------------------------------------------------


@router.post(
    "/runs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunAccepted,
    responses={
        402: {"model": BudgetRefusal, "description": "The month's budget is too low."},
        422: {
            "description": "The goal, the template or the escalation policy is invalid; "
            "`detail` names the field."
        },
    },
)
async def create_run(
    body: Annotated[RunCreate, Storable],
    caller: WriterDep,
    request: Request,
    response: Response,
    settings: SettingsDep,
    db: DatabaseDep,
    provider: PricingDep,
    history: HistoryCacheDep,
    limits: SpendingLimitsDep,
) -> RunAccepted | JSONResponse:
    """Start a goal: compile the template, check the month's budget, start `GoalWorkflow`.

    The run is listed (`GET /runs`) as soon as this answers.
    """
    repository = await run_repository(body.repository, caller.org_id, db, settings)
    plan = await request_plan(
        body, caller.org_id, settings, run_id=uuid.uuid4().hex, repository=repository
    )
    await check_request_escalation(body, plan, settings)
    estimate = await _estimate(db, plan, provider, history)
    shortfall = await budgets.run_shortfall(db, caller.org_id, estimate, limits)
    if shortfall is not None:
        return _refusal(shortfall, estimate)
    temporal = await get_temporal(request)
    workflow_id = workflow_id_for(plan.run_id)
    # The workflow first, then its row: a process killed in between leaves no row without
    # a workflow (such a row would stay `running` forever). The workflow's first activity
    # writes the same row, first write winning; writing it here too makes the run
    # readable the moment this answers.
    try:
        # The run prints the commands that answer its gates with this API's address.
        await start_run(temporal, plan, api_url=str(request.base_url))
    except RPCError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"cannot start the run: {exc.message}"
        ) from None
    await storage.record_run_started(db, plan, workflow_id)
    links = _links(settings.temporal, plan.run_id)
    response.headers["Location"] = links.self
    return RunAccepted(
        id=plan.run_id,
        workflow_id=workflow_id,
        status=RunStatus.RUNNING,
        links=links,
        estimate=estimate,
    )


@router.post("/runs/estimate")
async def estimate(
    body: Annotated[EstimateRequest, Storable],
    caller: CallerDep,
    settings: SettingsDep,
    db: DatabaseDep,
    provider: PricingDep,
    history: HistoryCacheDep,
) -> Estimate:
    """Predicted tokens and cost per role and in total (mean and p90).

    From the organization's completed runs of the same template (`basis: history`), else
    per-role defaults (`basis: defaults`, with a `note`).
    """
    plan = await request_plan(body, caller.org_id, settings, run_id="estimate")
    # Asked for by a person: up to date with the last completed run, not seconds late.
    return await _estimate(db, plan, provider, history, mark_max_age=0.0)


# --- reading runs ------------------------------------------------------------------------


@router.get("/runs")
async def list_runs(
    caller: CallerDep,
    request: Request,
    settings: TemporalSettingsDep,
    db: DatabaseDep,
    status_: Annotated[RunStatus | None, Query(alias="status")] = None,
    template: ShortText | None = None,
    created_after: UtcDateTime | None = None,
    created_before: UtcDateTime | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: ShortText | None = None,
) -> RunPage:
    """The organization's runs, newest first, filtered; follow `next` for more."""
    filters = runs.RunFilter(
        status=status_.value if status_ is not None else None,
        template=template,
        created_after=created_after,
        created_before=created_before,
    )
    before = decode_cursor(cursor) if cursor else None
    rows = await runs.list_tenant_runs(db, caller.org_id, filters, limit=limit + 1, before=before)
    page, more = first_page(rows, limit)
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if more else None
    return RunPage(
        runs=[await _summary(db, settings, run) for run in page],
        next_cursor=next_cursor,
        next=next_link(request, "cursor", next_cursor) if next_cursor is not None else None,
    )


@router.get("/runs/{run_id}", responses=RUN_NOT_FOUND)
async def get_run(run: OwnedRunDep, settings: TemporalSettingsDep, db: DatabaseDep) -> RunSummary:
    """The run's record: goal, template, status, totals, when it was created and completed."""
    return await _summary(db, settings, run)


@polled.get(
    "/runs/{run_id}/status",
    response_model=RunProgress,
    responses={
        **RUN_NOT_FOUND,
        503: {"description": "The run is open and Temporal does not answer."},
    },
)
async def run_status(run_id: Text, caller: CallerDep, request: Request) -> Response:
    """Task by task: the workflow's live `status` query while it runs, the recorded final
    state once it is closed (`source` says which). An answer may be up to a second old
    (docs/api.md)."""
    # The app's parts read directly, not as dependencies: this is the route clients poll.
    temporal = await get_optional_temporal(request)
    try:
        body = await app_statuses(request).body(app_db(request), temporal, run_id, caller.org_id)
    except runs.StateUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    if body is None:
        raise run_not_found(run_id)
    return Response(body, media_type="application/json")


@router.get(
    "/runs/{run_id}/graph",
    response_class=PlainTextResponse,
    responses={
        **RUN_NOT_FOUND,
        200: {
            "content": {"text/plain": {}},
            "description": "The run's DAG as a Mermaid flowchart, each task in its state.",
        },
        503: {"description": "The run is open and Temporal does not answer."},
    },
)
async def run_graph(
    run: OwnedRunDep, db: DatabaseDep, temporal: OptionalTemporalDep
) -> PlainTextResponse:
    """The run's tasks and dependencies as Mermaid text (`flowchart TD`): gates as hexagons,
    human approval gates as diamonds, one class per task state. GitHub, GitLab and the
    Mermaid Live Editor draw it; no SVG is rendered here (see docs/api.md)."""
    try:
        view = await runs.load_state(db, temporal, run)
    except runs.StateUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    return PlainTextResponse(run_mermaid(view.state))


@router.get(
    "/runs/{run_id}/estimate",
    responses={**RUN_NOT_FOUND, 409: {"description": "The run is still open."}},
)
async def run_estimate(run: OwnedRunDep, db: DatabaseDep, provider: PricingDep) -> RunEstimate:
    """Predicted (the estimate from the runs completed before this one was created) vs
    actual (the ledger) tokens and cost, per role and in total, once the run is closed."""
    if run.completed_at is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"run {run.id} is still {run.status}: predicted vs actual is known once it closes",
        )
    comparison = await predicted_vs_actual(
        db, run.id, default_model=provider.default_model, price=provider.cost_usd
    )
    return RunEstimate.model_validate(comparison, from_attributes=True)


@router.get(
    "/runs/{run_id}/events",
    response_class=EventSourceResponse,
    responses={
        **RUN_NOT_FOUND,
        200: {"description": "`text/event-stream`: one event per `RunEvent`, id = seq."},
    },
)
async def run_events(
    run: OwnedRunDep,
    db: DatabaseDep,
    temporal: TemporalDep,
    after: Annotated[int | None, Query(ge=0, description="Send events after this seq.")] = None,
    last_event_id: Annotated[
        int | None,
        Header(ge=0, description="Set by a reconnecting EventSource; wins over `after`."),
    ] = None,
) -> AsyncIterable[ServerSentEvent]:
    """The run's events as server-sent events: `id` is the seq, `event` the type, `data`
    the event as JSON. Live while the run is open; the stream ends after the last one."""
    seq = last_event_id if last_event_id is not None else (after or 0)
    while True:
        page = await runs.events_after(db, temporal, run.id, seq)
        for event in page.events:
            if event.seq <= seq:
                continue  # a reset can replay seqs a client already has
            yield ServerSentEvent(id=str(event.seq), event=event.type.value, data=event)
            seq = event.seq
        if page.closed:
            return
        await asyncio.sleep(EVENTS_POLL_SECONDS)


# --- stopping runs -----------------------------------------------------------------------


@router.post(
    "/runs/{run_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**RUN_NOT_FOUND, 409: {"description": "The run is not running."}},
)
async def cancel_run(run: OwnedRunDep, _caller: WriterDep, temporal: TemporalDep) -> CancelAccepted:
    """Cancel the run's workflow: running tasks stop, the run records itself `cancelled`."""
    handle = await steering.running_handle(temporal, run.id)
    try:
        await handle.cancel()
    except RPCError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run.id}: {exc.message}") from None
    return CancelAccepted(run_id=run.id, detail="cancellation requested")
