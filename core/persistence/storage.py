"""Reads and idempotent writes of runs, artifacts, the ledger and tool results.

Every write is keyed (run, task, attempt, turn[, path]) and inserted with
ON CONFLICT DO NOTHING, so a retried activity finds its earlier row instead of
counting tokens twice or adding an artifact version.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col, select

from core.contracts import ArtifactRef, RunPlan, RunState, TurnKey, Usage
from core.persistence.db import Artifact, Database, LedgerEntry, Run, ToolResultsEntry, utcnow


async def insert_ignore(
    session: AsyncSession, model: type[SQLModel], values: dict[str, Any]
) -> None:
    """Insert unless a row with the same unique key exists: the first write wins."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(model).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(model).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - only the two supported databases reach here
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    await session.execute(stmt)


def key_filter(model: Any, key: TurnKey) -> list[Any]:
    return [
        model.workflow_id == key.workflow_id,
        model.execution_id == key.execution_id,
        model.task_id == key.task_id,
        model.attempt == key.attempt,
        model.turn == key.turn,
    ]


# --- runs -------------------------------------------------------------------------------


async def record_run_started(db: Database, plan: RunPlan, workflow_id: str) -> None:
    async with db.session() as session:
        await insert_ignore(
            session,
            Run,
            {
                "id": plan.run_id,
                "workflow_id": workflow_id,
                "tenant": plan.tenant,
                "goal": plan.goal,
                "template": plan.template,
                "status": "running",
                "repository_snapshot": plan.repository.snapshot_id if plan.repository else None,
                "created_at": utcnow(),
                "updated_at": utcnow(),
            },
        )
        await session.commit()


async def record_run_finished(db: Database, state: RunState, workflow_id: str) -> None:
    """Write the final state; totals come from the ledger, the one source of spending."""
    async with db.session() as session:
        run = await session.get(Run, state.run_id)
        if run is None:
            run = Run(
                id=state.run_id,
                workflow_id=workflow_id,
                goal=state.goal,
                template=state.template,
            )
        usage, cost = await ledger_totals(session, workflow_id)
        run.status = state.status.value
        run.error = state.error
        run.final_state = state.model_dump_json()
        run.input_tokens = usage.input_tokens
        run.output_tokens = usage.output_tokens
        run.cache_read_tokens = usage.cache_read_input_tokens
        run.cache_write_tokens = usage.cache_creation_input_tokens
        run.cost_usd = cost
        run.updated_at = run.completed_at = utcnow()
        session.add(run)
        await session.commit()


async def record_run_status(db: Database, run_id: str, status: str) -> None:
    """An open run's status (running, or waiting on a person); idempotent.

    A closed run's row keeps the final status `record_run_finished` wrote, so a late or
    retried write can never reopen it.
    """
    async with db.session() as session:
        await session.execute(
            update(Run)
            .where(col(Run.id) == run_id, col(Run.completed_at).is_(None))
            .values(status=status, updated_at=utcnow())
        )
        await session.commit()


async def get_run(db: Database, run_id: str) -> Run | None:
    async with db.session() as session:
        return await session.get(Run, run_id)


async def list_runs(db: Database, limit: int = 20) -> list[Run]:
    async with db.session() as session:
        result = await session.execute(
            select(Run).order_by(col(Run.created_at).desc()).limit(limit)
        )
        return list(result.scalars())


# --- ledger -----------------------------------------------------------------------------


async def model_call_of_turn(db: Database, key: TurnKey) -> LedgerEntry | None:
    """The turn's ledger row; after a reset, the one of an earlier execution if need be.

    A reset replays the history before its reset point under a new execution id: a model
    call answered there comes from history, so its row carries the old execution's id.
    """
    async with db.session() as session:
        entry: LedgerEntry | None = await _first(session, LedgerEntry, key)
        if entry is not None:
            return entry
        result = await session.execute(
            select(LedgerEntry)
            .where(
                LedgerEntry.workflow_id == key.workflow_id,
                LedgerEntry.task_id == key.task_id,
                LedgerEntry.attempt == key.attempt,
                LedgerEntry.turn == key.turn,
            )
            .order_by(col(LedgerEntry.id).desc())
        )
        return result.scalars().first()


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
    """Insert the call's ledger row unless this turn already has one; return the stored row."""
    async with db.session() as session:
        await insert_ignore(
            session,
            LedgerEntry,
            {
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
            },
        )
        await session.commit()
        entry: LedgerEntry = await _first(session, LedgerEntry, key)
        return entry


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


@dataclass
class TurnContext:
    """Everything a model call needs from storage, read in one session."""

    recorded: LedgerEntry | None
    upstream: list[Artifact] = field(default_factory=list)
    earlier_calls: list[LedgerEntry] = field(default_factory=list)
    earlier_results: list[ToolResultsEntry] = field(default_factory=list)


async def turn_context(db: Database, key: TurnKey, upstream_ids: Sequence[int]) -> TurnContext:
    """The turn's ledger row if it already ran; else upstream files and the earlier turns."""
    async with db.session() as session:
        recorded = await _first(session, LedgerEntry, key)
        if recorded is not None:
            return TurnContext(recorded=recorded)
        return TurnContext(
            recorded=None,
            upstream=await _artifacts_by_id(session, upstream_ids),
            earlier_calls=await _earlier_turns(session, LedgerEntry, key),
            earlier_results=await _earlier_turns(session, ToolResultsEntry, key),
        )


async def _first(session: AsyncSession, model: Any, key: TurnKey) -> Any:
    result = await session.execute(select(model).where(*key_filter(model, key)))
    return result.scalars().first()


async def _earlier_turns(session: AsyncSession, model: Any, key: TurnKey) -> list[Any]:
    """Rows of the task attempt's earlier turns, one per turn.

    This execution's row of a turn wins; a turn it has no row for was answered from
    history replayed by a reset, and its row is the latest earlier execution's.
    """
    result = await session.execute(
        select(model)
        .where(
            model.workflow_id == key.workflow_id,
            model.task_id == key.task_id,
            model.attempt == key.attempt,
            model.turn < key.turn,
        )
        .order_by(col(model.id))
    )
    by_turn: dict[int, Any] = {}
    for row in result.scalars():
        if by_turn.get(row.turn) is None or by_turn[row.turn].execution_id != key.execution_id:
            by_turn[row.turn] = row
    return [by_turn[turn] for turn in sorted(by_turn)]


# --- artifacts (the run's workspace) ----------------------------------------------------


def artifact_ref(artifact: Artifact) -> ArtifactRef:
    assert artifact.id is not None
    return ArtifactRef(
        id=artifact.id,
        path=artifact.path,
        sha256=artifact.sha256,
        size=artifact.size,
        version=artifact.version,
        task_id=artifact.task_id,
    )


class RunWorkspace:
    """One turn's view of a run's workspace: reads see its own writes, kept until the end.

    Writes wait in memory and are stored together when the turn ends (`flush`), so no write
    transaction is open while a command runs (SQLite has one writer: a command's result is
    kept in its own transaction meanwhile). Rows are keyed by (run, task, attempt, turn,
    path), so storing the turn again after a retry finds them instead of adding versions.
    """

    def __init__(self, session: AsyncSession, key: TurnKey, *, role: str, model: str) -> None:
        self.session = session
        self.key = key
        self.role = role
        self.model = model
        self._pending: dict[str, ArtifactRef] = {}
        self._content: dict[str, str] = {}

    async def write(self, path: str, content: str) -> ArtifactRef:
        data = content.encode("utf-8")
        version = self._pending[path].version if path in self._pending else await self._next(path)
        ref = ArtifactRef(
            id=0,  # given when the turn is stored
            path=path,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            version=version,
            task_id=self.key.task_id,
        )
        self._pending[path], self._content[path] = ref, content
        return ref

    async def read(self, path: str) -> str | None:
        if path in self._content:
            return self._content[path]
        found = [a for a in await _latest(self.session, self.key.run_id, path) if a.path == path]
        return found[0].content if found else None

    async def list(self, prefix: str) -> list[tuple[str, int]]:
        sizes = {a.path: a.size for a in await _latest(self.session, self.key.run_id, prefix)}
        sizes |= {p: ref.size for p, ref in self._pending.items() if p.startswith(prefix)}
        return sorted(sizes.items())

    async def snapshot(self) -> dict[str, str]:
        """Every file as this turn sees it, its own writes included: what a command runs on."""
        stored = {a.path: a.content for a in await _latest(self.session, self.key.run_id)}
        return stored | self._content

    async def flush(self) -> dict[str, ArtifactRef]:
        """Store the turn's writes; each written path's stored reference."""
        for path, ref in self._pending.items():
            await insert_ignore(
                self.session,
                Artifact,
                {
                    "run_id": self.key.run_id,
                    "execution_id": self.key.execution_id,
                    "task_id": self.key.task_id,
                    "attempt": self.key.attempt,
                    "turn": self.key.turn,
                    "path": path,
                    "version": ref.version,
                    "sha256": ref.sha256,
                    "size": ref.size,
                    "content": self._content[path],
                    "role": self.role,
                    "model": self.model,
                    "created_at": utcnow(),
                },
            )
        stored = {}
        for path in self._pending:
            row = await self._written(path)
            if row is None:
                raise RuntimeError(f"artifact {path!r} of {self.key} was not stored")
            stored[path] = artifact_ref(row)
        self._pending, self._content = {}, {}
        return stored

    async def recorded_outcome(self) -> str | None:
        """The outcome JSON of this turn's calls if an earlier try stored them."""
        found = await self.session.execute(
            select(ToolResultsEntry.outcome).where(*key_filter(ToolResultsEntry, self.key))
        )
        return found.scalars().first()

    async def record_results(self, results_json: str, outcome_json: str | None = None) -> None:
        """The turn's tool results, for the next model call; kept from the first try."""
        await insert_ignore(
            self.session,
            ToolResultsEntry,
            {
                "workflow_id": self.key.workflow_id,
                "execution_id": self.key.execution_id,
                "task_id": self.key.task_id,
                "attempt": self.key.attempt,
                "turn": self.key.turn,
                "results": results_json,
                "outcome": outcome_json,
                "created_at": utcnow(),
            },
        )

    async def _next(self, path: str) -> int:
        """The version this turn's write of `path` gets (its own, if a try stored it)."""
        written = await self._written(path)
        if written is not None:
            return written.version
        previous = await self.session.execute(
            select(func.coalesce(func.max(Artifact.version), 0)).where(
                Artifact.run_id == self.key.run_id, Artifact.path == path
            )
        )
        return int(previous.scalar_one()) + 1

    async def _written(self, path: str) -> Artifact | None:
        result = await self.session.execute(
            select(Artifact).where(
                Artifact.run_id == self.key.run_id,
                Artifact.execution_id == self.key.execution_id,
                Artifact.task_id == self.key.task_id,
                Artifact.attempt == self.key.attempt,
                Artifact.turn == self.key.turn,
                Artifact.path == path,
            )
        )
        return result.scalars().first()


@asynccontextmanager
async def turn_workspace(
    db: Database, key: TurnKey, *, role: str, model: str
) -> AsyncIterator[RunWorkspace]:
    """A workspace for one turn's tool calls, stored when the block ends without error."""
    async with db.session() as session:
        workspace = RunWorkspace(session, key, role=role, model=model)
        yield workspace
        await workspace.flush()
        await session.commit()


async def write_artifact(
    db: Database, key: TurnKey, *, path: str, content: str, role: str, model: str
) -> ArtifactRef:
    async with turn_workspace(db, key, role=role, model=model) as workspace:
        await workspace.write(path, content)
        return (await workspace.flush())[path]


async def artifacts_by_id(db: Database, ids: Sequence[int]) -> list[Artifact]:
    async with db.session() as session:
        return await _artifacts_by_id(session, ids)


async def _artifacts_by_id(session: AsyncSession, ids: Sequence[int]) -> list[Artifact]:
    if not ids:
        return []
    result = await session.execute(select(Artifact).where(col(Artifact.id).in_(list(ids))))
    by_id = {a.id: a for a in result.scalars()}
    return [by_id[i] for i in ids if i in by_id]


async def latest_artifacts(db: Database, run_id: str, prefix: str = "") -> list[Artifact]:
    """The workspace as it stands: the newest version of every path (optionally under a folder)."""
    async with db.session() as session:
        return await _latest(session, run_id, prefix)


async def _latest(session: AsyncSession, run_id: str, prefix: str = "") -> list[Artifact]:
    newest = (
        select(Artifact.path, func.max(Artifact.version).label("version"))
        .where(Artifact.run_id == run_id)
        .group_by(col(Artifact.path))
        .subquery()
    )
    query = (
        select(Artifact)
        .join(
            newest,
            and_(col(Artifact.path) == newest.c.path, col(Artifact.version) == newest.c.version),
        )
        .where(Artifact.run_id == run_id)
        .order_by(col(Artifact.path))
    )
    if prefix:
        query = query.where(col(Artifact.path).startswith(prefix))
    result = await session.execute(query)
    return list(result.scalars())


async def all_artifact_versions(db: Database, run_id: str) -> list[Artifact]:
    async with db.session() as session:
        result = await session.execute(
            select(Artifact).where(Artifact.run_id == run_id).order_by(col(Artifact.id))
        )
        return list(result.scalars())
