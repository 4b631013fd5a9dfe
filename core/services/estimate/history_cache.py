"""The history an API process's estimates read, kept until the tenant completes another run.

Every `POST /runs` is estimated (and budget-checked) from the tenant's latest completed
runs of the template: one aggregate over their ledger rows, most of the cost of starting a
run. It only changes when a run of that tenant and template completes, so the estimates
ask for the newest completion (one indexed lookup) at most once per `mark_ttl` seconds
(a run that just completed counts in the estimates of the starts after that) and read the
aggregate again only when it changed; concurrent starts share one lookup and one read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import bindparam, func
from sqlalchemy import select as sa_select
from sqlmodel import col

from core.contracts import RunStatus
from core.persistence.db import Database, Run
from core.services.estimate.ledger import HISTORY_RUNS, TaskSample, task_history

MARK_TTL_SECONDS = 5.0

K = TypeVar("K")
T = TypeVar("T")

_Key = tuple[str, str, int]
_Mark = tuple[int, datetime | None]
"""The tenant's completed runs of the template: how many, and the newest completion."""


class HistoryCache:
    """`task_history` per (tenant, template, runs), read again once that tenant's completed
    runs of the template changed."""

    def __init__(
        self,
        *,
        max_entries: int = 1_000,
        mark_ttl: float = MARK_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries, self.mark_ttl, self.clock = max_entries, mark_ttl, clock
        self._kept: dict[_Key, tuple[_Mark, list[TaskSample]]] = {}
        self._reads: dict[tuple[_Key, _Mark], asyncio.Task[list[TaskSample]]] = {}
        self._marks: dict[tuple[str, str], tuple[_Mark, float]] = {}
        self._lookups: dict[tuple[str, str], asyncio.Task[_Mark]] = {}

    async def samples(
        self,
        db: Database,
        tenant: str,
        template: str,
        *,
        runs: int = HISTORY_RUNS,
        mark_max_age: float | None = None,
    ) -> list[TaskSample]:
        """The history, knowing the newest completion at most `mark_max_age` seconds late
        (default `mark_ttl`; 0: asks now, as an estimate a person requested does)."""
        key = (tenant, template, runs)
        mark = await self._mark(
            db, tenant, template, self.mark_ttl if mark_max_age is None else mark_max_age
        )
        kept = self._kept.get(key)
        if kept is not None and kept[0] == mark:
            return kept[1]
        return await _shared(self._reads, (key, mark), lambda: self._read(db, key, mark))

    async def _mark(self, db: Database, tenant: str, template: str, max_age: float) -> _Mark:
        """The newest completion, looked up again once the last answer is `max_age` old."""
        known = self._marks.get((tenant, template))
        if known is not None and self.clock() - known[1] < max_age:
            return known[0]
        return await _shared(
            self._lookups, (tenant, template), lambda: self._look_up(db, tenant, template)
        )

    async def _look_up(self, db: Database, tenant: str, template: str) -> _Mark:
        asked = self.clock()
        mark = await _completed(db, tenant, template)
        _keep(self._marks, (tenant, template), (mark, asked), self.max_entries)
        return mark

    async def _read(self, db: Database, key: _Key, mark: _Mark) -> list[TaskSample]:
        tenant, template, runs = key
        samples = await task_history(db, tenant, template, runs=runs)
        _keep(self._kept, key, (mark, samples), self.max_entries)
        return samples


async def _shared(tasks: dict[K, asyncio.Task[T]], key: K, work: Callable[[], Awaitable[T]]) -> T:
    """`work` for `key`, one at a time: concurrent callers await the same task."""
    task = tasks.get(key)
    if task is None:
        task = tasks[key] = asyncio.ensure_future(work())
        task.add_done_callback(lambda _: tasks.pop(key, None))
    return await asyncio.shield(task)


def _keep(kept: dict[K, T], key: K, value: T, max_entries: int) -> None:
    if len(kept) >= max_entries:
        kept.clear()  # many tenants: start over rather than grow
    kept[key] = value


_COMPLETED = sa_select(func.count(col(Run.id)), func.max(col(Run.completed_at))).where(
    col(Run.tenant) == bindparam("tenant"),
    col(Run.template) == bindparam("template"),
    col(Run.status) == RunStatus.COMPLETED.value,
)
"""Built once: each request only binds its tenant and template."""


async def _completed(db: Database, tenant: str, template: str) -> _Mark:
    async with db.session() as session:
        result = await session.execute(_COMPLETED, {"tenant": tenant, "template": template})
        count, newest = result.one()
    return int(count or 0), newest
