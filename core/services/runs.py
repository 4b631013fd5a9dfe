"""Reading a run's state and events: from its workflow while it runs, from the database after.

While the workflow is open its queries are the truth (the database row has only its
status: `running`, or `waiting` on a person). Once it is closed, `runs.final_state` holds
the last `RunState`, events included, so a closed run answers without Temporal; a failed
run's execution fails after writing it. A workflow reset reopens a closed run, which is
why the workflow is asked first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, bindparam, or_
from sqlalchemy import select as select_columns
from sqlmodel import col, select
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from core.contracts import (
    RUN_FAILED_ERROR,
    RunEvent,
    RunPlan,
    RunState,
    RunStatus,
    Usage,
    run_id_for,
    workflow_id_for,
)
from core.infrastructure.settings import TemporalSettings
from core.infrastructure.temporal import start_run
from core.persistence import storage
from core.persistence.db import Database, Run
from workflows.goal import GoalWorkflow

Source = Literal["workflow", "database"]

GoalHandle = WorkflowHandle[GoalWorkflow, RunState]


class RunNotRecorded(LookupError):
    """No run with this id in the database."""


class StateUnavailable(LookupError):
    """An open run's state needs Temporal, and Temporal does not answer."""


def goal_handle(client: Client, run_id: str) -> GoalHandle:
    """The run's workflow, typed: its queries, signals and updates are named by method."""
    return client.get_workflow_handle_for(GoalWorkflow.run, workflow_id_for(run_id))


def web_ui_link(temporal: TemporalSettings, run_id: str) -> str:
    """The run's page in the Temporal Web UI."""
    return (
        f"{temporal.ui_url}/namespaces/{temporal.temporal_namespace}"
        f"/workflows/{workflow_id_for(run_id)}"
    )


async def recorded_run(db: Database, run_id: str) -> Run:
    """The run's database row; raises `RunNotRecorded` without one."""
    run = await storage.get_run(db, run_id)
    if run is None:
        raise RunNotRecorded(f"no run with id {run_id!r}")
    return run


async def start_goal(client: Client, db: Database, plan: RunPlan) -> str:
    """Start the plan's `GoalWorkflow`, then write its run row; returns the workflow id.

    The workflow first, then its row: a process killed in between leaves no row without
    a workflow (such a row would stay `running` forever). The workflow's first activity
    writes the same row, first write winning; writing it here too lists the run (and
    makes it readable) before any worker has picked it up.
    """
    workflow_id = workflow_id_for(plan.run_id)
    await start_run(client, plan)
    await storage.record_run_started(db, plan, workflow_id)
    return workflow_id


def is_run_failure(exc: WorkflowFailureError) -> bool:
    """Whether a workflow failed as a failed run does: after recording its final state."""
    cause = exc.cause
    return isinstance(cause, ApplicationError) and cause.type == RUN_FAILED_ERROR


async def final_state(db: Database, handle: WorkflowHandle[Any, RunState]) -> RunState:
    """How a run ended, once its workflow closes: its result, or for a failed run (its
    execution fails after recording its final state) the state its database row holds.

    Anything else that ends the workflow (cancelled, terminated, a bug) still raises.
    """
    try:
        return await handle.result()
    except WorkflowFailureError as exc:
        run = await storage.get_run(db, run_id_for(handle.id)) if is_run_failure(exc) else None
        recorded = stored_state(run) if run is not None else None
        if recorded is None:
            raise
        return recorded


@dataclass(frozen=True)
class StateView:
    state: RunState
    source: Source


async def workflow_open(client: Client, run_id: str) -> bool | None:
    """True while the run's workflow runs, False once closed, None if Temporal has no such run.

    Any other failure (Temporal unreachable) raises `RPCError`: it says nothing of the run.
    """
    try:
        description = await goal_handle(client, run_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return description.status == WorkflowExecutionStatus.RUNNING


async def query_state(client: Client, run_id: str) -> RunState | None:
    """The workflow's `status` query; None before its first workflow task has run."""
    try:
        return await goal_handle(client, run_id).query(GoalWorkflow.status)
    except (RPCError, WorkflowQueryFailedError):
        return None


def stored_state(run: Run) -> RunState | None:
    return RunState.model_validate_json(run.final_state) if run.final_state else None


async def load_state(db: Database, client: Client | None, run: Run) -> StateView:
    """The run task by task; `client` None (Temporal unreachable) reads the database only.

    Raises `StateUnavailable` when only Temporal knows the answer and cannot be asked.
    """
    is_open: bool | None = None
    if client is not None:
        try:
            is_open = await workflow_open(client, run.id)
        except RPCError:
            client = None  # Temporal does not answer: the database is all there is
    if client is not None and is_open:
        state = await query_state(client, run.id)
        if state is not None:
            return StateView(state, "workflow")
        # Started, but its first workflow task has not run yet: nothing has happened.
        return StateView(RunState(run_id=run.id, goal=run.goal, template=run.template), "workflow")
    # Read the row again: the run may have closed since the caller read it.
    run = await storage.get_run(db, run.id) or run
    stored = stored_state(run)
    if stored is not None:
        return StateView(stored, "database")
    if client is None:
        raise StateUnavailable(
            f"Temporal cannot be reached and run {run.id} recorded no final state"
        )
    where = "unknown to Temporal" if is_open is None else "closed"
    return StateView(
        RunState(
            run_id=run.id,
            goal=run.goal,
            template=run.template,
            status=RunStatus.FAILED,
            error=f"the workflow is {where} and recorded no final state",
        ),
        "database",
    )


# --- the status of one run, read lightly (GET /runs/{id}/status) --------------------------


@dataclass(frozen=True)
class StatusRow:
    """What the status of a run needs of its row, without its final state."""

    id: str
    tenant: str
    goal: str
    template: str
    updated_at: datetime
    completed_at: datetime | None
    recorded_final: bool
    """The row holds the final state (`stored_final_state` reads it)."""


_STATUS_ROW = select_columns(
    col(Run.id),
    col(Run.tenant),
    col(Run.goal),
    col(Run.template),
    col(Run.updated_at),
    col(Run.completed_at),
    col(Run.final_state).is_not(None),
).where(col(Run.id) == bindparam("run_id"))


async def status_row(db: Database, run_id: str) -> StatusRow | None:
    async with db.session() as session:
        found = (await session.execute(_STATUS_ROW, {"run_id": run_id})).first()
    if found is None:
        return None
    run_id, tenant, goal, template, updated_at, completed_at, recorded = found
    return StatusRow(run_id, tenant, goal, template, updated_at, completed_at, bool(recorded))


_FINAL_STATE = select_columns(col(Run.final_state), col(Run.updated_at)).where(
    col(Run.id) == bindparam("run_id")
)


async def stored_final_state(db: Database, run_id: str) -> tuple[str, datetime] | None:
    """The run's final state as stored (JSON) and when its row was last written."""
    async with db.session() as session:
        found = (await session.execute(_FINAL_STATE, {"run_id": run_id})).first()
    if found is None or found[0] is None:
        return None
    return found[0], found[1]


@dataclass(frozen=True)
class EventsPage:
    events: list[RunEvent]
    closed: bool
    """No more events will come: the run is closed and these are the last of them."""


async def events_after(db: Database, client: Client, run_id: str, after: int) -> EventsPage:
    """The run's events with `seq` > `after`, and whether the stream of them has ended.

    Open workflow: its `events(after)` query. Closed: the events of `runs.final_state`
    (read after Temporal said closed, so the row is the final one), else the query
    answered from the closed workflow's history (a terminated run records no final
    state), else nothing more.
    """
    is_open = await workflow_open(client, run_id)
    handle = goal_handle(client, run_id)
    if is_open:
        try:
            live = await handle.query(GoalWorkflow.events, after)
        except (RPCError, WorkflowQueryFailedError):
            live = []  # its first workflow task has not run yet
        return EventsPage(live, closed=False)
    run = await storage.get_run(db, run_id)
    stored = stored_state(run) if run is not None else None
    if stored is not None:
        return EventsPage([e for e in stored.events if e.seq > after], closed=True)
    if is_open is None:
        return EventsPage([], closed=True)
    try:
        replayed = await handle.query(GoalWorkflow.events, after)
    except (RPCError, WorkflowQueryFailedError):
        replayed = []
    return EventsPage(replayed, closed=True)


# --- a tenant's runs ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunFilter:
    """Which of a tenant's runs to list; every field left None matches everything."""

    status: str | None = None
    template: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


async def list_tenant_runs(
    db: Database,
    tenant: str,
    filters: RunFilter | None = None,
    *,
    limit: int = 20,
    before: tuple[datetime, str] | None = None,
) -> list[Run]:
    """A tenant's runs, newest first: `limit` of them after the (created_at, id) `before`.

    Keyset pagination: a page starts after the last row of the one before, so runs
    started meanwhile neither shift nor repeat rows.
    """
    filters = filters or RunFilter()
    query = select(Run).where(Run.tenant == tenant)
    if filters.status is not None:
        query = query.where(Run.status == filters.status)
    if filters.template is not None:
        query = query.where(Run.template == filters.template)
    if filters.created_after is not None:
        query = query.where(col(Run.created_at) > filters.created_after)
    if filters.created_before is not None:
        query = query.where(col(Run.created_at) < filters.created_before)
    if before is not None:
        created, run_id = before
        query = query.where(
            or_(
                col(Run.created_at) < created,
                and_(col(Run.created_at) == created, col(Run.id) < run_id),
            )
        )
    query = query.order_by(col(Run.created_at).desc(), col(Run.id).desc()).limit(limit)
    async with db.session() as session:
        return list((await session.execute(query)).scalars())


async def run_totals(db: Database, workflow_id: str) -> tuple[Usage, float]:
    """A run's tokens and cost so far, from the ledger (the row's totals are set at its end)."""
    async with db.session() as session:
        return await storage.ledger_totals(session, workflow_id)
