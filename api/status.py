"""`GET /runs/{id}/status` without repeated work: each answer is made once, then served.

- The answer for a run (its row, then Temporal's: is the workflow open, and its `status`
  query while it is) is made once per `STATUS_CACHE_SECONDS` by this process, and kept
  rendered: by one request while the others wait for it, or, once half that time has
  passed, in the background while the kept one is still served. So a status is at most
  that old; each new answer is read after the last, so a status never goes back (closed
  to open) but for a workflow reset, which reopens a closed run. A request of this
  process that may change the run (cancel, decisions, reset, plan edits:
  `api/ownership.py`) drops it.
- A closed run's status is rendered from its stored final state once per version of its
  row (`updated_at`), reading the tasks, usage and notes and only the `seq` of each event,
  and kept (the `MAX_CLOSED_BODIES` most recently used).

The body is `core.services.runs.load_state`'s state shown as a `RunProgress`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field
from temporalio.client import Client
from temporalio.service import RPCError

from api.schemas.runs import RunProgress
from core.contracts import RunState, RunStatus
from core.persistence.db import Database
from core.services import runs
from core.services.runs import Source, StatusRow

STATUS_CACHE_SECONDS = 1.0
"""How long one answer about a run serves every status request of this process."""

MAX_CLOSED_BODIES = 256
MAX_STATUSES = 4096


class _EventSeq(BaseModel):
    seq: int


class _StoredState(RunState):
    """A stored `RunState` as the status shows it: of each event, only its `seq` is read."""

    events: list[_EventSeq] = Field(default_factory=list)  # type: ignore[assignment]


def progress(state: RunState | _StoredState, source: Source) -> RunProgress:
    """The run's state as `GET /runs/{id}/status` shows it: without its event log."""
    return RunProgress(
        **state.model_dump(exclude={"events"}),
        last_event_seq=state.events[-1].seq if state.events else 0,
        source=source,
    )


def render(progress: RunProgress) -> bytes:
    return progress.model_dump_json(by_alias=True).encode()


def closed_body(final_state: str) -> bytes:
    """The status of a closed run from its stored final state (JSON)."""
    return render(progress(_StoredState.model_validate_json(final_state), "database"))


@dataclass(frozen=True)
class _Status:
    tenant: str
    body: bytes
    expires: float


class StatusCache:
    """Rendered statuses of this process's runs; `clock` is monotonic seconds."""

    def __init__(
        self, *, ttl: float = STATUS_CACHE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl, self.clock = ttl, clock
        self._statuses: dict[str, _Status] = {}
        self._making: dict[str, asyncio.Task[_Status | None]] = {}
        self._closed: OrderedDict[tuple[str, datetime], bytes] = OrderedDict()

    def forget(self, run_id: str) -> None:
        """Make the next status of the run anew (this process is changing the run): an
        answer being made meanwhile serves the requests waiting for it, and is not kept."""
        self._statuses.pop(run_id, None)
        self._making.pop(run_id, None)

    async def body(
        self, db: Database, client: Client | None, run_id: str, tenant: str
    ) -> bytes | None:
        """The run's status as JSON, None if `tenant` has no such run; raises
        `runs.StateUnavailable` as `load_state` does."""
        kept = self._statuses.get(run_id)
        now = self.clock()
        if kept is None or now >= kept.expires:
            kept = await asyncio.shield(self._making_of(db, client, run_id))
        elif now >= kept.expires - self.ttl / 2:
            # Half its time gone: the next answer is made meanwhile, so that steady polling
            # never waits for one; this request still gets the kept one, young enough.
            self._making_of(db, client, run_id)
        if kept is None or kept.tenant != tenant:
            return None
        return kept.body

    def _making_of(
        self, db: Database, client: Client | None, run_id: str
    ) -> asyncio.Task[_Status | None]:
        """The answer being made for the run, started if none is. A task of its own: a
        request that gives up cancels nobody else's answer."""
        making = self._making.get(run_id)
        if making is None:
            making = asyncio.ensure_future(self._make(db, client, run_id))
            self._making[run_id] = making
            making.add_done_callback(lambda task: self._made(run_id, task))
        return making

    def _made(self, run_id: str, task: asyncio.Task[_Status | None]) -> None:
        failed = task.cancelled() or task.exception() is not None  # retrieved either way
        if self._making.get(run_id) is not task:
            return  # forgotten while it was made
        del self._making[run_id]
        if failed:
            return  # not kept: the next request tries again
        made = task.result()
        if made is not None:
            if len(self._statuses) >= MAX_STATUSES:
                self._statuses.clear()
            self._statuses[run_id] = made

    async def _make(self, db: Database, client: Client | None, run_id: str) -> _Status | None:
        expires = self.clock() + self.ttl
        row = await runs.status_row(db, run_id)
        if row is None:
            return None
        return _Status(row.tenant, await self._render(db, client, row), expires)

    async def _render(self, db: Database, client: Client | None, row: StatusRow) -> bytes:
        """`load_state`'s answer, rendered."""
        is_open: bool | None = None
        if client is not None:
            try:
                is_open = await runs.workflow_open(client, row.id)
            except RPCError:
                client = None  # Temporal does not answer: the database is all there is
        if client is not None and is_open:
            state = await runs.query_state(client, row.id)
            # Started, but its first workflow task has not run yet: nothing has happened.
            state = state or RunState(run_id=row.id, goal=row.goal, template=row.template)
            return render(progress(state, "workflow"))
        if not row.recorded_final:  # the run may have closed since its row was read
            row = await runs.status_row(db, row.id) or row
        if row.recorded_final:
            body = await self._closed_body(db, row.id, row.updated_at)
            if body is not None:
                return body
        if client is None:
            raise runs.StateUnavailable(
                f"Temporal cannot be reached and run {row.id} recorded no final state"
            )
        where = "unknown to Temporal" if is_open is None else "closed"
        unrecorded = RunState(
            run_id=row.id,
            goal=row.goal,
            template=row.template,
            status=RunStatus.FAILED,
            error=f"the workflow is {where} and recorded no final state",
        )
        return render(progress(unrecorded, "database"))

    async def _closed_body(self, db: Database, run_id: str, updated_at: datetime) -> bytes | None:
        body = self._closed.get((run_id, updated_at))
        if body is not None:
            self._closed.move_to_end((run_id, updated_at))
            return body
        stored = await runs.stored_final_state(db, run_id)
        if stored is None:
            return None
        final_state, version = stored
        body = closed_body(final_state)
        self._closed[(run_id, version)] = body
        while len(self._closed) > MAX_CLOSED_BODIES:
            self._closed.popitem(last=False)
        return body
