"""A run's work breakdowns: what each stage's planner proposed and what became of it.

A person approves, edits or rejects a waiting breakdown with `POST
/runs/{run_id}/decisions/plan_approval` (decisions.py); this router only shows them.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from api.deps import DatabaseDep, OptionalTemporalDep
from api.ownership import RUN_NOT_FOUND, OwnedRunDep
from core.services import runs
from core.services.breakdowns import StageView, stage_views

router = APIRouter(tags=["runs"])


@router.get(
    "/runs/{run_id}/plan",
    responses={
        **RUN_NOT_FOUND,
        503: {"description": "The run is open and Temporal does not answer."},
    },
)
async def run_plan(
    run: OwnedRunDep, db: DatabaseDep, temporal: OptionalTemporalDep
) -> list[StageView]:
    """Each stage a planner expands: its work breakdown (packages with role, dependencies,
    acceptance criteria and owned paths), its status (`planning`, `awaiting_approval`,
    `expanded`, `fallback`, `rejected`), the refused breakdowns' problems, the tasks it
    became, and the breakdown as a markdown table and a mermaid graph. Empty for a run
    whose template expands no stage."""
    try:
        view = await runs.load_state(db, temporal, run)
    except runs.StateUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    return stage_views(view.state)
