"""One agent turn: the model call's and the tool calls' inputs and results, keyed by turn."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from core.contracts.breakdown import BreakdownRequest
from core.contracts.notes import DeliveredNote, NoteDraft, NoteWait
from core.contracts.runs import ArtifactRef, CommandRun, FollowUp, Usage


class TurnKey(BaseModel):
    """Idempotency key of one model call and its tool calls: workflow, task, attempt, turn."""

    run_id: str
    workflow_id: str
    execution_id: str = ""
    """Temporal run id: a reset re-executes a task with fresh calls instead of replaying them."""
    task_id: str
    attempt: int = 0
    turn: int


class ToolCallsInput(BaseModel):
    key: TurnKey
    role: str
    """Its tools in the role registry are the only ones the calls may use."""
    model: str
    review_of: str | None = None
    """Set when the agent reviews another task's work: it may also submit a verdict."""
    recipients: list[str] = Field(default_factory=list)
    """Task ids, roles and `all`: what `post_note` may address; empty: no notes in this run."""
    command_timeout_seconds: float = 120.0
    """Wall clock of one command the agent runs in the sandbox."""
    command_seconds_left: float | None = None
    """What is left of the task's total time for commands; None: no total."""
    plans_work: bool = False
    """The task plans a stage: it may also submit a work breakdown."""


class ToolCallsResult(BaseModel):
    written: list[ArtifactRef] = Field(default_factory=list)
    outputs: dict[str, Any] = Field(default_factory=dict)
    errors: int = 0
    notes: list[NoteDraft] = Field(default_factory=list)
    """Notes the agent posted in this turn, in call order."""
    wait_for_note: NoteWait | None = None
    commands: list[CommandRun] = Field(default_factory=list)
    """Commands run in this turn, in call order."""
    tool_counts: dict[str, int] = Field(default_factory=dict)
    """Calls per tool name in this turn (refused ones included)."""


class ModelCallInput(BaseModel):
    key: TurnKey
    role: str
    goal: str
    description: str = ""
    feedback: str = ""
    """Findings or critique the agent must address in this attempt."""
    review_of: str | None = None
    """Set when the agent reviews another task's work (hierarchical supervision)."""
    model: str | None = None
    upstream: list[ArtifactRef] = Field(default_factory=list)
    tenant: str = "default"
    budget_tokens: int | None = None
    """The run's limits, checked against the ledger before the provider is called."""
    budget_usd: float | None = None
    response_cache: bool = True
    """False: this run opted out of the tenant's response cache."""
    notes: list[DeliveredNote] = Field(default_factory=list)
    """Notes other agents posted to this task, each placed at the turn it was first delivered."""
    peers: dict[str, str] = Field(default_factory=dict)
    """Tasks that may run at the same time as this one (id -> role): who to post notes to."""
    followups: list[FollowUp] = Field(default_factory=list)
    """Messages of the workflow pinned after earlier turns of this attempt, oldest first."""
    repository: str | None = None
    """A change run's repository snapshot: the agent gets its map, ranked for its task."""
    test_command: str | None = None
    """A change run's repository's own test command, which the agent is told."""
    work_breakdown: BreakdownRequest | None = None
    """Set for a stage's planning task: it may submit a work breakdown, within these limits."""
    tools: ToolCallsInput | None = None
    """How to run the answer's tool calls, in this activity right after the answer, when
    none of them is a command (one step instead of a model call and a tool step; the
    ledger keeps both idempotent). `model` is set from the answer."""


class ModelCallResult(BaseModel):
    stop_reason: str
    tool_calls: int
    usage: Usage
    cost_usd: float
    model: str
    provider: str
    text: str = ""
    replayed: bool = False
    """True when the ledger already held this turn, so no provider was called."""
    response_cache_hit: bool = False
    """Answered from the tenant's response cache: no provider call, no cost."""
    summaries: int = 0
    """Summarizer calls paid for to fit upstream artifacts (their cost is in `cost_usd`)."""
    commands: int = 0
    """Tool calls in the answer that run commands: the turn's tools then run in the sandbox,
    on the checks queue."""
    tool_results: ToolCallsResult | None = None
    """The answer's tool calls' outcome when they ran in the model-call activity; None: the
    workflow runs them (commands, or a worker that runs no tools with its model calls)."""
