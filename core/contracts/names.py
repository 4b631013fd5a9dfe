"""Names every process agrees on: task queues, activity names, output keys, search attributes."""

from __future__ import annotations

TASK_QUEUE = "orchestrator"
"""Queue of `GoalWorkflow` and of the non-model activities."""


def agent_queue(role: str) -> str:
    """Model calls of one role run on their own queue so they can scale apart."""
    return f"agent.{role}"


def workflow_id_for(run_id: str) -> str:
    return f"run-{run_id}"


def run_id_for(workflow_id: str) -> str:
    """The run id of a run's workflow id (`workflow_id_for` read backwards)."""
    return workflow_id.removeprefix("run-")


CHECKS_QUEUE = "checks"
"""Queue of the sandboxed checks, so they can run on separate, locked-down workers."""


RUN_CHECKS = "run_checks"


VERDICT_OUTPUT = "review"
"""The task-outputs key under which a reviewer's submitted verdict reaches the workflow."""


VALIDATION_OUTPUT = "validation"
"""The task-outputs key under which a validator's submitted result reaches the workflow."""


VALIDATOR_ROLE = "validator"
"""The role that checks each task's work against its goal, description and role contract."""


NOTIFY = "notify"


BUDGET_GATE = "budget"
"""The `gate` of the decision a run waits for when its token budget is spent."""


NOTE_TO_ALL = "all"
"""The `to` of a note meant for every other task of the run."""


# Activity names: workflows call activities by name so they never import activity code.
CALL_MODEL = "call_model"


RUN_TOOL_CALLS = "run_tool_calls"


RECORD_RUN_STARTED = "record_run_started"


RECORD_RUN_FINISHED = "record_run_finished"


RECORD_RUN_STATUS = "record_run_status"
"""Local activity: the run's database row follows its status while it is open."""


DELIVER_WEBHOOKS = "deliver_webhooks"


WEBHOOK_EVENT_TYPES_WANTED = "webhook_event_types_wanted"
"""Local activity: the event types the tenant's active webhook subscriptions want, asked
once per run (execution); a run delivers only those, and none when there are none."""


BUDGET_EXCEEDED_ERROR = "BudgetExceeded"
"""ApplicationError type `call_model` raises, before calling the provider, when a limit is spent."""


RUN_FAILED_ERROR = "RunFailed"
"""ApplicationError type a failed run's execution ends with, after recording its final state:
`ExecutionStatus="Failed"` finds it; its state is in the database (`runs.final_state`)."""


ANSWER_REFUSED_ERROR = "AnswerRefused"
"""ApplicationError type of a refused decision or resolution update: the message says why."""


# Search attributes the Web UI and `temporal workflow list --query` filter runs by.
SEARCH_ATTRIBUTE_RUN_STATUS = "RunStatus"


SEARCH_ATTRIBUTE_TEMPLATE = "Template"


SEARCH_ATTRIBUTE_TENANT = "TenantId"


# Counters the workflow records with workflow.metric_meter(); the worker's /metrics shows them.
GATE_VERDICTS_METRIC = "orchestrator_gate_verdicts_total"


REVISIONS_METRIC = "orchestrator_revisions_total"


SEARCH_ATTRIBUTES = (
    SEARCH_ATTRIBUTE_RUN_STATUS,
    SEARCH_ATTRIBUTE_TEMPLATE,
    SEARCH_ATTRIBUTE_TENANT,
)
