"""Runs: start one, list them, follow one (status, server-sent events), read what it built.

Every query is scoped to the caller's organization: another tenant's run answers 404
exactly as a missing one does (`api/ownership.py`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import tempfile
import uuid
import zipfile
from collections.abc import AsyncIterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from temporalio.client import Client
from temporalio.service import RPCError

from agents.llm import ProviderConfigError, make_provider
from agents.protocol import LLMProvider
from agents.roles import ROLES
from api.auth import CallerDep, WriterDep
from api.deps import DatabaseDep, SettingsDep, TemporalDep, get_temporal
from api.fields import ShortText, Storable, Text, UtcDateTime, as_utc, check_storable, storable_text
from api.ownership import OwnedRunDep
from api.schemas import (
    ArtifactInfo,
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
    RunSummary,
    RunTotals,
)
from core.contracts import RunPlan, RunStatus, workflow_id_for
from core.infrastructure.settings import Settings
from core.infrastructure.temporal import start_run
from core.persistence import storage
from core.persistence.db import Database, Organization, Run
from core.persistence.tenancy import month_start, tenant_spending
from core.services import runs, steering
from core.services.escalation import EscalationRefused, check_escalation
from core.services.estimate import Estimate, estimate_run, predicted_vs_actual
from core.services.export import export_repository
from core.services.plans import build_plan
from core.services.templates import (
    DEFAULT_TEMPLATE,
    available_templates,
    load_template,
    parse_template,
)
from workflows.dsl import Template, TemplateError, validate

router = APIRouter(tags=["runs"])

EVENTS_POLL_SECONDS = 0.5

RUN_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No run with this id in the caller's organization."}
}


# --- helpers -----------------------------------------------------------------------------


def _unprocessable(
    field: str | tuple[str, ...], message: str, kind: str = "value_error", **context: Any
) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, without echoing the input back."""
    path = (field,) if isinstance(field, str) else field
    error: dict[str, Any] = {"type": kind, "loc": ["body", *path], "msg": message}
    if context:
        error["ctx"] = context
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [error])


def _inline_template(text: str, source: str) -> Template:
    template = parse_template(text, source)
    validate(template, ROLES, source)
    try:
        check_storable(template)  # YAML escapes ("\0", "\ud800") make what JSON refused
    except ValueError as exc:
        raise TemplateError(source, [str(exc)]) from None
    return template


async def _template(body: EstimateRequest) -> Template:
    if body.inline_template is not None:
        source = "inline_template"
        text = (
            body.inline_template
            if isinstance(body.inline_template, str)
            else json.dumps(body.inline_template)  # JSON is YAML: one parser, one set of messages
        )
        try:
            # Parsing is CPU-bound: off the event loop, other requests go on meanwhile.
            template = await asyncio.to_thread(_inline_template, text, source)
        except TemplateError as exc:
            raise _unprocessable(source, str(exc), problems=exc.problems) from None
        return template
    name = body.template or DEFAULT_TEMPLATE
    builtin = available_templates()
    if name not in builtin:
        # Only built-in names: a request never makes the server read a file of its choosing.
        raise _unprocessable(
            "template", f"unknown template {name!r} (built-in templates: {', '.join(builtin)})"
        )
    return load_template(name, ROLES)


async def _plan(body: EstimateRequest, tenant: str, settings: Settings, run_id: str) -> RunPlan:
    if len(body.goal) > settings.api.max_goal_chars:
        raise _unprocessable(
            "goal",
            f"the goal has {len(body.goal)} characters; at most {settings.api.max_goal_chars} are allowed",
            "string_too_long",
        )
    template = await _template(body)
    run = body if isinstance(body, RunCreate) else None
    try:
        return build_plan(
            template,
            goal=body.goal,
            run_id=run_id,
            provider=settings.provider,
            tenant=tenant,
            model=body.model,
            validate=body.validate_tasks,
            response_cache=body.response_cache,
            budget_tokens=run.budget_tokens if run else None,
            budget_usd=run.budget_usd if run else None,
            escalation=run.escalation if run else None,
        )
    except ValueError as exc:
        raise _unprocessable("goal", str(exc)) from None


async def _check_escalation(body: RunCreate, settings: Settings) -> None:
    if body.escalation is None:
        return
    try:
        await check_escalation(body.escalation, settings)
    except EscalationRefused as exc:
        raise _unprocessable(("escalation", exc.field), exc.reason) from None


def pricing_provider(request: Request, settings: SettingsDep) -> LLMProvider:
    """The configured provider, for its default model and its prices (it is never called)."""
    provider: LLMProvider | None = getattr(request.app.state, "pricing_provider", None)
    if provider is None:
        try:
            provider = make_provider(settings)
        except ProviderConfigError as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, f"cannot price runs: {exc}"
            ) from None
        request.app.state.pricing_provider = provider
    return provider


PricingDep = Annotated[LLMProvider, Depends(pricing_provider)]


async def _estimate(db: Database, plan: RunPlan, provider: LLMProvider) -> Estimate:
    return await estimate_run(
        db, plan, default_model=provider.default_model, price=provider.cost_usd
    )


async def _refusal(db: Database, tenant: str, estimate: Estimate) -> BudgetRefusal | None:
    """Refused when the month's remaining budget is spent or below the estimate's *mean*.

    The mean, not the p90: a run that fits on average may start; if it turns out dearer,
    `call_model` pauses it on the budget gate before anything is overspent.
    """
    async with db.session() as session:
        org = await session.get(Organization, tenant)
    if org is None or (org.monthly_token_limit is None and org.monthly_cost_limit_usd is None):
        return None
    since = month_start()
    spent = await tenant_spending(db, tenant, since)
    remaining = Remaining(
        tokens=None
        if org.monthly_token_limit is None
        else max(org.monthly_token_limit - spent.tokens, 0),
        cost_usd=None
        if org.monthly_cost_limit_usd is None
        else round(max(org.monthly_cost_limit_usd - spent.cost_usd, 0.0), 6),
        since=since,
    )
    problems: list[str] = []
    if remaining.tokens is not None and (
        remaining.tokens <= 0 or remaining.tokens < estimate.tokens.mean
    ):
        problems.append(
            f"{remaining.tokens} tokens left this month, the run is estimated at "
            f"{estimate.tokens.mean:.0f} (p90 {estimate.tokens.p90:.0f})"
        )
    if remaining.cost_usd is not None and (
        remaining.cost_usd <= 0 or remaining.cost_usd < estimate.cost_usd.mean
    ):
        problems.append(
            f"${remaining.cost_usd:.4f} left this month, the run is estimated at "
            f"${estimate.cost_usd.mean:.4f} (p90 ${estimate.cost_usd.p90:.4f})"
        )
    if not problems:
        return None
    return BudgetRefusal(
        detail=f"monthly budget of {org.name} too low for this run: " + "; ".join(problems),
        remaining=remaining,
        estimate=estimate,
    )


def _links(settings: Settings, run_id: str) -> RunLinks:
    base = f"/runs/{run_id}"
    return RunLinks(
        self=base,
        status=f"{base}/status",
        events=f"{base}/events",
        artifacts=f"{base}/artifacts",
        archive=f"{base}/archive",
        web_ui=f"{settings.temporal.ui_url}/namespaces/{settings.temporal.temporal_namespace}"
        f"/workflows/{workflow_id_for(run_id)}",
    )


async def _summary(db: Database, settings: Settings, run: Run) -> RunSummary:
    if run.completed_at is None:
        usage, cost = await runs.run_totals(db, run.workflow_id)
        totals = RunTotals(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_input_tokens,
            cache_write_tokens=usage.cache_creation_input_tokens,
            cost_usd=cost,
        )
    else:
        totals = RunTotals(
            input_tokens=run.input_tokens,
            output_tokens=run.output_tokens,
            cache_read_tokens=run.cache_read_tokens,
            cache_write_tokens=run.cache_write_tokens,
            cost_usd=run.cost_usd,
        )
    return RunSummary(
        id=run.id,
        workflow_id=run.workflow_id,
        goal=run.goal,
        template=run.template,
        status=RunStatus(run.status),
        totals=totals,
        error=run.error,
        created_at=run.created_at,
        updated_at=run.updated_at,
        completed_at=run.completed_at,
        links=_links(settings, run.id),
    )


def _encode_cursor(run: Run) -> str:
    raw = json.dumps([run.created_at.isoformat(), run.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, run_id = json.loads(raw)
        return as_utc(datetime.fromisoformat(created)), storable_text(str(run_id))
    except (binascii.Error, ValueError, TypeError):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [
                {
                    "type": "value_error",
                    "loc": ["query", "cursor"],
                    "msg": "invalid cursor: pass `next_cursor` from the previous page as it is",
                }
            ],
        ) from None


async def _optional_temporal(request: Request) -> Client | None:
    """Temporal if it answers: closed runs are read from the database without it."""
    try:
        return await get_temporal(request)
    except HTTPException:
        return None


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
) -> RunAccepted | JSONResponse:
    """Start a goal: compile the template, check the month's budget, start `GoalWorkflow`.

    The run is listed (`GET /runs`) as soon as this answers.
    """
    plan = await _plan(body, caller.org_id, settings, run_id=uuid.uuid4().hex)
    await _check_escalation(body, settings)
    estimate = await _estimate(db, plan, provider)
    refusal = await _refusal(db, caller.org_id, estimate)
    if refusal is not None:
        return JSONResponse(
            refusal.model_dump(mode="json"), status_code=status.HTTP_402_PAYMENT_REQUIRED
        )
    temporal = await get_temporal(request)
    workflow_id = workflow_id_for(plan.run_id)
    # The workflow first, then its row: a process killed in between leaves no row without
    # a workflow (such a row would stay `running` forever). The workflow's first activity
    # writes the same row, first write winning; writing it here too makes the run
    # readable the moment this answers.
    try:
        await start_run(temporal, plan)
    except RPCError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"cannot start the run: {exc.message}"
        ) from None
    await storage.record_run_started(db, plan, workflow_id)
    links = _links(settings, plan.run_id)
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
) -> Estimate:
    """Predicted tokens and cost per role and in total (mean and p90).

    From the organization's completed runs of the same template (`basis: history`), else
    per-role defaults (`basis: defaults`, with a `note`).
    """
    plan = await _plan(body, caller.org_id, settings, run_id="estimate")
    return await _estimate(db, plan, provider)


# --- reading runs ------------------------------------------------------------------------


@router.get("/runs")
async def list_runs(
    caller: CallerDep,
    request: Request,
    settings: SettingsDep,
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
    before = _decode_cursor(cursor) if cursor else None
    rows = await runs.list_tenant_runs(db, caller.org_id, filters, limit=limit + 1, before=before)
    page, more = rows[:limit], len(rows) > limit
    next_cursor = _encode_cursor(page[-1]) if more else None
    next_link = None
    if next_cursor is not None:
        params = {k: v for k, v in request.query_params.items() if k != "cursor"}
        next_link = f"{request.url.path}?{urlencode({**params, 'cursor': next_cursor})}"
    return RunPage(
        runs=[await _summary(db, settings, run) for run in page],
        next_cursor=next_cursor,
        next=next_link,
    )


@router.get("/runs/{run_id}", responses=RUN_NOT_FOUND)
async def get_run(run: OwnedRunDep, settings: SettingsDep, db: DatabaseDep) -> RunSummary:
    """The run's record: goal, template, status, totals, when it was created and completed."""
    return await _summary(db, settings, run)


@router.get(
    "/runs/{run_id}/status",
    responses={
        **RUN_NOT_FOUND,
        503: {"description": "The run is open and Temporal does not answer."},
    },
)
async def run_status(
    run: OwnedRunDep,
    db: DatabaseDep,
    temporal: Annotated[Client | None, Depends(_optional_temporal)],
) -> RunProgress:
    """Task by task: the workflow's live `status` query while it runs, the recorded final
    state once it is closed (`source` says which)."""
    try:
        view = await runs.load_state(db, temporal, run)
    except runs.StateUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    state = view.state
    return RunProgress(
        **state.model_dump(exclude={"events"}),
        last_event_seq=state.events[-1].seq if state.events else 0,
        source=view.source,
    )


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
    return RunEstimate.model_validate(comparison.model_dump())


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


# --- what a run built --------------------------------------------------------------------


@router.get("/runs/{run_id}/artifacts", responses=RUN_NOT_FOUND)
async def list_artifacts(run: OwnedRunDep, db: DatabaseDep) -> list[ArtifactInfo]:
    """The workspace as it stands: the newest version of every file."""
    return [
        ArtifactInfo(
            path=a.path,
            version=a.version,
            task=a.task_id,
            role=a.role,
            model=a.model,
            size=a.size,
            sha256=a.sha256,
            created_at=a.created_at,
        )
        for a in await storage.latest_artifacts(db, run.id)
    ]


@router.get(
    "/runs/{run_id}/artifacts/{path:path}",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {}}, "description": "The file's newest version."},
        404: {"description": "No such run in the caller's organization, or no such file."},
    },
)
async def artifact_content(path: Text, run: OwnedRunDep, db: DatabaseDep) -> PlainTextResponse:
    """One file's content (newest version); `ETag` is its sha256."""
    found = [a for a in await storage.latest_artifacts(db, run.id, prefix=path) if a.path == path]
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no artifact {path!r} in run {run.id}")
    artifact = found[0]
    return PlainTextResponse(
        artifact.content,
        headers={"ETag": f'"{artifact.sha256}"', "X-Artifact-Version": str(artifact.version)},
    )


def _zip(root: Path, files: Sequence[Path]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(files):
            archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()


@router.get(
    "/runs/{run_id}/archive",
    response_class=Response,
    responses={
        **RUN_NOT_FOUND,
        200: {"content": {"application/zip": {}}, "description": "The repository as a zip."},
    },
)
async def archive(run: OwnedRunDep, db: DatabaseDep) -> Response:
    """The generated repository as a zip: what `orchestrator run` delivers, PROVENANCE.md
    included (a snapshot of the workspace while the run is still going)."""
    with tempfile.TemporaryDirectory(prefix="orchestrator-archive-") as tmp:
        root = Path(tmp)
        files = await export_repository(db, run.id, run.workflow_id, root)
        content = await asyncio.to_thread(_zip, root, files)
    return Response(
        content,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="run-{run.id}.zip"'},
    )


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
