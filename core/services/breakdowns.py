"""A run's work breakdowns as people read them: `orchestrator plan` and `GET /runs/{id}/plan`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.contracts import ExpansionStatus, RunState, WorkBreakdown
from workflows.expansion import plan_mermaid, plan_table


class StageView(BaseModel):
    """One expandable stage of a run: its breakdown, what became of it, and how it looks."""

    stage: str
    source_task: str = Field(description="The planning task whose breakdown expands the stage.")
    status: ExpansionStatus
    rounds: int = Field(description="Breakdowns the planner submitted.")
    problems: list[str] = Field(description="Why the last breakdown was refused.")
    decided_by: str | None = Field(description="Who approved, edited or rejected it.")
    tasks: list[str] = Field(description="The tasks the stage became.")
    breakdown: WorkBreakdown | None
    table: str = Field(description="The breakdown as a markdown table ('' without one).")
    mermaid: str = Field(description="The packages and their dependencies as a mermaid graph.")


def stage_views(state: RunState) -> list[StageView]:
    return [
        StageView(
            stage=e.stage,
            source_task=e.source_task,
            status=e.status,
            rounds=e.rounds,
            problems=list(e.problems),
            decided_by=e.decided_by,
            tasks=list(e.tasks),
            breakdown=e.breakdown,
            table=plan_table(e.breakdown) if e.breakdown else "",
            mermaid=plan_mermaid(e.breakdown) if e.breakdown else "",
        )
        for e in state.expansions
    ]
