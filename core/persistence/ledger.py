"""The ledger of model calls, and what an agent's next turn reads of it.

Every call is one row keyed (workflow, execution, task, attempt, turn) and inserted with
ON CONFLICT DO NOTHING, so a retried activity finds its earlier row instead of counting
tokens twice. `turn_context` rebuilds a turn's conversation from the ledger alone;
`TurnContexts` keeps it per task attempt in the worker and reads only the rows added
since, so a turn costs two small queries however long the conversation is.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from core.contracts import TurnKey, Usage
from core.persistence.db import Artifact, Database, LedgerEntry, ToolResultsEntry, utcnow
from core.persistence.rows import first_of_turn, insert_ignore_returning_id


async def model_call_of_turn(db: Database, key: TurnKey) -> LedgerEntry | None:
    """The turn's ledger row; after a reset, the one of an earlier execution if need be.

    A reset replays the history before its reset point under a new execution id: a model
    call answered there comes from history, so its row carries the old execution's id.
    """
    async with db.session() as session:
        entry: LedgerEntry | None = await first_of_turn(session, LedgerEntry, key)
        if entry is not None:
            return entry
        # The newest row of the turn, whichever execution's.
        rows = await _turn_rows(session, LedgerEntry, key, key.turn, key.turn + 1)
        return rows[-1] if rows else None


async def record_model_call(
    db: Database,
    key: TurnKey,
    *,
    tenant: str,
    role: str,
    provider: str,
    model: str,
    usage: Usage,
    cost_usd: float,
    stop_reason: str,
    response_json: str,
    response_cache_hit: bool = False,
) -> LedgerEntry:
    """Insert the call's ledger row unless this turn already has one; return the stored row.

    One statement: the insert answers the new row's id (RETURNING). Only when the turn had a
    row already (a retry whose first try was recorded) is that row read back.
    """
    values: dict[str, Any] = {
        "workflow_id": key.workflow_id,
        "execution_id": key.execution_id,
        "run_id": key.run_id,
        "tenant": tenant,
        "task_id": key.task_id,
        "attempt": key.attempt,
        "turn": key.turn,
        "role": role,
        "provider": provider,
        "model": model,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_input_tokens,
        "cache_write_tokens": usage.cache_creation_input_tokens,
        "cost_usd": cost_usd,
        "response_cache_hit": response_cache_hit,
        "stop_reason": stop_reason,
        "response": response_json,
        "created_at": utcnow(),
    }
    async with db.session() as session:
        new_id = await insert_ignore_returning_id(session, LedgerEntry, values)
        await session.commit()
        if new_id is not None:
            return LedgerEntry(id=new_id, **values)
        earlier: LedgerEntry = await first_of_turn(session, LedgerEntry, key)
        return earlier


def entry_usage(entry: LedgerEntry) -> Usage:
    return Usage(
        input_tokens=entry.input_tokens,
        output_tokens=entry.output_tokens,
        cache_read_input_tokens=entry.cache_read_tokens,
        cache_creation_input_tokens=entry.cache_write_tokens,
    )


async def ledger_totals(session: AsyncSession, workflow_id: str) -> tuple[Usage, float]:
    result = await session.execute(
        sa_select(
            func.coalesce(func.sum(LedgerEntry.input_tokens), 0),
            func.coalesce(func.sum(LedgerEntry.output_tokens), 0),
            func.coalesce(func.sum(LedgerEntry.cache_read_tokens), 0),
            func.coalesce(func.sum(LedgerEntry.cache_write_tokens), 0),
            func.coalesce(func.sum(LedgerEntry.cost_usd), 0.0),
        ).where(col(LedgerEntry.workflow_id) == workflow_id)
    )
    inp, out, cache_read, cache_write, cost = result.one()
    usage = Usage(
        input_tokens=int(inp),
        output_tokens=int(out),
        cache_read_input_tokens=int(cache_read),
        cache_creation_input_tokens=int(cache_write),
    )
    return usage, float(cost)


async def ledger_entries(db: Database, workflow_id: str) -> list[LedgerEntry]:
    async with db.session() as session:
        result = await session.execute(
            select(LedgerEntry)
            .where(LedgerEntry.workflow_id == workflow_id)
            .order_by(col(LedgerEntry.id))
        )
        return list(result.scalars())


# --- a turn's conversation ----------------------------------------------------------------


@dataclass
class TurnContext:
    """Everything a model call needs from storage, read in one session."""

    recorded: LedgerEntry | None
    upstream: list[Artifact] = field(default_factory=list)
    earlier_calls: list[LedgerEntry] = field(default_factory=list)
    earlier_results: list[ToolResultsEntry] = field(default_factory=list)


async def turn_context(db: Database, key: TurnKey, upstream_ids: Sequence[int]) -> TurnContext:
    """The turn's ledger row if it already ran; else upstream files and the earlier turns,
    all read from the database (what `TurnContexts` always equals)."""
    async with db.session() as session:
        recorded = await first_of_turn(session, LedgerEntry, key)
        if recorded is not None:
            return TurnContext(recorded=recorded)
        calls = await _turn_rows(session, LedgerEntry, key, 0, key.turn)
        results = await _turn_rows(session, ToolResultsEntry, key, 0, key.turn)
        return TurnContext(
            recorded=None,
            upstream=await read_artifacts(session, upstream_ids),
            earlier_calls=_sorted(_one_per_turn(calls, key.execution_id)),
            earlier_results=_sorted(_one_per_turn(results, key.execution_id)),
        )


@dataclass
class _Conversation:
    """One task attempt's rows of the turns before `turn`, as of one execution."""

    execution_id: str
    turn: int
    upstream_ids: tuple[int, ...]
    upstream: list[Artifact]
    calls: dict[int, LedgerEntry]
    results: dict[int, ToolResultsEntry]


class TurnContexts:
    """`turn_context` kept per task attempt in the worker: a turn reads only the rows of the
    turns since the last one this worker saw (and the turn's own, to find it recorded).

    Sound because the rows of a turn before the current one never change: a turn's call
    and tool results are written (first write wins) before the workflow asks for the next
    turn, and a reset starts a new execution, which starts a new entry. A miss (a fresh
    worker, another execution, an evicted entry, different upstream files) rebuilds from
    the database, so the context is always what `turn_context` reads.
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, str, int], _Conversation] = OrderedDict()

    async def get(self, db: Database, key: TurnKey, upstream_ids: Sequence[int]) -> TurnContext:
        slot = (key.workflow_id, key.task_id, key.attempt)
        ids = tuple(upstream_ids)
        known = self._entries.get(slot)
        if known is None or known.execution_id != key.execution_id or known.turn > key.turn:
            known = _Conversation(key.execution_id, 0, (), [], {}, {})
        async with db.session() as session:
            calls = await _turn_rows(session, LedgerEntry, key, known.turn, key.turn + 1)
            recorded = next(
                (c for c in calls if c.turn == key.turn and c.execution_id == key.execution_id),
                None,
            )
            if recorded is not None:
                return TurnContext(recorded=recorded)
            results = await _turn_rows(session, ToolResultsEntry, key, known.turn, key.turn)
            upstream = known.upstream
            if ids != known.upstream_ids:
                upstream = await read_artifacts(session, ids)
        entry = _Conversation(
            key.execution_id,
            key.turn,
            ids,
            upstream,
            known.calls | _one_per_turn((c for c in calls if c.turn < key.turn), key.execution_id),
            known.results | _one_per_turn(results, key.execution_id),
        )
        self._entries[slot] = entry
        self._entries.move_to_end(slot)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return TurnContext(
            recorded=None,
            upstream=list(entry.upstream),
            earlier_calls=_sorted(entry.calls),
            earlier_results=_sorted(entry.results),
        )

    def forget(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


async def _turn_rows(
    session: AsyncSession, model: Any, key: TurnKey, since: int, until: int
) -> list[Any]:
    """Rows of the task attempt's turns `since` <= turn < `until`, every execution's, by id."""
    if since >= until:
        return []
    params = {
        "workflow_id": key.workflow_id,
        "task_id": key.task_id,
        "attempt": key.attempt,
        "since": since,
        "until": until,
    }
    result = await session.execute(_turns_query(model), params)
    return list(result.scalars())


@functools.cache
def _turns_query(model: Any) -> Any:
    """`_turn_rows`' statement, built once per model (building it cost more than running it)."""
    return (
        select(model)
        .where(
            model.workflow_id == bindparam("workflow_id"),
            model.task_id == bindparam("task_id"),
            model.attempt == bindparam("attempt"),
            model.turn >= bindparam("since"),
            model.turn < bindparam("until"),
        )
        .order_by(col(model.id))
    )


def _one_per_turn(rows: Iterable[Any], execution_id: str) -> dict[int, Any]:
    """One row per turn: this execution's wins; a turn it has no row for was answered from
    history replayed by a reset, and its row is the latest earlier execution's."""
    by_turn: dict[int, Any] = {}
    for row in rows:
        if by_turn.get(row.turn) is None or by_turn[row.turn].execution_id != execution_id:
            by_turn[row.turn] = row
    return by_turn


def _sorted(by_turn: dict[int, Any]) -> list[Any]:
    return [by_turn[turn] for turn in sorted(by_turn)]


async def read_artifacts(session: AsyncSession, ids: Sequence[int]) -> list[Artifact]:
    if not ids:
        return []
    result = await session.execute(select(Artifact).where(col(Artifact.id).in_(list(ids))))
    by_id = {a.id: a for a in result.scalars()}
    return [by_id[i] for i in ids if i in by_id]
