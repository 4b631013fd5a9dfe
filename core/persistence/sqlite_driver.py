"""SQLite through aiosqlite with one trip to its thread per statement.

aiosqlite runs each SQLite connection on a thread of its own; every call on it is queued
to that thread and its result handed back to the event loop. SQLAlchemy's aiosqlite
adapter makes four such trips per statement (open a cursor, execute, fetch the rows,
close the cursor), and each costs a wake-up of the thread and of the loop: about half of a
small statement's time (a ledger read: 0.73 ms, 0.39 ms in one trip; `bench/sqlite_trips.py`).

`OneTripAiosqlite` is SQLAlchemy's own aiosqlite DBAPI adapter with one change: a cursor
does those four steps on the connection's thread as one function. The same sqlite3
connection makes the same calls in the same order, under the same per-connection lock;
rows, `description`, `rowcount` and `lastrowid` are read there, after the rows, and
errors come back through the adapter's own exception handling. Server-side cursors
(streamed results) are SQLAlchemy's, unchanged.

It leans on two internals, SQLAlchemy's `AsyncAdapt_dbapi_cursor` hooks and aiosqlite's
`Connection._execute`; `tests/core/persistence/test_sqlite_driver.py` fails if either
changes shape, and `one_trip_dbapi()` returns None (the stock adapter) when they are gone.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)

_Outcome = tuple[Any, list[Any] | None, int, int | None]
"""description, rows (None when the statement returns none), rowcount, lastrowid."""


def _run_statement(
    connection: sqlite3.Connection, operation: str, parameters: Any, many: bool
) -> _Outcome:
    """On the connection's thread: a cursor's whole life, start to finish."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else None
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class _Finished:
    """What SQLAlchemy reads of a DBAPI cursor after a statement, kept from its run."""

    __slots__ = ("arraysize", "description", "lastrowid", "rowcount")

    def __init__(self) -> None:
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ()

    def _make_new_cursor(self, connection: Any) -> Any:
        return _Finished()  # the sqlite3 cursor is opened (and closed) per statement

    def _aenter_cursor(self, cursor: Any) -> Any:
        return cursor

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._run(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._run(operation, seq_of_parameters, many=True)

    async def _run(self, operation: str, parameters: Any, *, many: bool) -> None:
        connection = cast(aiosqlite.Connection, self._connection)
        run = cast(Callable[..., Awaitable[_Outcome]], connection._execute)
        async with self._adapt_connection._execute_mutex:
            outcome = await run(_run_statement, connection._conn, operation, parameters, many)
        finished = cast(_Finished, self._cursor)
        finished.description, rows, finished.rowcount, finished.lastrowid = outcome
        if rows is not None:
            self._rows = collections.deque(rows)

    async def _async_soft_close(self) -> None:
        return None  # closed on the thread already, rows kept

    def close(self) -> None:
        self._rows.clear()


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor


class OneTripAiosqlite(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module SQLAlchemy's aiosqlite dialect is given (`create_async_engine(module=)`)."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        stock = super().connect(*arg, **kw)
        return OneTripConnection(self, stock._connection)


_HOOKS: Sequence[tuple[type, str]] = (
    (AsyncAdapt_aiosqlite_cursor, "_make_new_cursor"),
    (AsyncAdapt_aiosqlite_cursor, "_aenter_cursor"),
    (AsyncAdapt_aiosqlite_cursor, "_execute_async"),
    (AsyncAdapt_aiosqlite_cursor, "_executemany_async"),
    (AsyncAdapt_aiosqlite_cursor, "_async_soft_close"),
    (aiosqlite.Connection, "_execute"),
    (aiosqlite.Connection, "_conn"),
)


def one_trip_dbapi() -> OneTripAiosqlite | None:
    """The adapter, or None when a library no longer has the hooks it overrides."""
    if not all(hasattr(owner, name) for owner, name in _HOOKS):
        return None
    return OneTripAiosqlite(aiosqlite, sqlite3)
