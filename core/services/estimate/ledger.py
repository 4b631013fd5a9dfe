"""What earlier runs spent, read from the ledger: one sample per (run, task, role, model)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func
from sqlalchemy import select as sa_select
from sqlmodel import col, select

from core.contracts import RunStatus
from core.persistence.db import Database, LedgerEntry, Run

HISTORY_RUNS = 50
"""How many of the tenant's latest completed runs of a template the estimate reads."""


@dataclass(frozen=True)
class TaskSample:
    """What one task of one earlier run spent, on one model."""

    workflow_id: str
    task_id: str
    role: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


async def ledger_samples(db: Database, *where: Any) -> list[TaskSample]:
    """Ledger rows summed per (run, task, role, model), filtered by `where`."""
    query = (
        sa_select(
            col(LedgerEntry.workflow_id),
            col(LedgerEntry.task_id),
            col(LedgerEntry.role),
            col(LedgerEntry.model),
            func.sum(LedgerEntry.input_tokens),
            func.sum(LedgerEntry.output_tokens),
            func.sum(LedgerEntry.cost_usd),
        )
        .join(Run, col(Run.id) == col(LedgerEntry.run_id))
        .where(*where)
        .group_by(
            col(LedgerEntry.workflow_id),
            col(LedgerEntry.task_id),
            col(LedgerEntry.role),
            col(LedgerEntry.model),
        )
        .order_by(col(LedgerEntry.workflow_id), col(LedgerEntry.task_id))
    )
    async with db.session() as session:
        rows = (await session.execute(query)).all()
    return [
        TaskSample(
            workflow_id=str(workflow_id),
            task_id=str(task_id),
            role=str(role),
            model=str(model),
            input_tokens=int(inp or 0),
            output_tokens=int(out or 0),
            cost_usd=float(cost or 0.0),
        )
        for workflow_id, task_id, role, model, inp, out, cost in rows
    ]


async def task_history(
    db: Database,
    tenant: str,
    template: str,
    *,
    runs: int = HISTORY_RUNS,
    finished_before: datetime | None = None,
) -> list[TaskSample]:
    """Per (run, task, role, model) sums of the ledger for the tenant's latest completed runs.

    Only completed runs count: a failed or cancelled run stopped early and would make
    the estimate too low. `finished_before` keeps the runs completed before that moment
    (what an estimate made then would have read).
    """
    conditions: list[ColumnElement[bool]] = [
        col(Run.tenant) == tenant,
        col(Run.template) == template,
        col(Run.status) == RunStatus.COMPLETED.value,
    ]
    if finished_before is not None:
        conditions.append(col(Run.completed_at) < finished_before)
    latest = (
        select(Run.id)
        .where(*conditions)
        .order_by(col(Run.created_at).desc())
        .limit(runs)
        .scalar_subquery()
    )
    return await ledger_samples(db, col(Run.tenant) == tenant, col(Run.id).in_(latest))
