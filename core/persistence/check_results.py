"""Results of the gate checks, kept per run so identical work is done once.

A check run (`activities/checks.py`) splits into units whose result depends only on what
they read: ruff on one file's content, one project's tests on the whole workspace, the
repository's test command. Each unit's result is stored under a key that hashes those
inputs (`checks/cache.py`), so a later check of the same run on the same content (the
second gate, a task's own checks followed by the gate, a retried activity) reuses it.
Rows belong to one run: runs never share results, however alike their files are.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel, col, delete, select

from core.persistence.rows import insert_ignoring

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from core.persistence.db import Database

LOOKUP_CHUNK = 500
"""Keys per SELECT ... IN (...): far below SQLite's bound-parameter limit."""


def _now() -> datetime:
    return datetime.now(UTC)


class CheckResult(SQLModel, table=True):
    """One unit of a run's checks: what it found, as JSON, under the hash of its inputs."""

    __tablename__ = "check_results"
    __table_args__ = (UniqueConstraint("run_id", "kind", "key", name="uq_check_result"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=64)
    kind: str = Field(max_length=32)
    """lint, security, bandit, tests or test-command."""
    key: str = Field(max_length=64)
    """sha256 of the unit's inputs (files, tool versions, command, limits)."""
    result: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=_now)


async def stored_results(
    db: Database, run_id: str, kind: str, keys: Collection[str]
) -> dict[str, str]:
    """The stored results among `keys` of this run's `kind`, by key."""
    wanted = sorted(set(keys))
    found: dict[str, str] = {}
    if not wanted:
        return found
    async with db.session() as session:
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[start : start + LOOKUP_CHUNK]
            rows = await session.execute(
                select(CheckResult.key, CheckResult.result).where(
                    CheckResult.run_id == run_id,
                    CheckResult.kind == kind,
                    col(CheckResult.key).in_(chunk),
                )
            )
            found.update({key: result for key, result in rows.all()})
    return found


async def store_results(db: Database, run_id: str, kind: str, results: Mapping[str, str]) -> None:
    """Keep `results` by key; a key stored before keeps its first result."""
    if not results:
        return
    rows = [
        {"run_id": run_id, "kind": kind, "key": key, "result": value, "created_at": _now()}
        for key, value in sorted(results.items())
    ]
    async with db.session() as session:
        for start in range(0, len(rows), LOOKUP_CHUNK // 5):
            await session.execute(
                insert_ignoring(session, CheckResult, rows[start : start + LOOKUP_CHUNK // 5])
            )
        await session.commit()


async def drop_results(session: AsyncSession, run_id: str) -> None:
    """Forget a finished run's results: they serve only its own later checks. A closed run
    checked again (`reset --to`) runs its checks again."""
    await session.execute(delete(CheckResult).where(col(CheckResult.run_id) == run_id))


async def count_results(db: Database, run_id: str, kind: str | None = None) -> int:
    """How many units of the run's checks are stored (of one kind): each ran its tool once."""
    async with db.session() as session:
        query = select(CheckResult.id).where(CheckResult.run_id == run_id)
        if kind is not None:
            query = query.where(CheckResult.kind == kind)
        return len((await session.execute(query)).all())
