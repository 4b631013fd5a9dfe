"""Idempotent inserts that many concurrent callers make, committed together (group commit).

Fifty clients starting runs at once each insert one `runs` row. One transaction per row makes
the writers queue: on SQLite they take turns on the file, on PostgreSQL for the pool's
connections, and each turn waits for the event loop to come round again while it serves the
other requests. Grouped, whoever arrives while a commit is under way joins the next one, so
one transaction carries every row that was waiting, and each caller returns once its row is
committed, as it would after its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from core.persistence.rows import insert_ignore

WriteSession = Callable[[], AbstractAsyncContextManager[AsyncSession]]
_Waiting = tuple[type[SQLModel], dict[str, Any], asyncio.Future[None]]


class GroupedInserts:
    """INSERT ... ON CONFLICT DO NOTHING of rows from concurrent callers, one commit for all
    the rows waiting when the last commit ended."""

    def __init__(self, write_session: WriteSession) -> None:
        self._write_session = write_session
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    async def insert_ignore(self, model: type[SQLModel], values: dict[str, Any]) -> None:
        """Returns once the row (or an earlier one with its key) is committed; raises what
        the commit raised."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((model, values, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        await done

    async def _write(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                if len(group) == 1 or not await self._settle(group, answer_failure=False):
                    # One bad row must not fail the others: each on its own, once.
                    for one in group:
                        await self._settle([one], answer_failure=True)
        finally:
            self._writer = None

    async def _settle(self, group: list[_Waiting], *, answer_failure: bool) -> bool:
        """Commit the group and answer its callers; False when the commit failed."""
        try:
            await self._commit(group)
        except Exception as exc:
            if answer_failure:
                _answer(group, exc)
            return False
        _answer(group, None)
        return True

    async def _commit(self, group: list[_Waiting]) -> None:
        # One executemany per table and set of columns (a multi-row VALUES on both dialects).
        rows: dict[tuple[type[SQLModel], tuple[str, ...]], list[dict[str, Any]]] = {}
        for model, values, _ in group:
            rows.setdefault((model, tuple(sorted(values))), []).append(values)
        async with self._write_session() as session:
            for (model, _), same_columns in rows.items():
                await insert_ignore(session, model, same_columns)
            await session.commit()


def _answer(group: list[_Waiting], failure: Exception | None) -> None:
    for _, _, done in group:
        if done.done():  # its caller was cancelled
            continue
        if failure is None:
            done.set_result(None)
        else:
            done.set_exception(failure)
