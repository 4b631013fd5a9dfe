"""Idempotent row writes every store shares: insert unless the key exists; turn-key queries."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, select

from core.contracts import TurnKey

_INSERTS: dict[tuple[str, type[Any], bool], Any] = {}
"""One INSERT ... ON CONFLICT DO NOTHING per (dialect, model, returning id), built once: the
values go in as parameters, so a write builds no statement (building one, with its values,
cost more than running it)."""


def _insert_statement(session: AsyncSession, model: type[Any], returning: bool) -> Any:
    dialect = session.get_bind().dialect.name
    statement = _INSERTS.get((dialect, model, returning))
    if statement is None:
        if dialect == "postgresql":
            statement = postgresql.insert(model).on_conflict_do_nothing()
        elif dialect == "sqlite":
            statement = sqlite.insert(model).on_conflict_do_nothing()
        else:  # pragma: no cover
            raise RuntimeError(f"unsupported database dialect {dialect!r}")
        if returning:
            statement = statement.returning(model.id)
        _INSERTS[(dialect, model, returning)] = statement
    return statement


def insert_ignoring(
    session: AsyncSession, model: type[SQLModel], values: dict[str, Any] | list[dict[str, Any]]
) -> Any:
    """The INSERT ... ON CONFLICT DO NOTHING statement of this session's dialect with its
    values (one row or several), to run as it is or with a RETURNING clause added."""
    return _insert_statement(session, model, False).values(values)


async def insert_ignore(
    session: AsyncSession, model: type[SQLModel], values: dict[str, Any] | list[dict[str, Any]]
) -> None:
    """Insert unless a row with the same unique key exists: the first write wins. Several
    rows with the same columns go in one statement."""
    await session.execute(_insert_statement(session, model, False), values)


async def insert_ignore_returning_id(
    session: AsyncSession, model: Any, values: dict[str, Any]
) -> int | None:
    """`insert_ignore` in one statement that also answers the new row's id; None when a row
    with the same key was there first."""
    result = await session.execute(_insert_statement(session, model, True), values)
    found: int | None = result.scalar_one_or_none()
    return found


TURN_KEY = ("workflow_id", "execution_id", "task_id", "attempt", "turn")
"""The columns of a turn's key, each bound by its own name in `turn_query`'s statements."""


@functools.cache
def turn_query(model: Any, *also: str, column: str | None = None) -> Any:
    """SELECT the rows of one turn (this execution's), or one `column` of them, where the
    `also` columns are equal too. Built once per shape, like the inserts above; run it with
    `turn_params`."""
    selected = getattr(model, column) if column else model
    return select(selected).where(
        *(getattr(model, name) == bindparam(name) for name in (*TURN_KEY, *also))
    )


def turn_params(key: TurnKey, **also: Any) -> dict[str, Any]:
    return {name: getattr(key, name) for name in TURN_KEY} | also


async def first_of_turn(session: AsyncSession, model: Any, key: TurnKey) -> Any:
    """The row of exactly this turn (this execution's), or None."""
    result = await session.execute(turn_query(model), turn_params(key))
    return result.scalars().first()
