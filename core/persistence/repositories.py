"""Repository snapshots: one repository at one commit, stored once per tenant.

A snapshot's id is its content address (tenant and commit), so storing the same commit
again, by a retry or by a second run from the same repository, finds the first row and
writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from core.contracts import RepositoryRef
from core.persistence.db import Database, RepositoryFile, RepositorySnapshot

TEXT_MODES = ("100644", "100755")
"""Regular files; links (120000) and submodules (160000) are never workspace text."""

_FILE_COLUMNS = ("snapshot_id", "path", "mode", "blob", "size", "binary", "data")
_BATCH = 500
"""Rows per INSERT: well under SQLite's and asyncpg's bound-parameter limits."""


async def store_snapshot(
    db: Database, snapshot: RepositorySnapshot, files: Sequence[RepositoryFile]
) -> RepositorySnapshot:
    """Store `snapshot` and its files unless the tenant already has that commit.

    Returns the stored row: the earlier one when it existed (its files are left as they
    are), else the new one. Concurrent stores of the same commit insert it once.
    """
    async with db.session() as session:
        existing = await _by_commit(session, snapshot.tenant, snapshot.commit)
        if existing is not None:
            return existing
        values = snapshot.model_dump()
        inserted = await session.execute(
            _insert(session, RepositorySnapshot, [values]).returning(col(RepositorySnapshot.id))
        )
        if inserted.first() is not None:  # a concurrent store did not win the race
            rows = [
                {name: getattr(file, name) for name in _FILE_COLUMNS} | {"snapshot_id": snapshot.id}
                for file in files
            ]
            for start in range(0, len(rows), _BATCH):
                await session.execute(
                    _insert(session, RepositoryFile, rows[start : start + _BATCH])
                )
        await session.commit()
        stored = await _by_commit(session, snapshot.tenant, snapshot.commit)
    if stored is None:  # pragma: no cover - the row was just written or found
        raise RuntimeError(f"snapshot {snapshot.id} vanished after storing")
    return stored


async def get_snapshot(
    db: Database, snapshot_id: str, tenant: str | None = None
) -> RepositorySnapshot | None:
    """The snapshot, or None; with `tenant`, only when it is that tenant's."""
    async with db.session() as session:
        snapshot = await session.get(RepositorySnapshot, snapshot_id)
    if snapshot is None or (tenant is not None and snapshot.tenant != tenant):
        return None
    return snapshot


def snapshot_ref(snapshot: RepositorySnapshot) -> RepositoryRef:
    """The stored snapshot as a run names it, with the ref and source of its first import."""
    return RepositoryRef(
        snapshot_id=snapshot.id,
        commit=snapshot.commit,
        ref=snapshot.ref,
        source=snapshot.source,
        test_command=snapshot.test_command,
        files=snapshot.files,
        bytes=snapshot.bytes,
        binaries=snapshot.binaries,
    )


async def snapshot_files(
    db: Database, snapshot_id: str, *, text_only: bool = False
) -> list[RepositoryFile]:
    """The snapshot's files ordered by path (code point order, the same on both databases).

    `text_only`: regular files not flagged binary, the ones a workspace gets.
    """
    query = select(RepositoryFile).where(col(RepositoryFile.snapshot_id) == snapshot_id)
    if text_only:
        query = query.where(
            col(RepositoryFile.binary).is_(False), col(RepositoryFile.mode).in_(TEXT_MODES)
        )
    async with db.session() as session:
        files = list((await session.execute(query)).scalars().all())
    return sorted(files, key=lambda file: file.path)


async def _by_commit(session: AsyncSession, tenant: str, commit: str) -> RepositorySnapshot | None:
    query = select(RepositorySnapshot).where(
        col(RepositorySnapshot.tenant) == tenant, col(RepositorySnapshot.commit) == commit
    )
    return (await session.execute(query)).scalars().first()


def _insert(session: AsyncSession, model: type[Any], rows: list[dict[str, Any]]) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING of several rows, in the session's dialect."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model).values(rows).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(model).values(rows).on_conflict_do_nothing()
    raise RuntimeError(f"unsupported database dialect {dialect!r}")  # pragma: no cover
