"""Run starts that arrive together share one commit; a bad row fails only its own caller."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event

from core.contracts import RunPlan
from core.persistence import storage
from core.persistence.db import Database, Run


def _plan(n: int) -> RunPlan:
    return RunPlan(run_id=f"g{n}", goal=f"Build a todo API #{n}", template="sdlc", tasks=[])


def _count_commits(db: Database) -> list[int]:
    commits: list[int] = []

    def on_commit(_connection: Any) -> None:
        commits.append(1)

    event.listen(db.engine.sync_engine, "commit", on_commit)
    return commits


async def test_run_starts_that_arrive_together_share_one_commit(any_db: Database) -> None:
    await any_db.ensure_schema()
    commits = _count_commits(any_db)
    plans = [_plan(n) for n in range(20)]
    await asyncio.gather(*(storage.record_run_started(any_db, p, f"run-{p.run_id}") for p in plans))

    assert len(commits) == 1  # the 19 that came while the first waited joined its commit
    runs = [await storage.get_run(any_db, p.run_id) for p in plans]
    assert [r.goal for r in runs if r is not None] == [p.goal for p in plans]
    # the same starts again (a retried activity, the API and the workflow both writing)
    # change nothing
    await asyncio.gather(*(storage.record_run_started(any_db, p, f"run-{p.run_id}") for p in plans))
    assert len(commits) == 2
    assert (await storage.get_run(any_db, "g7")).workflow_id == "run-g7"  # type: ignore[union-attr]


async def test_a_bad_row_fails_its_own_caller_and_the_others_are_written(
    any_db: Database,
) -> None:
    await any_db.ensure_schema()
    good = [_plan(n) for n in range(3)]
    bad: dict[str, Any] = {"id": "broken", "workflow_id": "run-broken", "goal": None}
    outcomes = await asyncio.gather(
        *(storage.record_run_started(any_db, p, f"run-{p.run_id}") for p in good),
        any_db.grouped.insert_ignore(Run, bad),  # goal is NOT NULL
        return_exceptions=True,
    )

    assert outcomes[:3] == [None, None, None]
    assert isinstance(outcomes[3], Exception) and "goal" in str(outcomes[3]).lower()
    assert all([await storage.get_run(any_db, p.run_id) for p in good])
    assert await storage.get_run(any_db, "broken") is None
    # the writer is free again: the next start is written at once
    await storage.record_run_started(any_db, _plan(9), "run-g9")
    assert await storage.get_run(any_db, "g9") is not None


@pytest.mark.parametrize("callers", [1, 5])
async def test_a_cancelled_caller_does_not_stop_the_group(any_db: Database, callers: int) -> None:
    await any_db.ensure_schema()
    plans = [_plan(n) for n in range(callers)]
    starts = [
        asyncio.ensure_future(storage.record_run_started(any_db, p, f"run-{p.run_id}"))
        for p in plans
    ]
    await asyncio.sleep(0)
    starts[0].cancel()
    await asyncio.gather(*starts, return_exceptions=True)
    await asyncio.sleep(0.2)  # the writer finishes the group it took

    written = [await storage.get_run(any_db, p.run_id) for p in plans]
    assert all(written[1:])  # the others' rows are committed whatever the first did
    await storage.record_run_started(any_db, _plan(42), "run-g42")
    assert await storage.get_run(any_db, "g42") is not None
