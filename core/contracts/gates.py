"""Quality gates and human decisions: findings, reports, verdicts, decisions, escalation."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.contracts.breakdown import WorkBreakdown


class GateKind(StrEnum):
    """The kinds of gate a template may put in a run; the one list every room uses."""

    CODE_REVIEW = "code_review"
    SECURITY_REVIEW = "security_review"
    HUMAN_APPROVAL = "human_approval"

    @property
    def checked(self) -> bool:
        """Whether deterministic checks run in the sandbox before the reviewer (or human)."""
        return self in (GateKind.CODE_REVIEW, GateKind.SECURITY_REVIEW)


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
    paths: list[str] = Field(default_factory=list)
    """Folders whose code is linted and tested (a task's own work); empty or `.`: the whole
    workspace. The security review always reads every file."""
    test_command: str | None = None
    """A change run's repository's own test command, run at the workspace root as well."""


class ChecksReport(BaseModel):
    gate: str
    findings: list[Finding] = Field(default_factory=list)
    tests_passed: int = 0
    tests_failed: int = 0
    network_isolated: bool = False
    notes: list[str] = Field(default_factory=list)
    """What a human should know about how the checks ran (e.g. no network isolation)."""
    seconds: float = 0.0
    """Wall clock the checks took on the worker (results reused from earlier checks of the
    run cost only their lookup)."""

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == Severity.HIGH]


class ReviewVerdict(BaseModel):
    """What a reviewer agent submits with its `submit_verdict` tool."""

    verdict: Literal["pass", "block"]
    summary: str = ""
    findings: list[Finding] = Field(default_factory=list)


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


class DecisionKind(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    REQUEST_CHANGES = "request_changes"
    EDIT = "edit"
    """The plan approval only: the decision's `breakdown` replaces the planner's."""
    RAISE = "raise"
    """Budget pause only: go on spending (with the new limits given, if any)."""
    ABORT = "abort"
    """Budget pause only: stop the run."""


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
    breakdown: WorkBreakdown | None = None
    """With `edit` on `plan_approval`: the work packages to run instead of the planner's."""


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
    depends on the deployment: `core/services/escalation.py` checks that where runs start."""

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
