"""Pydantic contracts that cross process boundaries.

Workflow inputs and outputs, activity inputs and outputs, signal and update payloads: one
definition each. Workflows import only this package from `core` (plain data, no I/O), so
everything here must stay free of side effects at import. Import names from here
(`from core.contracts import RunPlan`); the submodules only group them.
"""

from core.contracts.breakdown import (
    BREAKDOWN_TAG as BREAKDOWN_TAG,
)
from core.contracts.breakdown import (
    BREAKDOWN_TOOL as BREAKDOWN_TOOL,
)
from core.contracts.breakdown import (
    DEFAULT_MAX_PACKAGES as DEFAULT_MAX_PACKAGES,
)
from core.contracts.breakdown import (
    OWNS_TAG as OWNS_TAG,
)
from core.contracts.breakdown import (
    PLAN_APPROVAL_GATE as PLAN_APPROVAL_GATE,
)
from core.contracts.breakdown import (
    WORK_PACKAGES_OUTPUT as WORK_PACKAGES_OUTPUT,
)
from core.contracts.breakdown import (
    BreakdownRequest as BreakdownRequest,
)
from core.contracts.breakdown import (
    ExpansionStatus as ExpansionStatus,
)
from core.contracts.breakdown import (
    StageExpansion as StageExpansion,
)
from core.contracts.breakdown import (
    StagePlan as StagePlan,
)
from core.contracts.breakdown import (
    WorkBreakdown as WorkBreakdown,
)
from core.contracts.breakdown import (
    WorkPackage as WorkPackage,
)
from core.contracts.breakdown import (
    breakdown_block as breakdown_block,
)
from core.contracts.breakdown import (
    owned_paths as owned_paths,
)
from core.contracts.breakdown import (
    package_description as package_description,
)
from core.contracts.calls import (
    ModelCallInput as ModelCallInput,
)
from core.contracts.calls import (
    ModelCallResult as ModelCallResult,
)
from core.contracts.calls import (
    ToolCallsInput as ToolCallsInput,
)
from core.contracts.calls import (
    ToolCallsResult as ToolCallsResult,
)
from core.contracts.calls import (
    TurnKey as TurnKey,
)
from core.contracts.changes import (
    MAX_DESCRIPTION_CHARS as MAX_DESCRIPTION_CHARS,
)
from core.contracts.changes import (
    MAX_MODEL_NAME_CHARS as MAX_MODEL_NAME_CHARS,
)
from core.contracts.changes import (
    MAX_PLAN_TASKS as MAX_PLAN_TASKS,
)
from core.contracts.changes import (
    MAX_TASK_ID_CHARS as MAX_TASK_ID_CHARS,
)
from core.contracts.changes import (
    NewTask as NewTask,
)
from core.contracts.changes import (
    TaskChanges as TaskChanges,
)
from core.contracts.changes import (
    TaskModification as TaskModification,
)
from core.contracts.changes import (
    TaskRemoval as TaskRemoval,
)
from core.contracts.gates import (
    MAX_ESCALATION_SECONDS as MAX_ESCALATION_SECONDS,
)
from core.contracts.gates import (
    AutoDecision as AutoDecision,
)
from core.contracts.gates import (
    ChecksInput as ChecksInput,
)
from core.contracts.gates import (
    ChecksReport as ChecksReport,
)
from core.contracts.gates import (
    Decision as Decision,
)
from core.contracts.gates import (
    DecisionKind as DecisionKind,
)
from core.contracts.gates import (
    EmailAddress as EmailAddress,
)
from core.contracts.gates import (
    EscalationDelay as EscalationDelay,
)
from core.contracts.gates import (
    EscalationPolicy as EscalationPolicy,
)
from core.contracts.gates import (
    Finding as Finding,
)
from core.contracts.gates import (
    GateKind as GateKind,
)
from core.contracts.gates import (
    GateVerdict as GateVerdict,
)
from core.contracts.gates import (
    Notification as Notification,
)
from core.contracts.gates import (
    NotificationChannel as NotificationChannel,
)
from core.contracts.gates import (
    OutboundUrl as OutboundUrl,
)
from core.contracts.gates import (
    PendingDecision as PendingDecision,
)
from core.contracts.gates import (
    ResolutionAction as ResolutionAction,
)
from core.contracts.gates import (
    ReviewVerdict as ReviewVerdict,
)
from core.contracts.gates import (
    Severity as Severity,
)
from core.contracts.gates import (
    StoredEscalationPolicy as StoredEscalationPolicy,
)
from core.contracts.gates import (
    TaskResolution as TaskResolution,
)
from core.contracts.gates import (
    ValidationResult as ValidationResult,
)
from core.contracts.names import (
    ANSWER_REFUSED_ERROR as ANSWER_REFUSED_ERROR,
)
from core.contracts.names import (
    BUDGET_EXCEEDED_ERROR as BUDGET_EXCEEDED_ERROR,
)
from core.contracts.names import (
    BUDGET_GATE as BUDGET_GATE,
)
from core.contracts.names import (
    CALL_MODEL as CALL_MODEL,
)
from core.contracts.names import (
    CHECKS_QUEUE as CHECKS_QUEUE,
)
from core.contracts.names import (
    DELIVER_WEBHOOKS as DELIVER_WEBHOOKS,
)
from core.contracts.names import (
    GATE_VERDICTS_METRIC as GATE_VERDICTS_METRIC,
)
from core.contracts.names import (
    NOTE_TO_ALL as NOTE_TO_ALL,
)
from core.contracts.names import (
    NOTIFY as NOTIFY,
)
from core.contracts.names import (
    RECORD_RUN_FINISHED as RECORD_RUN_FINISHED,
)
from core.contracts.names import (
    RECORD_RUN_STARTED as RECORD_RUN_STARTED,
)
from core.contracts.names import (
    RECORD_RUN_STATUS as RECORD_RUN_STATUS,
)
from core.contracts.names import (
    REVISIONS_METRIC as REVISIONS_METRIC,
)
from core.contracts.names import (
    RUN_CHECKS as RUN_CHECKS,
)
from core.contracts.names import (
    RUN_FAILED_ERROR as RUN_FAILED_ERROR,
)
from core.contracts.names import (
    RUN_TOOL_CALLS as RUN_TOOL_CALLS,
)
from core.contracts.names import (
    SEARCH_ATTRIBUTE_RUN_STATUS as SEARCH_ATTRIBUTE_RUN_STATUS,
)
from core.contracts.names import (
    SEARCH_ATTRIBUTE_TEMPLATE as SEARCH_ATTRIBUTE_TEMPLATE,
)
from core.contracts.names import (
    SEARCH_ATTRIBUTE_TENANT as SEARCH_ATTRIBUTE_TENANT,
)
from core.contracts.names import (
    SEARCH_ATTRIBUTES as SEARCH_ATTRIBUTES,
)
from core.contracts.names import (
    TASK_QUEUE as TASK_QUEUE,
)
from core.contracts.names import (
    VALIDATION_OUTPUT as VALIDATION_OUTPUT,
)
from core.contracts.names import (
    VALIDATOR_ROLE as VALIDATOR_ROLE,
)
from core.contracts.names import (
    VERDICT_OUTPUT as VERDICT_OUTPUT,
)
from core.contracts.names import (
    WEBHOOK_EVENT_TYPES_WANTED as WEBHOOK_EVENT_TYPES_WANTED,
)
from core.contracts.names import (
    agent_queue as agent_queue,
)
from core.contracts.names import (
    run_id_for as run_id_for,
)
from core.contracts.names import (
    workflow_id_for as workflow_id_for,
)
from core.contracts.notes import (
    AgentNote as AgentNote,
)
from core.contracts.notes import (
    DeliveredNote as DeliveredNote,
)
from core.contracts.notes import (
    NoteDraft as NoteDraft,
)
from core.contracts.notes import (
    NoteWait as NoteWait,
)
from core.contracts.repositories import (
    REPOSITORY_ROLE as REPOSITORY_ROLE,
)
from core.contracts.repositories import (
    REPOSITORY_TASK as REPOSITORY_TASK,
)
from core.contracts.repositories import (
    RepositoryRef as RepositoryRef,
)
from core.contracts.runs import (
    WEBHOOK_EVENT_TYPES as WEBHOOK_EVENT_TYPES,
)
from core.contracts.runs import (
    ArtifactRef as ArtifactRef,
)
from core.contracts.runs import (
    CommandRun as CommandRun,
)
from core.contracts.runs import (
    EventType as EventType,
)
from core.contracts.runs import (
    FinalizeRunInput as FinalizeRunInput,
)
from core.contracts.runs import (
    FollowUp as FollowUp,
)
from core.contracts.runs import (
    RunAddresses as RunAddresses,
)
from core.contracts.runs import (
    RunEvent as RunEvent,
)
from core.contracts.runs import (
    RunPlan as RunPlan,
)
from core.contracts.runs import (
    RunState as RunState,
)
from core.contracts.runs import (
    RunStatus as RunStatus,
)
from core.contracts.runs import (
    RunStatusChange as RunStatusChange,
)
from core.contracts.runs import (
    TaskPlan as TaskPlan,
)
from core.contracts.runs import (
    TaskState as TaskState,
)
from core.contracts.runs import (
    TaskStatus as TaskStatus,
)
from core.contracts.runs import (
    Usage as Usage,
)
from core.contracts.runs import (
    WebhookDeliveryInput as WebhookDeliveryInput,
)
