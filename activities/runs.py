"""Activities that record a run's start, status changes and end in the database."""

from __future__ import annotations

from temporalio import activity

from core.contracts import (
    RECORD_RUN_FINISHED,
    RECORD_RUN_STARTED,
    RECORD_RUN_STATUS,
    FinalizeRunInput,
    RunPlan,
    RunStatusChange,
)
from core.persistence import storage
from core.persistence.db import Database
from core.persistence.workspace_seed import seed_workspace


class RunActivities:
    def __init__(self, db: Database) -> None:
        self.db = db

    @activity.defn(name=RECORD_RUN_STARTED)
    async def record_run_started(self, plan: RunPlan) -> None:
        """The run's row; a change run's workspace seeded from its repository, once."""
        info = activity.info()
        await storage.record_run_started(self.db, plan, info.workflow_id or "")
        if plan.repository is not None:
            await seed_workspace(
                self.db, plan.run_id, info.workflow_run_id or "", plan.repository.snapshot_id
            )

    @activity.defn(name=RECORD_RUN_FINISHED)
    async def record_run_finished(self, final: FinalizeRunInput) -> None:
        await storage.record_run_finished(self.db, final.state, final.workflow_id)

    @activity.defn(name=RECORD_RUN_STATUS)
    async def record_run_status(self, change: RunStatusChange) -> None:
        await storage.record_run_status(self.db, change.run_id, change.status.value)
