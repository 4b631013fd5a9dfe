"""Pydantic contracts that cross process boundaries.

Workflow inputs and outputs, activity inputs and outputs, signal payloads: one
definition each. Workflows import only this module from `core` (plain data, no
I/O), so everything here must stay free of side effects at import.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

TASK_QUEUE = "orchestrator"
"""Queue of `GoalWorkflow` and of the non-model activities."""


def agent_queue(role: str) -> str:
    """Model calls of one role run on their own queue so they can scale apart."""
    return f"agent.{role}"


def workflow_id_for(run_id: str) -> str:
    return f"run-{run_id}"


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.SKIPPED, TaskStatus.FAILED)


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ArtifactRef(BaseModel):
    """Claim check for a stored file: the only form in which artifacts travel through history."""

    id: int
    path: str
    sha256: str
    size: int
    version: int = 1
    task_id: str = ""


class TaskPlan(BaseModel):
    """One compiled task: everything the workflow needs, nothing it has to look up."""

    id: str
    role: str
    depends_on: list[str] = Field(default_factory=list)
    gate: str | None = None
    revises: list[str] = Field(default_factory=list)
    when: str | None = None
    max_revisions: int = 2
    model: str | None = None
    max_turns: int = 12
    description: str = ""


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens
            + other.cache_creation_input_tokens,
        )

    @property
    def total(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_input_tokens
            + self.cache_creation_input_tokens
        )


class TaskState(BaseModel):
    id: str
    role: str
    status: TaskStatus = TaskStatus.PENDING
    turns: int = 0
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    model: str | None = None
    artifacts: list[ArtifactRef] = Field(default_factory=list)
    outputs: dict[str, Any] = Field(default_factory=dict)
    summary: str = ""
    error: str | None = None


class RunState(BaseModel):
    """What the `status` query answers at any moment."""

    run_id: str
    goal: str
    template: str
    status: RunStatus = RunStatus.RUNNING
    tasks: list[TaskState] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    error: str | None = None

    def task(self, task_id: str) -> TaskState:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)

    @property
    def artifacts(self) -> list[ArtifactRef]:
        return [ref for task in self.tasks for ref in task.artifacts]


class RunPlan(BaseModel):
    """A validated template bound to one goal: the input of `GoalWorkflow`."""

    run_id: str
    goal: str
    template: str
    tasks: list[TaskPlan]
    tenant: str = "default"
    model: str | None = None
    """Model for every task without its own; None means the provider's default."""
    model_call_timeout_seconds: float = 600.0
    model_heartbeat_timeout_seconds: float = 60.0
    model_max_attempts: int = 5
    history_event_limit: int | None = None
    """Continue-as-new once history reaches this many events, besides when Temporal suggests it."""
    resume: RunState | None = None
    """State carried over by continue-as-new; None when the run starts."""


class TurnKey(BaseModel):
    """Idempotency key of one model call and its tool calls: workflow, task, attempt, turn."""

    run_id: str
    workflow_id: str
    task_id: str
    attempt: int = 0
    turn: int


class ModelCallInput(BaseModel):
    key: TurnKey
    role: str
    goal: str
    description: str = ""
    model: str | None = None
    upstream: list[ArtifactRef] = Field(default_factory=list)
    tenant: str = "default"


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


class ToolCallsInput(BaseModel):
    key: TurnKey
    role: str
    model: str


class ToolCallsResult(BaseModel):
    written: list[ArtifactRef] = Field(default_factory=list)
    outputs: dict[str, Any] = Field(default_factory=dict)
    errors: int = 0


class FinalizeRunInput(BaseModel):
    state: RunState
    workflow_id: str


# Activity names: workflows call activities by name so they never import activity code.
CALL_MODEL = "call_model"
RUN_TOOL_CALLS = "run_tool_calls"
RECORD_RUN_STARTED = "record_run_started"
RECORD_RUN_FINISHED = "record_run_finished"

# Search attributes the Web UI and `temporal workflow list --query` filter runs by.
SEARCH_ATTRIBUTE_RUN_STATUS = "RunStatus"
SEARCH_ATTRIBUTE_TEMPLATE = "Template"
SEARCH_ATTRIBUTE_TENANT = "TenantId"
SEARCH_ATTRIBUTES = (
    SEARCH_ATTRIBUTE_RUN_STATUS,
    SEARCH_ATTRIBUTE_TEMPLATE,
    SEARCH_ATTRIBUTE_TENANT,
)
