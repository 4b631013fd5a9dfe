"""Pydantic contracts that cross process boundaries.

Workflow inputs and outputs, activity inputs and outputs, signal payloads: one
definition each. Workflows import only this module from `core` (plain data, no
I/O), so everything here must stay free of side effects at import.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    gate: str | None = None
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


# --- quality gates ------------------------------------------------------------------------

CHECKS_QUEUE = "checks"
"""Queue of the sandboxed checks, so they can run on separate, locked-down workers."""

RUN_CHECKS = "run_checks"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Finding(BaseModel):
    """One problem found by a tool or a reviewer, precise enough for an implementer to fix."""

    source: str
    """Who found it: ruff, pytest, bandit, secrets, dependencies, sandbox, or a reviewer role."""
    severity: Severity
    message: str
    file: str | None = None
    line: int | None = None
    rule: str | None = None
    suggested_fix: str | None = None


class ChecksInput(BaseModel):
    run_id: str
    gate: str
    """code_review or security_review: which checks to run on the workspace."""


class ChecksReport(BaseModel):
    gate: str
    findings: list[Finding] = Field(default_factory=list)
    tests_passed: int = 0
    tests_failed: int = 0
    network_isolated: bool = False
    notes: list[str] = Field(default_factory=list)
    """What a human should know about how the checks ran (e.g. no network isolation)."""

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == Severity.HIGH]


VERDICT_OUTPUT = "review"
"""The task-outputs key under which a reviewer's submitted verdict reaches the workflow."""


class ReviewVerdict(BaseModel):
    """What a reviewer agent submits with its `submit_verdict` tool."""

    verdict: Literal["pass", "block"]
    summary: str = ""
    findings: list[Finding] = Field(default_factory=list)


VALIDATION_OUTPUT = "validation"
"""The task-outputs key under which a validator's submitted result reaches the workflow."""

VALIDATOR_ROLE = "validator"
"""The role that checks each task's work against its goal, description and role contract."""


class ValidationResult(BaseModel):
    """What the validator agent submits with its `submit_validation` tool."""

    passed: bool
    issues: list[str] = Field(
        default_factory=list,
        description="Each problem in one sentence an implementer can act on: the file, what "
        "is missing or wrong, and what the task's description or role contract asks instead.",
    )
    summary: str = ""


class GateVerdict(BaseModel):
    """One round of a gate: the deterministic outcome of tool checks and the reviewer."""

    round: int
    passed: bool
    decided_by: str
    """checks, reviewer, `human:<name>` or `policy`."""
    findings: list[Finding] = Field(default_factory=list)
    summary: str = ""
    notes: list[str] = Field(default_factory=list)

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == Severity.HIGH]


# --- human decisions and escalation -------------------------------------------------------

NOTIFY = "notify"


class DecisionKind(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    REQUEST_CHANGES = "request_changes"
    RAISE = "raise"
    """Budget pause only: go on spending (with the new limits given, if any)."""
    ABORT = "abort"
    """Budget pause only: stop the run."""


BUDGET_GATE = "budget"
"""The `gate` of the decision a run waits for when its token budget is spent."""


class Decision(BaseModel):
    """The `decide` signal: a plain JSON object, so `temporal workflow signal` can send it."""

    gate: str
    decision: DecisionKind
    comment: str = ""
    by: str = "unknown"
    budget_tokens: int | None = Field(default=None, ge=0)
    """With `raise` on the budget gate: the run's new token limit."""
    budget_usd: float | None = Field(default=None, ge=0)
    """With `raise` on the budget gate: the run's new cost limit."""


class AutoDecision(StrEnum):
    """What tier 3 of an escalation does when nobody decided in time."""

    APPROVE = "approve"
    REJECT = "reject"
    FAIL = "fail"


class StoredEscalationPolicy(BaseModel):
    """When a run waits for a human: notify, notify wider, then decide by itself.

    This is the policy as a run's history holds it, read without the bounds of
    `EscalationPolicy`: runs started before those bounds existed must still replay."""

    tier1_after_seconds: float = 0.0
    tier2_after_seconds: float = 4 * 3600.0
    tier3_after_seconds: float = 24 * 3600.0
    auto_decision: AutoDecision = AutoDecision.FAIL
    webhook_url: str | None = None
    """Tier 1: a JSON POST of the notification."""
    slack_webhook_url: str | None = None
    """Tier 2: a Slack incoming webhook."""
    email_to: list[str] = Field(default_factory=list)
    """Tier 2: escalation contacts by email (SMTP settings from the worker's environment)."""


MAX_ESCALATION_SECONDS = 30 * 24 * 3600.0
EscalationDelay = Annotated[float, Field(ge=0, le=MAX_ESCALATION_SECONDS, allow_inf_nan=False)]
"""A tier's delay: a delay past Python's timedelta would fail the workflow on every activation."""
OutboundUrl = Annotated[str, Field(min_length=1, max_length=2048)]
EmailAddress = Annotated[str, Field(max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$")]


class EscalationPolicy(StoredEscalationPolicy):
    """What a run may ask for (`POST /runs`, `orchestrator run --escalation`).

    Strict, because a misspelt field would silently keep a default (a 24 h wait instead of
    the one asked for). Whether its URLs may be targets and its channels are configured
    depends on the deployment: `core/escalation.py` checks that where runs start."""

    model_config = ConfigDict(extra="forbid")

    tier1_after_seconds: EscalationDelay = 0.0
    tier2_after_seconds: EscalationDelay = 4 * 3600.0
    tier3_after_seconds: EscalationDelay = 24 * 3600.0
    webhook_url: OutboundUrl | None = None
    slack_webhook_url: OutboundUrl | None = None
    email_to: list[EmailAddress] = Field(default_factory=list, max_length=20)


ResolutionAction = Literal["retry", "skip", "abort"]


class TaskResolution(BaseModel):
    """The `resolve_task` signal for a dead-lettered task."""

    task: str
    action: ResolutionAction
    comment: str = ""
    by: str = "unknown"


# --- changes to a running plan (updates) ------------------------------------------------


MAX_PLAN_TASKS = 200
MAX_TASK_ID_CHARS = 80
"""Room for derived ids (`<task>.validate`) within the ledger's 100-character task column."""
"""Tasks in one run's plan, from its template and `add_task` alike: each is a coroutine of
`GoalWorkflow` and dozens of events in its history."""
MAX_DESCRIPTION_CHARS = 20_000
"""A task's description or prompt addition, which every model call of the task sends."""
MAX_MODEL_NAME_CHARS = 200
"""The width of the ledger's `model` column."""


class NewTask(BaseModel):
    """The `add_task` update."""

    id: str = Field(pattern=r"^[A-Za-z_][\w-]*$", max_length=MAX_TASK_ID_CHARS)
    role: str
    depends_on: list[str] = Field(default_factory=list, max_length=MAX_PLAN_TASKS)
    before: list[str] = Field(default_factory=list, max_length=MAX_PLAN_TASKS)
    """Pending tasks that must now wait for this one (inserts it into the DAG)."""
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    model: str | None = Field(default=None, max_length=MAX_MODEL_NAME_CHARS)
    max_turns: int = Field(default=12, ge=1, le=100)


class TaskRemoval(BaseModel):
    """The `remove_task` update."""

    task: str


class TaskModification(BaseModel):
    """The `modify_task` update: only the fields given change."""

    task: str
    role: str | None = None
    depends_on: list[str] | None = Field(default=None, max_length=MAX_PLAN_TASKS)
    model: str | None = Field(default=None, max_length=MAX_MODEL_NAME_CHARS)
    prompt_addition: str | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)


class PendingDecision(BaseModel):
    """What a run waits for; answered by the `pending_decisions` query."""

    kind: Literal["gate", "dead_letter", "budget"]
    key: str
    """The gate's task id or `budget` (answer with `decide`), or the dead-lettered task
    (answer with `resolve_task`)."""
    reason: str
    since: datetime
    tier: int = 0
    """Escalation tiers already reached."""
    options: list[str]


class NotificationChannel(StrEnum):
    WEBHOOK = "webhook"
    SLACK = "slack"
    EMAIL = "email"


class Notification(BaseModel):
    """One message to a person or system about a run that waits for a decision."""

    channel: NotificationChannel
    target: str
    """URL for webhook and Slack, address for email."""
    run_id: str
    tier: int
    subject: str
    text: str
    details: dict[str, Any] = Field(default_factory=dict)


# --- what happened in a run: server-sent events and webhooks ----------------------------


class EventType(StrEnum):
    RUN_STARTED = "run.started"
    TASK_STARTED = "task.started"
    TASK_COMPLETED = "task.completed"
    TASK_FAILED = "task.failed"
    TASK_SKIPPED = "task.skipped"
    TASK_DEAD_LETTERED = "task.dead_lettered"
    TASK_VALIDATION_FAILED = "task.validation_failed"
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


WEBHOOK_EVENT_TYPES = frozenset(
    {
        EventType.RUN_STARTED,
        EventType.TASK_COMPLETED,
        EventType.GATE_BLOCKED,
        EventType.TASK_VALIDATION_FAILED,
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


# --- notes between agents -----------------------------------------------------------------

NOTE_TO_ALL = "all"
"""The `to` of a note meant for every other task of the run."""


class NoteDraft(BaseModel):
    """What an agent's `post_note` call says; the workflow numbers and stamps it."""

    to: str
    """A task id, a role, or `all`."""
    subject: str
    text: str


class AgentNote(NoteDraft):
    """A note one agent posted to others: part of the run's state, delivered at their next turn."""

    seq: int
    from_task: str
    from_role: str
    turn: int
    """The sender's turn (0-based) whose tool calls posted it."""
    at: datetime


class DeliveredNote(BaseModel):
    """A note as one receiver gets it in a model call."""

    note: AgentNote
    turn: int
    """The receiver's turn at which it was first delivered: its conversation keeps it there."""


class NoteWait(BaseModel):
    """A `wait_for_note` call: the workflow holds the agent's next turn until a note comes."""

    sender: str | None = None
    """A task id or role the note must come from; None: anyone."""
    timeout_seconds: float


class WebhookDeliveryInput(BaseModel):
    """Input of the `deliver_webhooks` activity: one event of one run to its tenant's hooks."""

    tenant: str
    run_id: str
    event: RunEvent


class TaskState(BaseModel):
    id: str
    role: str
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
    resume: RunState | None = None
    """State carried over by continue-as-new; None when the run starts."""


class TurnKey(BaseModel):
    """Idempotency key of one model call and its tool calls: workflow, task, attempt, turn."""

    run_id: str
    workflow_id: str
    execution_id: str = ""
    """Temporal run id: a reset re-executes a task with fresh calls instead of replaying them."""
    task_id: str
    attempt: int = 0
    turn: int


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


class ToolCallsInput(BaseModel):
    key: TurnKey
    role: str
    """Its tools in the role registry are the only ones the calls may use."""
    model: str
    review_of: str | None = None
    """Set when the agent reviews another task's work: it may also submit a verdict."""
    recipients: list[str] = Field(default_factory=list)
    """Task ids, roles and `all`: what `post_note` may address; empty: no notes in this run."""


class ToolCallsResult(BaseModel):
    written: list[ArtifactRef] = Field(default_factory=list)
    outputs: dict[str, Any] = Field(default_factory=dict)
    errors: int = 0
    notes: list[NoteDraft] = Field(default_factory=list)
    """Notes the agent posted in this turn, in call order."""
    wait_for_note: NoteWait | None = None


class FinalizeRunInput(BaseModel):
    state: RunState
    workflow_id: str


# Activity names: workflows call activities by name so they never import activity code.
CALL_MODEL = "call_model"
RUN_TOOL_CALLS = "run_tool_calls"
RECORD_RUN_STARTED = "record_run_started"
RECORD_RUN_FINISHED = "record_run_finished"
DELIVER_WEBHOOKS = "deliver_webhooks"
BUDGET_EXCEEDED_ERROR = "BudgetExceeded"
"""ApplicationError type `call_model` raises, before calling the provider, when a limit is spent."""

# Search attributes the Web UI and `temporal workflow list --query` filter runs by.
SEARCH_ATTRIBUTE_RUN_STATUS = "RunStatus"
SEARCH_ATTRIBUTE_TEMPLATE = "Template"
SEARCH_ATTRIBUTE_TENANT = "TenantId"
SEARCH_ATTRIBUTES = (
    SEARCH_ATTRIBUTE_RUN_STATUS,
    SEARCH_ATTRIBUTE_TEMPLATE,
    SEARCH_ATTRIBUTE_TENANT,
)
