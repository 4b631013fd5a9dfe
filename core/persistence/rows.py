"""Idempotent row writes every store shares: insert unless the key exists, turn-key filters."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, select

from core.contracts import TurnKey


def insert_ignoring(
    session: AsyncSession, model: type[SQLModel], values: dict[str, Any] | list[dict[str, Any]]
) -> Any:
    """The INSERT ... ON CONFLICT DO NOTHING statement of this session's dialect (one row or
    several), to run as it is or with a RETURNING clause added."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model).values(values).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(model).values(values).on_conflict_do_nothing()
    raise RuntimeError(f"unsupported database dialect {dialect!r}")  # pragma: no cover


async def insert_ignore(
    session: AsyncSession, model: type[SQLModel], values: dict[str, Any]
) -> None:
    """Insert unless a row with the same unique key exists: the first write wins."""
    await session.execute(insert_ignoring(session, model, values))


async def insert_ignore_returning_id(
    session: AsyncSession, model: Any, values: dict[str, Any]
) -> int | None:
    """`insert_ignore` in one statement that also answers the new row's id; None when a row
    with the same key was there first."""
    result = await session.execute(insert_ignoring(session, model, values).returning(model.id))
    found: int | None = result.scalar_one_or_none()
    return found


def key_filter(model: Any, key: TurnKey) -> list[Any]:
    return [
        model.workflow_id == key.workflow_id,
        model.execution_id == key.execution_id,
        model.task_id == key.task_id,
        model.attempt == key.attempt,
        model.turn == key.turn,
    ]


async def first_of_turn(session: AsyncSession, model: Any, key: TurnKey) -> Any:
    """The row of exactly this turn (this execution's), or None."""
    result = await session.execute(select(model).where(*key_filter(model, key)))
    return result.scalars().first()
