"""What one ledger read costs on SQLite: SQLAlchemy's stock aiosqlite adapter against the
one-trip adapter (`core/persistence/sqlite_driver.py`), the statement built per call
against built once (`core.persistence.rows.turn_query`), and a whole short session.

    .venv/bin/python -m bench.sqlite_trips [--statements 2000]

Prints the median wall time of each, and the trips to aiosqlite's thread per statement.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import select

from core.contracts import TurnKey
from core.persistence import db as database
from core.persistence.db import Database, LedgerEntry
from core.persistence.rows import first_of_turn

KEY = TurnKey(run_id="r", workflow_id="run-r", execution_id="e", task_id="backend", turn=0)


async def built_per_call(session: AsyncSession) -> Any:
    """The turn's row with its statement built each time, as the ledger did before."""
    where = [
        LedgerEntry.workflow_id == KEY.workflow_id,
        LedgerEntry.execution_id == KEY.execution_id,
        LedgerEntry.task_id == KEY.task_id,
        LedgerEntry.attempt == KEY.attempt,
        LedgerEntry.turn == KEY.turn,
    ]
    return (await session.execute(select(LedgerEntry).where(*where))).scalars().first()


async def median_ms(work: Callable[[], Awaitable[Any]], count: int) -> float:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await work()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def database_for(directory: Path, one_trip: bool) -> Database:
    """A database on SQLite; without `one_trip`, on SQLAlchemy's own adapter and pool."""
    ours = database._sqlite_engine_options
    if not one_trip:
        database._sqlite_engine_options = lambda url: {}
    try:
        return Database(f"sqlite+aiosqlite:///{directory / ('one' if one_trip else 'stock')}.db")
    finally:
        database._sqlite_engine_options = ours


async def measure(directory: Path, one_trip: bool, count: int) -> dict[str, float]:
    db = database_for(directory, one_trip)
    await db.ensure_schema()
    figures = {}
    async with db.session() as session:
        figures["statement built per call"] = await median_ms(
            lambda: built_per_call(session), count
        )
        figures["statement built once"] = await median_ms(
            lambda: first_of_turn(session, LedgerEntry, KEY), count
        )

    async def whole_session() -> None:
        async with db.session() as session:
            await first_of_turn(session, LedgerEntry, KEY)

    figures["a session with that one read"] = await median_ms(whole_session, count)
    figures["trips per statement"] = await trips_per_statement(db)
    await db.dispose()
    return figures


async def trips_per_statement(db: Database) -> float:
    queued = 0
    stock: Callable[..., Awaitable[Any]] = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal queued
        queued += 1
        return await stock(self, fn, *args, **kwargs)

    async with db.session() as session:
        await first_of_turn(session, LedgerEntry, KEY)  # the transaction begins
        setattr(aiosqlite.Connection, "_execute", counted)  # noqa: B010
        try:
            await first_of_turn(session, LedgerEntry, KEY)
        finally:
            setattr(aiosqlite.Connection, "_execute", stock)  # noqa: B010
    return queued


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        one_trip = await measure(Path(tmp), True, count)
        stock = await measure(Path(tmp), False, count)
    print(f"a ledger read on SQLite, median of {count} (ms; trips: to aiosqlite's thread)")
    print(f"{'':32} {'stock adapter':>14} {'one trip':>10}")
    for name in one_trip:
        print(f"{name:32} {stock[name]:>14.3f} {one_trip[name]:>10.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--statements", type=int, default=2000)
    asyncio.run(main(parser.parse_args().statements))
