"""SQLite's one-trip adapter: one visit to aiosqlite's thread per statement, and a DBAPI
cursor that SQLAlchemy cannot tell from the stock one (rows, columns, counts, ids, errors,
transactions, streamed results)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.persistence.db import Database
from core.persistence.sqlite_driver import OneTripAiosqlite, one_trip_dbapi


@contextmanager
def trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The calls queued to aiosqlite's connection threads inside the block, by name."""
    queued: list[str] = []
    stock: Callable[..., Awaitable[Any]] = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        queued.append(getattr(fn, "__name__", repr(fn)))
        return await stock(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    yield queued
    monkeypatch.undo()


async def with_table(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
        await conn.execute(text("INSERT INTO t (name) VALUES ('a'), ('b'), ('c')"))


async def test_the_database_of_a_sqlite_url_uses_the_adapter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    assert isinstance(db.engine.dialect.dbapi, OneTripAiosqlite)
    await db.ensure_schema()
    await with_table(db.engine)
    with trips(monkeypatch) as queued:
        async with db.session() as session:
            await session.execute(text("UPDATE t SET name = 'z' WHERE id = 3"))
            await session.commit()
    # The statement and the commit; no rollback as the connection goes back to the pool.
    assert queued == ["_run_statement", "commit"]
    await db.dispose()


def test_the_libraries_still_have_the_hooks_it_overrides() -> None:
    """When SQLAlchemy or aiosqlite move them, the adapter steps aside; this says so first."""
    assert one_trip_dbapi() is not None


async def test_a_statement_is_one_trip_where_the_stock_adapter_takes_four(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = {}
    for name, options in (("stock", {}), ("one trip", {"module": one_trip_dbapi()})):
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / name}.db", **options)
        await with_table(engine)
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))  # the transaction begins
            with trips(monkeypatch) as queued:
                rows = (await conn.execute(text("SELECT name FROM t ORDER BY id"))).all()
            counts[name] = len(queued)
        assert [row.name for row in rows] == ["a", "b", "c"]
        await engine.dispose()
    assert counts == {"stock": 4, "one trip": 1}


async def test_sqlalchemy_reads_the_cursor_as_it_would_the_stock_one(tmp_path: Path) -> None:
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", module=one_trip_dbapi()
    )
    await with_table(engine)
    async with engine.begin() as conn:
        result = await conn.execute(text("SELECT id, name FROM t WHERE id > :n"), {"n": 1})
        assert list(result.keys()) == ["id", "name"]
        assert [tuple(row) for row in result] == [(2, "b"), (3, "c")]

        updated = await conn.execute(text("UPDATE t SET name = name || '!' WHERE id < 3"))
        assert updated.rowcount == 2

        inserted = await conn.execute(text("INSERT INTO t (name) VALUES ('d')"))
        assert inserted.lastrowid == 4

        returned = await conn.execute(text("INSERT INTO t (name) VALUES ('e') RETURNING id"))
        assert returned.scalar_one() == 5

        many = await conn.execute(
            text("INSERT INTO t (name) VALUES (:name)"), [{"name": "f"}, {"name": "g"}]
        )
        assert many.rowcount == 2

        streamed = await conn.stream(text("SELECT name FROM t ORDER BY id"))
        assert [row.name async for row in streamed] == ["a!", "b!", "c", "d", "e", "f", "g"]
    await engine.dispose()


async def test_errors_and_rollbacks_are_sqlalchemys_own(tmp_path: Path) -> None:
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", module=one_trip_dbapi()
    )
    await with_table(engine)
    async with engine.connect() as conn:
        await conn.execute(text("INSERT INTO t (name) VALUES ('kept for now')"))
        with pytest.raises(IntegrityError, match=r"UNIQUE constraint failed: t\.name"):
            await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
        await conn.rollback()
    async with engine.connect() as conn:
        names = (await conn.execute(text("SELECT name FROM t"))).scalars().all()
    assert sorted(names) == ["a", "b", "c"]
    await engine.dispose()


async def test_a_connection_back_in_the_pool_holds_no_transaction(tmp_path: Path) -> None:
    """Without the pool's rollback on return, SQLAlchemy still ends what a session began:
    a write from another connection is seen by the next checkout (no stale WAL snapshot)."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    await with_table(db.engine)
    async with db.session() as reader:
        assert len((await reader.execute(text("SELECT * FROM t"))).all()) == 3
    async with db.engine.begin() as writer:
        await writer.execute(text("INSERT INTO t (name) VALUES ('d')"))
    async with db.session() as reader:
        assert len((await reader.execute(text("SELECT * FROM t"))).all()) == 4
    await db.dispose()
