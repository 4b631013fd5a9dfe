"""Reads and idempotent writes of runs, artifacts, the ledger and tool results.

Every write is keyed (run, task, attempt, turn[, path]) and inserted with
ON CONFLICT DO NOTHING, so a retried activity finds its earlier row instead of
counting tokens twice or adding an artifact version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col, select

from core.contracts import ArtifactRef, RunPlan, RunState, TurnKey, Usage
from core.db import Artifact, Database, LedgerEntry, Run, ToolResultsEntry, utcnow


def sha256_text(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


async def _insert_ignore(
    session: AsyncSession,
    model: type[SQLModel],
    values: dict[str, Any],
    keys: Sequence[str],
) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(model).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(model).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - only the two supported databases reach here
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    await session.execute(stmt)


def _key_filter(model: Any, key: TurnKey) -> list[Any]:
    return [
        model.workflow_id == key.workflow_id,
        model.task_id == key.task_id,
        model.attempt == key.attempt,
        model.turn == key.turn,
    ]


# --- runs -------------------------------------------------------------------------------


async def record_run_started(db: Database, plan: RunPlan, workflow_id: str) -> None:
    async with db.session() as session:
        await _insert_ignore(
            session,
            Run,
            {
                "id": plan.run_id,
                "workflow_id": workflow_id,
                "tenant": plan.tenant,
                "goal": plan.goal,
                "template": plan.template,
                "status": "running",
                "created_at": utcnow(),
                "updated_at": utcnow(),
            },
            ["id"],
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


async def get_model_call(db: Database, key: TurnKey) -> LedgerEntry | None:
    async with db.session() as session:
        result = await session.execute(select(LedgerEntry).where(*_key_filter(LedgerEntry, key)))
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
) -> LedgerEntry:
    """Insert the call's ledger row unless this turn already has one; return the stored row."""
    async with db.session() as session:
        await _insert_ignore(
            session,
            LedgerEntry,
            {
                "workflow_id": key.workflow_id,
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
                "stop_reason": stop_reason,
                "response": response_json,
                "created_at": utcnow(),
            },
            ["workflow_id", "task_id", "attempt", "turn"],
        )
        await session.commit()
        result = await session.execute(select(LedgerEntry).where(*_key_filter(LedgerEntry, key)))
        return result.scalars().one()


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


async def task_history(
    db: Database, key: TurnKey
) -> tuple[list[LedgerEntry], list[ToolResultsEntry]]:
    """The earlier turns of this task attempt: model responses and the tool results that followed."""
    async with db.session() as session:
        same_attempt = [
            LedgerEntry.workflow_id == key.workflow_id,
            LedgerEntry.task_id == key.task_id,
            LedgerEntry.attempt == key.attempt,
            LedgerEntry.turn < key.turn,
        ]
        calls = await session.execute(
            select(LedgerEntry).where(*same_attempt).order_by(col(LedgerEntry.turn))
        )
        results = await session.execute(
            select(ToolResultsEntry)
            .where(
                ToolResultsEntry.workflow_id == key.workflow_id,
                ToolResultsEntry.task_id == key.task_id,
                ToolResultsEntry.attempt == key.attempt,
                ToolResultsEntry.turn < key.turn,
            )
            .order_by(col(ToolResultsEntry.turn))
        )
        return list(calls.scalars()), list(results.scalars())


# --- tool results -----------------------------------------------------------------------


async def get_tool_results(db: Database, key: TurnKey) -> ToolResultsEntry | None:
    async with db.session() as session:
        result = await session.execute(
            select(ToolResultsEntry).where(*_key_filter(ToolResultsEntry, key))
        )
        return result.scalars().first()


async def record_tool_results(db: Database, key: TurnKey, results_json: str) -> None:
    async with db.session() as session:
        await _insert_ignore(
            session,
            ToolResultsEntry,
            {
                "workflow_id": key.workflow_id,
                "task_id": key.task_id,
                "attempt": key.attempt,
                "turn": key.turn,
                "results": results_json,
                "created_at": utcnow(),
            },
            ["workflow_id", "task_id", "attempt", "turn"],
        )
        await session.commit()


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


async def write_artifact(
    db: Database, key: TurnKey, *, path: str, content: str, role: str, model: str
) -> ArtifactRef:
    async with db.session() as session:
        where = [
            Artifact.run_id == key.run_id,
            Artifact.task_id == key.task_id,
            Artifact.attempt == key.attempt,
            Artifact.turn == key.turn,
            Artifact.path == path,
        ]
        existing = (await session.execute(select(Artifact).where(*where))).scalars().first()
        if existing is None:
            previous = await session.execute(
                select(func.coalesce(func.max(Artifact.version), 0)).where(
                    Artifact.run_id == key.run_id, Artifact.path == path
                )
            )
            data = content.encode("utf-8")
            await _insert_ignore(
                session,
                Artifact,
                {
                    "run_id": key.run_id,
                    "task_id": key.task_id,
                    "attempt": key.attempt,
                    "turn": key.turn,
                    "path": path,
                    "version": int(previous.scalar_one()) + 1,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "content": content,
                    "role": role,
                    "model": model,
                    "created_at": utcnow(),
                },
                ["run_id", "task_id", "attempt", "turn", "path"],
            )
            await session.commit()
            existing = (await session.execute(select(Artifact).where(*where))).scalars().one()
        return artifact_ref(existing)


async def artifacts_by_id(db: Database, ids: Sequence[int]) -> list[Artifact]:
    if not ids:
        return []
    async with db.session() as session:
        result = await session.execute(select(Artifact).where(col(Artifact.id).in_(list(ids))))
        by_id = {a.id: a for a in result.scalars()}
        return [by_id[i] for i in ids if i in by_id]


async def latest_artifacts(db: Database, run_id: str, prefix: str = "") -> list[Artifact]:
    """The workspace as it stands: the newest version of every path (optionally under a folder)."""
    async with db.session() as session:
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
                and_(
                    col(Artifact.path) == newest.c.path, col(Artifact.version) == newest.c.version
                ),
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
