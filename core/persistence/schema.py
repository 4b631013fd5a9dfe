"""The schema's migrations, and the turn each process takes to bring a database to head.

`Database.ensure_schema` runs `upgrade_to_head` inside `migration_turn` on first use; the
migration scripts live in `migrations/` (`make migration` writes a new one).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for an in-memory database."""
    path = url.split("///", 1)[-1].split("?", 1)[0]
    return None if not path or path == ":memory:" else Path(path)


MIGRATION_TURN_TIMEOUT_SECONDS = 60.0
MIGRATION_TURN_POLL_SECONDS = 0.02


@asynccontextmanager
async def migration_turn(url: str) -> AsyncIterator[None]:
    """Processes that open a SQLite file at once bring it to head one at a time; the others
    then find it there. (PostgreSQL's turn is an advisory lock, in `upgrade_to_head`.)

    SQLite's own locks cannot order them: its driver opens no transaction before DDL, so two
    processes on a new file both create the tables, and switching a new file to WAL while
    another connection reads it fails at once (SQLite's deadlock avoidance: no busy wait).
    So the turn is an exclusive `flock` on `<file>-migrate`, taken before any connection.
    """
    file = sqlite_file(url) if url.startswith("sqlite") else None
    if file is None:
        yield
        return
    descriptor = os.open(f"{file}-migrate", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        deadline = time.monotonic() + MIGRATION_TURN_TIMEOUT_SECONDS
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # Polled, not blocking in a thread: a cancelled start leaves no waiter behind.
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"another process held {file}-migrate for "
                        f"{MIGRATION_TURN_TIMEOUT_SECONDS:g} s"
                    ) from None
                await asyncio.sleep(MIGRATION_TURN_POLL_SECONDS)
        yield
    finally:
        os.close(descriptor)  # releases the lock


MIGRATION_LOCK = 7_433_201_873
"""PostgreSQL advisory lock key held while migrating (any constant shared by all processes)."""


def upgrade_to_head(connection: Any) -> None:
    if connection.dialect.name == "postgresql":
        # Workers and API replicas start together: one migrates while the others wait
        # here, then find the schema at head. Released with the transaction.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    if _version(connection) == head_revision():
        return  # at head: no need to load alembic and every migration script (80 ms)
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def head_revision() -> str:
    """The newest migration: revisions are their files' numbers (`make migration`)."""
    return max(p.name[:4] for p in (MIGRATIONS_DIR / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def _version(connection: Any) -> str | None:
    if not sa_inspect(connection).has_table("alembic_version"):
        return None
    version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if version is None else str(version)
