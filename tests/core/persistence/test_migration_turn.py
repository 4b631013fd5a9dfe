"""Processes that open a new SQLite file at once (a worker and the API started together)
bring it to head one at a time: none fails, and the schema is made once."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from core.persistence.db import Database
from core.persistence.schema import head_revision

ENSURE_SCHEMA = """
import asyncio, sys
from core.persistence.db import Database

async def main() -> None:
    db = Database(sys.argv[1])
    await db.ensure_schema()
    await db.dispose()

asyncio.run(main())
"""


async def test_processes_and_engines_opening_a_new_file_at_once_all_find_it_at_head(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'orchestrator.db'}"
    # Three other processes and four engines of this one, on a file none has opened yet.
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            ENSURE_SCHEMA,
            url,
            stderr=asyncio.subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[3],
        )
        for _ in range(3)
    ]
    databases = [Database(url) for _ in range(4)]

    outcomes = await asyncio.gather(
        *(db.ensure_schema() for db in databases), return_exceptions=True
    )
    errors = [(await p.communicate())[1].decode() for p in processes]

    assert [o for o in outcomes if o is not None] == []
    assert [p.returncode for p in processes] == [0, 0, 0], errors
    async with databases[0].session() as session:
        versions = (await session.execute(text("SELECT version_num FROM alembic_version"))).all()
    assert [v for (v,) in versions] == [head_revision()]
    for db in databases:
        await db.dispose()


async def test_a_process_waits_for_the_one_migrating_then_finds_the_file_at_head(
    tmp_path: Path,
) -> None:
    file = tmp_path / "orchestrator.db"
    url = f"sqlite+aiosqlite:///{file}"
    await (first := Database(url)).ensure_schema()
    # Another process's turn, held as `Database` takes it.
    holder = os.open(f"{file}-migrate", os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    second = Database(url)
    waiting = asyncio.ensure_future(second.ensure_schema())
    try:
        await asyncio.sleep(0.3)
        assert not waiting.done()
    finally:
        os.close(holder)
    await asyncio.wait_for(waiting, timeout=10)
    assert oct((file.parent / f"{file.name}-migrate").stat().st_mode & 0o777) == "0o600"
    for db in (first, second):
        await db.dispose()


async def test_an_in_memory_database_needs_no_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A turn taken for ":memory:" would leave ":memory:-migrate" in the working directory.
    monkeypatch.chdir(tmp_path)
    db = Database("sqlite+aiosqlite:///:memory:")
    await db.ensure_schema()
    await db.dispose()
    assert list(tmp_path.iterdir()) == []
