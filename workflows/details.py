"""What a run says it is doing: the markdown of its Temporal User Metadata "current details".

The Web UI and `temporal workflow metadata` show it: which tasks run, which are done and,
when the run waits on a person, what it waits for, why, the options, when the next
escalation tier comes, and the exact commands that answer, in the orchestrator CLI, the
Temporal CLI and the REST API. Plain functions of the plan and the state; the workflow sets
their result with `workflow.set_current_details` whenever either changes.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from core.contracts import (
    BUDGET_GATE,
    PLAN_APPROVAL_GATE,
    PendingDecision,
    RunAddresses,
    RunPlan,
    RunState,
    RunStatus,
    TaskState,
    TaskStatus,
    workflow_id_for,
)
from workflows.expansion import plan_mermaid, plan_table
from workflows.gates import automatic_resolution, escalation_tiers

EDITED_PLACEHOLDER = {"packages": ["...the edited work packages..."]}
"""Where the answer lines of an `edit` put the edited breakdown (`WorkBreakdown` JSON)."""

_HEADLINES = {
    RunStatus.RUNNING: "Running",
    RunStatus.WAITING: "Waiting for a person",
    RunStatus.COMPLETED: "Completed",
    RunStatus.FAILED: "Failed",
    RunStatus.CANCELLED: "Cancelled",
}

_TASK_LINES = (
    (TaskStatus.WAITING, "waiting for a person"),
    (TaskStatus.DEAD_LETTERED, "dead-lettered"),
    (TaskStatus.RUNNING, "running"),
    (TaskStatus.PENDING, "to do"),
    (TaskStatus.COMPLETED, "done"),
    (TaskStatus.SKIPPED, "skipped"),
    (TaskStatus.FAILED, "failed"),
)

_CLI_VERBS = {
    "gate": {
        "approve": "approve",
        "reject": "reject",
        "request_changes": "request-changes",
        "edit": "edit-plan",
    },
    "dead_letter": {"retry": "dlq retry", "skip": "dlq skip", "abort": "dlq abort"},
}


def current_details(plan: RunPlan, state: RunState, waits: Iterable[PendingDecision]) -> str:
    """The run's progress, then one section per question it waits on a person for."""
    lines = _progress(state)
    for pending in waits:
        lines += ["", *_question(plan, pending)]
        if pending.key == PLAN_APPROVAL_GATE:
            lines += _breakdown_section(state)
    return "\n".join(lines)


def _breakdown_section(state: RunState) -> list[str]:
    """The breakdown waiting for approval, as a table and a mermaid graph."""
    waiting = [e for e in state.expansions if e.breakdown is not None]
    if not waiting or waiting[-1].breakdown is None:
        return []
    breakdown = waiting[-1].breakdown
    return [
        "",
        f"#### Work breakdown of stage `{waiting[-1].stage}`",
        *([breakdown.rationale, ""] if breakdown.rationale else []),
        plan_table(breakdown),
        "",
        "```mermaid",
        plan_mermaid(breakdown),
        "```",
    ]


def _progress(state: RunState) -> list[str]:
    ids: dict[TaskStatus, list[str]] = {}
    for task in state.tasks:
        ids.setdefault(task.status, []).append(task.id)
    done = len(ids.get(TaskStatus.COMPLETED, [])) + len(ids.get(TaskStatus.SKIPPED, []))
    lines = [f"**{_HEADLINES[state.status]}**: {done} of {len(state.tasks)} tasks done"]
    if state.error and state.status in (RunStatus.FAILED, RunStatus.CANCELLED):
        lines.append(f"Error: {state.error}")
    lines.append("")
    lines += [f"- {label}: {', '.join(ids[s])}" for s, label in _TASK_LINES if s in ids]
    for stage, members in stage_groups(state).items():
        lines.append(
            f"- stage {stage}: " + ", ".join(f"{t.id} ({t.status.value})" for t in members)
        )
    return lines


def stage_groups(state: RunState) -> dict[str, list[TaskState]]:
    """The tasks of each stage (its work packages, or its template tasks), in plan order."""
    groups: dict[str, list[TaskState]] = {}
    for task in state.tasks:
        if task.stage:
            groups.setdefault(task.stage, []).append(task)
    return groups


def _question(plan: RunPlan, pending: PendingDecision) -> list[str]:
    subject = {
        "gate": f"Gate `{pending.key}`",
        "budget": "The budget",
        "dead_letter": f"Dead-lettered task `{pending.key}`",
    }[pending.kind]
    escalation = next_escalation(plan, pending)
    when = (
        f"tier {escalation[0]} at {_timestamp(escalation[1])}: {escalation[2]}"
        if escalation
        else "none: the escalation policy has decided"
    )
    cli, temporal, rest = answer_commands(plan, pending)
    return [
        f"### {subject} waits for a decision",
        f"- reason: {pending.reason}",
        f"- options: {', '.join(f'`{o}`' for o in pending.options)}",
        f"- waiting since: {_timestamp(pending.since)}",
        f"- next escalation: {when}",
        "",
        "Answer with the orchestrator CLI:",
        _code(cli),
        "with the Temporal CLI:",
        _code(temporal),
        "or over REST (an API key of the run's organization in `ORCHESTRATOR_API_KEY`):",
        _code(rest),
    ]


def next_escalation(plan: RunPlan, pending: PendingDecision) -> tuple[int, datetime, str] | None:
    """(tier, when, what it does) of the question's next escalation tier; None after tier 3."""
    policy = plan.escalation
    for tier, after in escalation_tiers(policy):
        if tier <= pending.tier:
            continue
        if tier == 1:
            action = "notify the run's webhook"
        elif tier == 2:
            action = "notify the escalation contacts (Slack, email)"
        elif pending.kind == "budget":
            action = "the run aborts (a spent budget is never raised automatically)"
        elif pending.kind == "dead_letter":
            action = f"the policy decides {automatic_resolution(policy, pending.key).action}"
        else:
            action = f"the policy decides {policy.auto_decision.value}"
        return tier, pending.since + timedelta(seconds=after), action
    return None


def answer_commands(
    plan: RunPlan, pending: PendingDecision
) -> tuple[list[str], list[str], list[str]]:
    """The orchestrator CLI, `temporal workflow signal` and curl lines, one per option."""
    where = plan.addresses
    run_id = plan.run_id
    cli, temporal, rest = [], [], []
    payload: dict[str, Any]
    body: dict[str, Any]
    for option in pending.options:
        if pending.kind == "dead_letter":
            verb = _CLI_VERBS["dead_letter"][option]
            cli.append(f"orchestrator {verb} {run_id} {shlex.quote(pending.key)}")
            signal, payload = "resolve_task", {"task": pending.key, "action": option}
            path, body = f"/runs/{run_id}/tasks/{pending.key}/resolve", {"action": option}
        else:
            if pending.kind == "budget":
                cli.append(f"orchestrator budget {run_id} {option}")
            else:
                verb = _CLI_VERBS["gate"][option]
                target = "breakdown.json" if option == "edit" else shlex.quote(pending.key)
                cli.append(f"orchestrator {verb} {run_id} {target}")
            signal, payload = "decide", {"gate": pending.key, "decision": option}
            path, body = f"/runs/{run_id}/decisions/{pending.key}", {"decision": option}
            if option == "edit":
                payload["breakdown"] = body["breakdown"] = EDITED_PLACEHOLDER
        temporal.append(_signal_line(where, run_id, signal, payload))
        rest.append(_curl_line(where, path, body))
    if pending.key == BUDGET_GATE:
        cli.append(
            f"# raise with new limits: orchestrator budget {run_id} raise --tokens N --usd X"
        )
    return cli, temporal, rest


def _signal_line(where: RunAddresses, run_id: str, name: str, payload: dict[str, Any]) -> str:
    namespace = where.temporal_namespace
    return " ".join(
        [
            "temporal workflow signal --address",
            _argument(where.temporal, known=where.temporal_address is not None),
            *(["--namespace", shlex.quote(namespace)] if namespace != "default" else []),
            f"--workflow-id {workflow_id_for(run_id)} --name {name}",
            f"--input {shlex.quote(json.dumps(payload))}",
        ]
    )


def _curl_line(where: RunAddresses, path: str, body: dict[str, Any]) -> str:
    return " ".join(
        [
            "curl -X POST",
            _argument(where.api + path, known=where.api_url is not None),
            '-H "X-API-Key: $ORCHESTRATOR_API_KEY"',
            "-H 'Content-Type: application/json'",
            f"-d {shlex.quote(json.dumps(body))}",
        ]
    )


def _argument(value: str, *, known: bool) -> str:
    """A known value quoted as it is; a placeholder in double quotes, so the shell fills it."""
    return shlex.quote(value) if known else f'"{value}"'


def _code(lines: list[str]) -> str:
    return "\n".join(["```sh", *lines, "```"])


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
