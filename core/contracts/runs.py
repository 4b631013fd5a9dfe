"""A run and its tasks: the plan `GoalWorkflow` runs, the state its `status` query answers, its events."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from core.contracts.breakdown import StageExpansion, StagePlan
from core.contracts.gates import (
    EscalationPolicy,
    Finding,
    GateKind,
    GateVerdict,
    StoredEscalationPolicy,
    ValidationResult,
)
from core.contracts.notes import AgentNote
from core.contracts.repositories import RepositoryRef


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    """A gate waits for a human decision."""
    DEAD_LETTERED = "dead_lettered"
    """Its model call failed for good; the run waits for `resolve_task`."""
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.SKIPPED, TaskStatus.FAILED)


class RunStatus(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"
    """Waits for a human: a gate decision or a dead-lettered task."""
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
    gate: GateKind | None = None
    revises: list[str] = Field(default_factory=list)
    when: str | None = None
    max_revisions: int = 2
    model: str | None = None
    max_turns: int = 12
    description: str = ""
    prompt_addition: str = ""
    """Extra instructions for this task's agent, e.g. added by `modify_task`."""
    review_by: list[str] = Field(default_factory=list)
    """Roles that critique this task's work in turn before it counts as done."""
    command_timeout_seconds: float = 120.0
    """Wall clock of one command its agent runs in the sandbox."""
    command_budget_seconds: float = 900.0
    """Wall clock all of the task's commands may use together."""
    max_check_rounds: int = 2
    """Times the task's own checks may send failures back before it completes anyway."""
    require_human: bool = False
    """A checked gate: after its checks and reviewer pass, it still waits for a human
    (`--require-human`, REQUIRE_HUMAN_APPROVAL)."""
    stage: str | None = None
    """The stage of the template this task belongs to; set on a stage's fixed tasks and on
    the work packages that replaced them."""
    owns: list[str] = Field(default_factory=list)
    """A work package's files and folders: blocking findings on them come back to it."""
    skip_reason: str | None = None
    """Set where the plan is built for a gate the deployment turned off (REQUIRE_CODE_REVIEW,
    REQUIRE_SECURITY_REVIEW): the task is skipped with this as its summary."""


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


class EventType(StrEnum):
    RUN_STARTED = "run.started"
    TASK_STARTED = "task.started"
    TASK_COMPLETED = "task.completed"
    TASK_FAILED = "task.failed"
    TASK_SKIPPED = "task.skipped"
    TASK_DEAD_LETTERED = "task.dead_lettered"
    TASK_VALIDATION_FAILED = "task.validation_failed"
    TASK_CHECKS_FAILED = "task.checks_failed"
    """A task completed with its own checks still failing: its check rounds ran out."""
    COST_UPDATED = "cost.updated"
    GATE_PASSED = "gate.passed"
    GATE_BLOCKED = "gate.blocked"
    DECISION_REQUESTED = "decision.requested"
    DECISION_MADE = "decision.made"
    BUDGET_EXCEEDED = "budget.exceeded"
    RUN_COMPLETED = "run.completed"
    RUN_FAILED = "run.failed"
    RUN_CANCELLED = "run.cancelled"
    NOTE_POSTED = "note.posted"
    PLAN_REFUSED = "plan.refused"
    """A planner's work breakdown failed validation; it goes back to the planner."""
    STAGE_EXPANDED = "stage.expanded"
    """A stage became the tasks of its work breakdown."""
    STAGE_FALLBACK = "stage.fallback"
    """No valid breakdown came in time: the stage runs the template's fixed tasks."""


WEBHOOK_EVENT_TYPES = frozenset(
    {
        EventType.RUN_STARTED,
        EventType.TASK_COMPLETED,
        EventType.GATE_BLOCKED,
        EventType.TASK_VALIDATION_FAILED,
        EventType.TASK_CHECKS_FAILED,
        EventType.DECISION_REQUESTED,
        EventType.RUN_COMPLETED,
        EventType.RUN_FAILED,
        EventType.BUDGET_EXCEEDED,
    }
)
"""The events an organization can subscribe a webhook to."""


class RunEvent(BaseModel):
    """One thing that happened in a run; `seq` orders them and is the SSE event id."""

    seq: int
    type: EventType
    at: datetime
    task: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    """Event details, always with the run's totals so far (`cost_usd`, `tokens`)."""


class WebhookDeliveryInput(BaseModel):
    """Input of the `deliver_webhooks` activity: one event of one run to its tenant's hooks."""

    tenant: str
    run_id: str
    event: RunEvent
    more_events: list[RunEvent] = Field(default_factory=list)
    """Events of the same run delivered in the same activity after `event` (a batch)."""

    @property
    def events(self) -> list[RunEvent]:
        return [self.event, *self.more_events]


class FollowUp(BaseModel):
    """A message the workflow adds to an agent's conversation after one of its turns, e.g.
    the failures of the task's own checks when the agent said it was done."""

    turn: int
    """The agent's turn (0-based, this attempt) after whose answer the message stands."""
    text: str


class CommandRun(BaseModel):
    """One command an agent ran in the sandbox, as the run's status shows it."""

    turn: int
    command: str
    exit_code: int | None
    """None when a limit ended it (the time limit, memory)."""
    duration_seconds: float
    changed: list[str] = Field(default_factory=list)
    """Workspace files it created or changed, kept as new versions."""


class TaskState(BaseModel):
    id: str
    role: str
    depends_on: list[str] = Field(default_factory=list)
    """The plan's dependencies of the task, kept in step with plan changes, so a run's
    recorded state still draws its graph (empty in states recorded before they were kept)."""
    gate: GateKind | None = None
    stage: str | None = None
    """The stage that spawned the task (a work package) or whose template task it is."""
    status: TaskStatus = TaskStatus.PENDING
    attempt: int = 0
    """0 for the first run of the task, then one more per revision."""
    next_turn: int = 0
    """Turn of the current attempt to run next: a retried dead letter resumes here."""
    turns: int = 0
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    model: str | None = None
    artifacts: list[ArtifactRef] = Field(default_factory=list)
    outputs: dict[str, Any] = Field(default_factory=dict)
    summary: str = ""
    error: str | None = None
    verdicts: list[GateVerdict] = Field(default_factory=list)
    """A gate's verdicts, one per round, newest last."""
    delivered_notes: dict[int, int] = Field(default_factory=dict)
    """Note seq -> turn of the current attempt at which the agent first got it."""
    validations: list[ValidationResult] = Field(default_factory=list)
    """The validator's results on this task's work, one per round, newest last."""
    commands: list[CommandRun] = Field(default_factory=list)
    """Commands the agent ran in the sandbox (this and earlier attempts), oldest first."""
    command_seconds: float = 0.0
    """Wall clock its commands used, against the task's total."""
    check_seconds: float = 0.0
    """Wall clock of the checks run on its work: its own checks, or a gate's checks."""
    tool_counts: dict[str, int] = Field(default_factory=dict)
    """Tool calls of the agent by tool name, every attempt."""
    check_rounds: int = 0
    """Times the task's own checks sent failures back to its agent (this attempt)."""
    check_failures: list[Finding] = Field(default_factory=list)
    """Blocking findings of its own checks still open when their rounds ran out: recorded
    for the gates to judge, never hidden."""
    followups: list[FollowUp] = Field(default_factory=list)
    """Messages the workflow added to this attempt's conversation (e.g. check failures)."""


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
    events: list[RunEvent] = Field(default_factory=list)
    """Everything that happened, oldest first (the `events` query pages through it)."""
    notes: list[AgentNote] = Field(default_factory=list)
    """Notes the agents posted to each other with `post_note`, oldest first."""
    expansions: list[StageExpansion] = Field(default_factory=list)
    """What each expandable stage became: the breakdown, its approval, or the fallback."""

    def task(self, task_id: str) -> TaskState:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)

    @property
    def artifacts(self) -> list[ArtifactRef]:
        return [ref for task in self.tasks for ref in task.artifacts]


API_URL_PLACEHOLDER = "${ORCHESTRATOR_API_URL:-http://127.0.0.1:8000}"
"""The API's address in printed commands when the run does not know it (a run started from
the CLI): a shell default, `orchestrator api`'s own, that `ORCHESTRATOR_API_URL` overrides."""

TEMPORAL_ADDRESS_PLACEHOLDER = "${TEMPORAL_ADDRESS:-127.0.0.1:7233}"
"""Temporal's address in printed commands when the run does not know it (plans from before)."""


class RunAddresses(BaseModel):
    """Where people reach a run, as its starter saw them: the commands that answer its gates
    (its Web UI current details) are printed with these."""

    temporal_address: str | None = None
    temporal_namespace: str = "default"
    api_url: str | None = None
    """The REST API's base URL when the run was started over REST; else unknown."""

    @property
    def temporal(self) -> str:
        return self.temporal_address or TEMPORAL_ADDRESS_PLACEHOLDER

    @property
    def api(self) -> str:
        return (self.api_url or API_URL_PLACEHOLDER).rstrip("/")


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
    escalation: StoredEscalationPolicy = Field(default_factory=EscalationPolicy)
    budget_tokens: int | None = Field(default=None, ge=0)
    """This run's limit on input + output tokens; None: only the tenant's monthly limit."""
    budget_usd: float | None = Field(default=None, ge=0)
    """This run's cost limit; None: only the tenant's monthly limit."""
    response_cache: bool = True
    """Use the tenant's response cache (when the deployment has it on); False opts out."""
    roles: list[str] = Field(default_factory=list)
    """Known role names, so updates that add or modify tasks can be validated in the workflow."""
    history_event_limit: int | None = None
    """Continue-as-new once history reaches this many events, besides when Temporal suggests it."""
    validate_tasks: bool = True
    """Check each finished task's work with the validator role (gates and reviews excepted)."""
    max_validation_rounds: int = Field(default=1, ge=0)
    """Reruns of a task whose work failed validation; after them it completes, issues recorded."""
    validation_model: str | None = None
    """The validator's model; None: the run's model, else the provider's default."""
    stages: list[StagePlan] = Field(default_factory=list)
    """Stages a planner's work breakdown may expand (the template's `stages:`)."""
    resume: RunState | None = None
    """State carried over by continue-as-new; None when the run starts."""
    addresses: RunAddresses = Field(default_factory=RunAddresses)
    """Where people reach the run; set where it starts (`start_run`)."""
    repository: RepositoryRef | None = None
    """The repository a change run starts from; None: an empty workspace (greenfield)."""


class RunStatusChange(BaseModel):
    """Input of `record_run_status`: the status an open run's database row takes."""

    run_id: str
    status: RunStatus


class FinalizeRunInput(BaseModel):
    state: RunState
    workflow_id: str
