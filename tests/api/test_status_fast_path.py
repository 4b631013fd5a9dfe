"""`GET /runs/{id}/status` as `api/status.py` answers it, on SQLite and PostgreSQL.

Closed runs (completed, failed, cancelled: real offline runs over real HTTP) answer the same
body as the path it replaced: the whole final state parsed by `load_state`, shown as a
`RunProgress`. Then the answer's lifetime with a clock the test moves: made once for
requests that arrive together, kept at most `STATUS_CACHE_SECONDS` (made again in the
background after half of it), dropped at once when this process changes the run.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event
from temporalio.client import Client

from api.schemas.runs import RunProgress
from api.status import STATUS_CACHE_SECONDS, StatusCache, closed_body
from core.contracts import (
    EventType,
    RunEvent,
    RunState,
    RunStatus,
    TaskState,
    TaskStatus,
    workflow_id_for,
)
from core.persistence import storage
from core.persistence.db import Database
from core.services import runs
from tests.api_harness import ApiHarness, api_settings, isolated_client, serving_api
from tests.helpers import TEMPLATES, make_plan, wait_until

GOAL = "Build a bookstore inventory API"
ONE_TASK = """
name: one
tasks:
  - id: requirements
    role: business_analyst
"""
APPROVAL = (TEMPLATES / "approval.yaml").read_text()


@pytest.fixture
async def served(any_db: Database, dev_client: Client) -> AsyncIterator[ApiHarness]:
    client = await isolated_client(dev_client)
    async with serving_api(any_db, client, api_settings()) as harness:
        yield harness


def as_before(view: runs.StateView) -> dict[str, Any]:
    """What the status endpoint answered before its fast path: the whole state parsed."""
    state = view.state
    progress = RunProgress(
        **state.model_dump(exclude={"events"}),
        last_event_seq=state.events[-1].seq if state.events else 0,
        source=view.source,
    )
    body: dict[str, Any] = progress.model_dump(mode="json")
    return body


async def test_closed_runs_answer_what_the_whole_final_state_said(served: ApiHarness) -> None:
    tenant = await served.tenant()
    http = served.http(tenant.headers)

    async def start(**body: Any) -> str:
        response = await http.post("/runs", json={"goal": GOAL, **body})
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    completed = await start(inline_template=ONE_TASK)
    cancelled = await start(inline_template=APPROVAL)
    # Nobody answers the gate: the policy decides by itself (its default: fail) after 1 s.
    failed = await start(
        inline_template=APPROVAL,
        escalation={"tier2_after_seconds": 0.5, "tier3_after_seconds": 1},
    )

    async def status_of(run_id: str) -> dict[str, Any]:
        response = await http.get(f"/runs/{run_id}/status")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        body: dict[str, Any] = response.json()
        return body

    async def waiting() -> bool:
        return bool((await status_of(cancelled))["status"] == "waiting")

    await wait_until(waiting, timeout=120)
    assert (await http.post(f"/runs/{cancelled}/cancel")).status_code == 202

    expected = {completed: "completed", cancelled: "cancelled", failed: "failed"}
    for run_id, closed_as in expected.items():

        async def closed(run_id: str = run_id) -> bool:
            return bool((await status_of(run_id))["source"] == "database")

        await wait_until(closed, timeout=180)
        fast = await status_of(run_id)
        row = await storage.get_run(served.db, run_id)
        assert row is not None and row.final_state is not None
        slow = as_before(await runs.load_state(served.db, served.temporal, row))
        assert fast == slow
        assert json.loads(closed_body(row.final_state)) == slow
        assert (fast["status"], fast["source"]) == (closed_as, "database")
        assert fast["tasks"] and fast["last_event_seq"] > 0 and "events" not in fast
    assert (await status_of(failed))["error"]


# --- how long an answer lives ----------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def final(run_id: str, error: str) -> RunState:
    at = datetime.now(UTC)
    return RunState(
        run_id=run_id,
        goal=GOAL,
        template="one",
        status=RunStatus.FAILED,
        error=error,
        tasks=[TaskState(id="requirements", role="business_analyst", status=TaskStatus.FAILED)],
        events=[
            RunEvent(seq=1, type=EventType.RUN_STARTED, at=at),
            RunEvent(seq=2, type=EventType.RUN_FAILED, at=at, data={"error": error}),
        ],
    )


async def test_an_answer_is_kept_for_the_cache_time_and_dropped_when_the_run_changes(
    any_db: Database,
) -> None:
    plan = make_plan(template="sdlc", tenant="acme")
    workflow_id = workflow_id_for(plan.run_id)
    await storage.record_run_started(any_db, plan, workflow_id)
    await storage.record_run_finished(any_db, final(plan.run_id, "first"), workflow_id)
    reads: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM runs" in statement:
            reads["runs"] += 1

    event.listen(any_db.engine.sync_engine, "before_cursor_execute", count)
    clock = Clock()
    statuses = StatusCache(clock=clock)

    async def error() -> str | None:
        # No Temporal client: a closed run is answered from the database alone.
        body = await statuses.body(any_db, None, plan.run_id, "acme")
        assert body is not None
        found: str | None = json.loads(body)["error"]
        return found

    # Requests that arrive together wait for one answer: one row read, one final state read.
    answers = await asyncio.gather(*(error() for _ in range(20)))
    assert answers == ["first"] * 20 and reads["runs"] == 2

    await storage.record_run_finished(any_db, final(plan.run_id, "second"), workflow_id)
    reads.clear()
    clock.now += STATUS_CACHE_SECONDS / 2 - 0.001
    assert await error() == "first" and reads["runs"] == 0  # kept, nothing read
    clock.now += 0.001  # half its time gone: still served, the next one made meanwhile
    assert await error() == "first"

    async def second() -> bool:  # the clock stands still: made in the background
        return await error() == "second"

    await wait_until(second)
    assert reads["runs"] == 2

    await storage.record_run_finished(any_db, final(plan.run_id, "third"), workflow_id)
    statuses.forget(plan.run_id)  # a cancel, decision or reset through this process
    assert await error() == "third"

    await storage.record_run_finished(any_db, final(plan.run_id, "fourth"), workflow_id)
    clock.now += STATUS_CACHE_SECONDS  # no request for its whole time: never served again
    assert await error() == "fourth"

    # Another organization's run is missing, cached or not; so is an unknown one.
    assert await statuses.body(any_db, None, plan.run_id, "other") is None
    assert await statuses.body(any_db, None, "nope", "acme") is None


async def test_an_open_run_without_temporal_is_unavailable_and_not_kept(any_db: Database) -> None:
    plan = make_plan(template="sdlc", tenant="acme")
    await storage.record_run_started(any_db, plan, workflow_id_for(plan.run_id))
    statuses = StatusCache(clock=Clock())
    for _ in range(2):
        with pytest.raises(runs.StateUnavailable, match="Temporal cannot be reached"):
            await statuses.body(any_db, None, plan.run_id, "acme")
