"""Gate and escalation decisions as plain functions: what blocks, who revises, what to say."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from core.contracts import (
    BUDGET_GATE,
    VERDICT_OUTPUT,
    AutoDecision,
    ChecksReport,
    Decision,
    DecisionKind,
    Finding,
    GateVerdict,
    NotificationChannel,
    ReviewVerdict,
    Severity,
    StoredEscalationPolicy,
    TaskResolution,
)
from workflows.expansion import owns


def submitted_review(outputs: dict[str, Any]) -> ReviewVerdict | None:
    raw = outputs.get(VERDICT_OUTPUT)
    if raw is None:
        return None
    try:
        return ReviewVerdict.model_validate(raw)
    except ValidationError:
        return None


def gate_verdict(
    round_: int, report: ChecksReport | None, review: ReviewVerdict | None
) -> GateVerdict:
    """Tools first: a high-severity tool finding blocks whatever the reviewer says.

    The reviewer can add findings and block on its own; it cannot wave a tool's finding
    through. A reviewer that submitted nothing leaves the decision to the tools.
    """
    tool_findings = report.findings if report else []
    review_findings = review.findings if review else []
    notes = list(report.notes) if report else []
    if review is None:
        notes.append("the reviewer submitted no verdict; the tool checks decided")
    tools_block = any(f.severity == Severity.HIGH for f in tool_findings)
    reviewer_blocks = review is not None and review.verdict == "block"
    return GateVerdict(
        round=round_,
        passed=not (tools_block or reviewer_blocks),
        decided_by="checks"
        if tools_block
        else "reviewer"
        if reviewer_blocks
        else "checks+reviewer",
        findings=[*tool_findings, *review_findings],
        summary=review.summary if review else "",
        notes=notes,
    )


def offending_tasks(
    findings: list[Finding],
    revisable: list[str],
    files_by_task: dict[str, set[str]],
    owned_by_task: dict[str, list[str]] | None = None,
) -> list[str]:
    """The revisable tasks a blocking finding's file belongs to: the work package that owns
    it, else the task that wrote it; all of them if no file matches."""
    named = {f.file for f in findings if f.file}
    owners = [
        task
        for task, owned in (owned_by_task or {}).items()
        if task in revisable and any(owns(owned, name.lstrip("./")) for name in named)
    ]
    if owners:
        return owners
    offenders = [
        task
        for task in revisable
        if any(_same_file(path, name) for path in files_by_task.get(task, set()) for name in named)
    ]
    return offenders or list(revisable)


def _same_file(artifact_path: str, named: str) -> bool:
    # Tools report paths relative to where they ran (e.g. "app.py" from inside backend/).
    named = named.lstrip("./")
    return artifact_path == named or artifact_path.endswith("/" + named)


def render_findings(findings: list[Finding], *, heading: str) -> str:
    """Findings as an implementer reads them in the feedback of its next attempt."""
    order = {Severity.HIGH: 0, Severity.MEDIUM: 1, Severity.LOW: 2}
    lines = [heading]
    for f in sorted(findings, key=lambda f: order[f.severity]):
        where = f"{f.file}:{f.line}" if f.file and f.line else (f.file or "")
        rule = f" [{f.rule}]" if f.rule else ""
        fix = f" Suggested fix: {f.suggested_fix}" if f.suggested_fix else ""
        lines.append(f"- {f.severity.upper()} {f.source}{rule} {where}: {f.message}{fix}".rstrip())
    return "\n".join(lines)


def escalation_tiers(policy: StoredEscalationPolicy) -> list[tuple[int, float]]:
    """(tier, seconds after the wait began) in order; later tiers never come before earlier."""
    t1 = max(policy.tier1_after_seconds, 0.0)
    t2 = max(policy.tier2_after_seconds, t1)
    t3 = max(policy.tier3_after_seconds, t2)
    return [(1, t1), (2, t2), (3, t3)]


def tier_channels(
    policy: StoredEscalationPolicy, tier: int
) -> list[tuple[NotificationChannel, str]]:
    if tier == 1:
        return [(NotificationChannel.WEBHOOK, policy.webhook_url)] if policy.webhook_url else []
    if tier == 2:
        slack = policy.slack_webhook_url
        return ([(NotificationChannel.SLACK, slack)] if slack else []) + [
            (NotificationChannel.EMAIL, address) for address in policy.email_to
        ]
    return []


POLICY_BY = "policy"


def automatic_decision(policy: StoredEscalationPolicy, gate: str) -> Decision:
    kind = (
        DecisionKind.APPROVE
        if policy.auto_decision == AutoDecision.APPROVE
        else DecisionKind.REJECT
    )
    return Decision(
        gate=gate,
        decision=kind,
        by=POLICY_BY,
        comment=f"no decision in time: the escalation policy decided {policy.auto_decision.value}",
    )


def automatic_budget_decision() -> Decision:
    """Tier 3 for a spent budget always aborts: a policy never spends money on its own."""
    return Decision(
        gate=BUDGET_GATE,
        decision=DecisionKind.ABORT,
        by=POLICY_BY,
        comment="no decision in time: a spent budget is never raised automatically",
    )


def automatic_resolution(policy: StoredEscalationPolicy, task: str) -> TaskResolution:
    """Tier 3 for a dead letter: approve skips the task, reject and fail abort it."""
    action = "skip" if policy.auto_decision == AutoDecision.APPROVE else "abort"
    return TaskResolution(
        task=task,
        action=action,
        by=POLICY_BY,
        comment=f"no decision in time: the escalation policy decided {policy.auto_decision.value}",
    )
