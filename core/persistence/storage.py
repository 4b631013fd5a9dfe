"""Reads and idempotent writes of runs, artifacts, the ledger and tool results.

Every write is keyed (run, task, attempt, turn[, path]) and inserted with
ON CONFLICT DO NOTHING, so a retried activity finds its earlier row instead of
counting tokens twice or adding an artifact version.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import and_, case, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from core.contracts import ArtifactRef, RunPlan, RunState, TurnKey
from core.persistence import check_results
from core.persistence.db import Artifact, Database, Run, ToolResultsEntry, utcnow
from core.persistence.ledger import TurnContext as TurnContext
from core.persistence.ledger import entry_usage as entry_usage
from core.persistence.ledger import ledger_entries as ledger_entries
from core.persistence.ledger import ledger_totals as ledger_totals
from core.persistence.ledger import model_call_of_turn as model_call_of_turn
from core.persistence.ledger import read_artifacts
from core.persistence.ledger import record_model_call as record_model_call
from core.persistence.ledger import turn_context as turn_context
from core.persistence.rows import insert_ignore as insert_ignore
from core.persistence.rows import insert_ignoring, turn_params, turn_query

FLUSH_ROWS = 200
"""Artifact rows per INSERT when a turn is stored (13 bound values each, far below SQLite's
limit of 32766 per statement)."""

# --- runs -------------------------------------------------------------------------------


async def record_run_started(db: Database, plan: RunPlan, workflow_id: str) -> None:
    """The run's row, unless it exists (the API and the workflow's first activity both write
    it). Starts arriving together share one commit."""
    await db.grouped.insert_ignore(
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
        await check_results.drop_results(session, state.run_id)
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
        """Store the turn's writes in one statement; each written path's stored reference.

        A path an earlier try of this turn stored keeps that row (the first write wins);
        only then are those rows read back, in one more statement.
        """
        stored: dict[str, ArtifactRef] = {}
        paths = list(self._pending)
        for start in range(0, len(paths), FLUSH_ROWS):
            rows = [self._row(path) for path in paths[start : start + FLUSH_ROWS]]
            inserted = await self.session.execute(
                insert_ignoring(self.session, Artifact, rows).returning(
                    col(Artifact.id), col(Artifact.path)
                )
            )
            for new_id, path in inserted.all():
                stored[path] = self._pending[path].model_copy(update={"id": new_id})
        missing = [path for path in paths if path not in stored]
        if missing:
            for row in await self._written(missing):
                stored[row.path] = artifact_ref(row)
        for path in paths:
            if path not in stored:
                raise RuntimeError(f"artifact {path!r} of {self.key} was not stored")
        self._pending, self._content = {}, {}
        return {path: stored[path] for path in paths}

    def _row(self, path: str) -> dict[str, Any]:
        ref = self._pending[path]
        return {
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
        }

    async def recorded_outcome(self) -> str | None:
        """The outcome JSON of this turn's calls if an earlier try stored them."""
        found = await self.session.execute(
            turn_query(ToolResultsEntry, column="outcome"), turn_params(self.key)
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
        """The version this turn's write of `path` gets: its own if a try stored it, else one
        past the newest (one statement)."""
        this_turn = and_(
            col(Artifact.execution_id) == self.key.execution_id,
            col(Artifact.task_id) == self.key.task_id,
            col(Artifact.attempt) == self.key.attempt,
            col(Artifact.turn) == self.key.turn,
        )
        newest, written = (
            await self.session.execute(
                sa_select(
                    func.max(Artifact.version), func.max(case((this_turn, Artifact.version)))
                ).where(col(Artifact.run_id) == self.key.run_id, col(Artifact.path) == path)
            )
        ).one()
        return int(written) if written is not None else int(newest or 0) + 1

    async def _written(self, paths: Sequence[str]) -> Sequence[Artifact]:
        """This turn's stored rows of `paths`."""
        result = await self.session.execute(
            select(Artifact).where(
                Artifact.run_id == self.key.run_id,
                Artifact.execution_id == self.key.execution_id,
                Artifact.task_id == self.key.task_id,
                Artifact.attempt == self.key.attempt,
                Artifact.turn == self.key.turn,
                col(Artifact.path).in_(paths),
            )
        )
        return result.scalars().all()


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
        return await read_artifacts(session, ids)


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
