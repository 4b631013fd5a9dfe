"""Bodies of the runs API: starting a run (or estimating one), listing, following, stopping."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.schemas.common import Accepted
from api.schemas.fields import Tokens, Usd
from api.schemas.repositories import RunRepository
from core.contracts import (
    MAX_PLAN_TASKS,
    AgentNote,
    EscalationPolicy,
    RunStatus,
    TaskState,
    Usage,
)
from core.services.estimate import Estimate, PredictedVsActual
from core.services.templates import MAX_NESTING, MAX_TEMPLATE_CHARS

# --- requests ----------------------------------------------------------------------------


class EstimateRequest(BaseModel):
    """A goal and the template to run it with: a built-in name, or a template inline."""

    model_config = ConfigDict(extra="forbid")

    goal: str = Field(
        description="What to build. At most ORCHESTRATOR_MAX_GOAL_CHARS characters "
        "(default 20000); not blank.",
        examples=["Build a bookstore inventory API"],
    )
    template: str | None = Field(
        default=None,
        max_length=200,
        description="A built-in template name (default `sdlc`). Not with `inline_template`.",
        examples=["sdlc"],
    )
    inline_template: str | dict[str, Any] | None = Field(
        default=None,
        description="A template in the Task DSL: YAML text, or the same as a JSON object. "
        "Validated like `orchestrator templates validate` (cycles, unknown roles, ...); at "
        f"most {MAX_TEMPLATE_CHARS} characters, {MAX_PLAN_TASKS} tasks and {MAX_NESTING} "
        "levels of nesting.",
    )
    model: str | None = Field(
        default=None,
        max_length=200,
        description="Model for every task without its own (default: the server's LLM_MODEL).",
    )
    validate_tasks: bool | None = Field(
        default=None,
        alias="validate",
        description="Check each task's work with the validator, rerunning failed work once "
        "(default: the template's `settings.validate`, on). `false` turns it off for this run.",
    )
    response_cache: bool | None = Field(
        default=None,
        description="Answer model requests identical to earlier ones of the organization from "
        "stored responses, at no cost (default: the template's `settings.response_cache`, on, "
        "where the server's RESPONSE_CACHE allows). `false` makes every call.",
    )

    @model_validator(mode="after")
    def _one_template(self) -> EstimateRequest:
        if self.template is not None and self.inline_template is not None:
            raise ValueError("give `template` or `inline_template`, not both")
        return self


class RunCreate(EstimateRequest):
    budget_tokens: Tokens | None = Field(
        default=None, description="This run's limit on input + output tokens."
    )
    budget_usd: Usd | None = Field(default=None, description="This run's cost limit.")
    escalation: EscalationPolicy | None = Field(
        default=None,
        description="Who is told, and what happens, when the run waits for a human decision "
        "(default: the template's `settings.escalation`, else tier 2 after 4 h and the run "
        "fails after 24 h).",
    )
    require_human: bool = Field(
        default=False,
        description="Every code_review and security_review gate waits for a human decision "
        "after its checks and reviewer pass (the server's REQUIRE_HUMAN_APPROVAL does it for "
        "every run; `false` cannot lift it).",
    )
    approve_plan: bool | None = Field(
        default=None,
        description="A person approves, edits or rejects the planner's work breakdown before "
        "the stage expands (`POST /runs/{id}/decisions/plan_approval`; default: the "
        "template stage's `approval`, off in `sdlc`).",
    )
    repository: RunRepository | None = Field(
        default=None,
        description="Start from a repository: the run changes it (default template `change`) "
        "and delivers its work as commits (`/runs/{id}/patch`, `/bundle`, `/pull-request`).",
    )


# --- responses ---------------------------------------------------------------------------


class RunLinks(BaseModel):
    """Where to follow the run (paths on this API), and its workflow in the Temporal Web UI."""

    self: str
    status: str
    events: str
    artifacts: str
    archive: str
    patch: str
    """The run's change as one patch (a change run), or all its files (a greenfield run)."""
    bundle: str
    pull_request: str
    web_ui: str


class RunAccepted(BaseModel):
    id: str
    workflow_id: str
    status: RunStatus
    links: RunLinks
    estimate: Estimate


class RunTotals(BaseModel):
    """Tokens and cost: a closed run's row holds them, an open run's ledger adds them up."""

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float


class RunRecord(BaseModel):
    """The columns of a run's row that a client sees (never its stored final state)."""

    id: str
    workflow_id: str
    goal: str
    template: str
    status: RunStatus
    error: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class RunSummary(RunRecord):
    """A run as its database row records it; totals are live from the ledger while it runs."""

    totals: RunTotals
    links: RunLinks


class RunPage(BaseModel):
    runs: list[RunSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )
    next: str | None = Field(description="The next page's path with the same filters.")


class RunProgress(BaseModel):
    """The run task by task (the workflow's `RunState` without its event log)."""

    run_id: str
    goal: str
    template: str
    status: RunStatus
    tasks: list[TaskState]
    usage: Usage
    cost_usd: float
    error: str | None
    notes: list[AgentNote] = Field(
        default_factory=list,
        description="Notes the agents posted to each other (`post_note`), oldest first.",
    )
    last_event_seq: int = Field(description="Follow `/events` after this seq for what comes next.")
    source: Literal["workflow", "database"] = Field(
        description="`workflow`: the live `status` query; `database`: the final state "
        "recorded when the run closed."
    )


class Remaining(BaseModel):
    """What the organization may still spend this calendar month (UTC); null: no limit."""

    tokens: int | None
    cost_usd: float | None
    since: datetime


class BudgetRefusal(BaseModel):
    """402: the estimate does not fit in what the organization has left this month."""

    detail: str
    remaining: Remaining
    estimate: Estimate


class CancelAccepted(Accepted):
    """The run's workflow was asked to cancel; it records itself `cancelled` when it stops."""


class RunEstimate(PredictedVsActual):
    """A closed run's predicted vs actual tokens and cost, per role and in total.

    The prediction is the estimate `POST /runs/estimate` would have answered when the run
    was created: from the organization's runs of the template completed before it.
    """
