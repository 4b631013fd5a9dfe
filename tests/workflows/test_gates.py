"""The gate and plan-change decisions, as plain functions."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.contracts import (
    MAX_DESCRIPTION_CHARS,
    MAX_PLAN_TASKS,
    AutoDecision,
    ChecksReport,
    DecisionKind,
    EscalationPolicy,
    Finding,
    NewTask,
    NotificationChannel,
    ReviewVerdict,
    Severity,
    TaskModification,
    TaskPlan,
    TaskRemoval,
    TaskStatus,
)
from workflows import changes
from workflows.gates import (
    automatic_decision,
    automatic_resolution,
    escalation_tiers,
    gate_verdict,
    offending_tasks,
    render_findings,
    tier_channels,
)

HIGH_TOOL = Finding(
    source="bandit",
    severity=Severity.HIGH,
    message="shell=True",
    file="backend/app.py",
    line=7,
    rule="B602",
)
LOW_TOOL = Finding(source="ruff", severity=Severity.LOW, message="unused import", file="app.js")


def test_a_high_tool_finding_blocks_whatever_the_reviewer_says() -> None:
    report = ChecksReport(gate="security_review", findings=[HIGH_TOOL])
    verdict = gate_verdict(1, report, ReviewVerdict(verdict="pass", summary="looks fine"))
    assert not verdict.passed and verdict.decided_by == "checks"
    assert verdict.blocking == [HIGH_TOOL]


def test_the_reviewer_can_block_on_its_own_findings() -> None:
    extra = Finding(source="code_reviewer", severity=Severity.MEDIUM, message="no pagination")
    verdict = gate_verdict(
        2,
        ChecksReport(gate="code_review", findings=[LOW_TOOL]),
        ReviewVerdict(verdict="block", findings=[extra]),
    )
    assert not verdict.passed and verdict.decided_by == "reviewer"
    assert verdict.findings == [LOW_TOOL, extra]


def test_low_findings_and_a_silent_reviewer_pass_with_a_note() -> None:
    verdict = gate_verdict(1, ChecksReport(gate="code_review", findings=[LOW_TOOL]), None)
    assert verdict.passed
    assert verdict.notes == ["the reviewer submitted no verdict; the tool checks decided"]


def test_offending_tasks_are_the_writers_of_named_files() -> None:
    files = {
        "backend": {"backend/app.py"},
        "frontend": {"frontend/app.js"},
        "database": {"db/schema.sql"},
    }
    revisable = ["database", "backend", "frontend"]
    assert offending_tasks([HIGH_TOOL], revisable, files) == ["backend"]
    # tools that ran inside a folder report paths relative to it
    relative = HIGH_TOOL.model_copy(update={"file": "app.py"})
    assert offending_tasks([relative], revisable, files) == ["backend"]
    unnamed = Finding(source="pytest", severity=Severity.HIGH, message="collection failed")
    assert offending_tasks([unnamed], revisable, files) == revisable


def test_findings_render_high_first_with_place_and_fix() -> None:
    fixed = HIGH_TOOL.model_copy(update={"suggested_fix": "pass a list, shell=False"})
    text = render_findings([LOW_TOOL, fixed], heading="Blocked:")
    assert text.splitlines() == [
        "Blocked:",
        "- HIGH bandit [B602] backend/app.py:7: shell=True Suggested fix: pass a list, shell=False",
        "- LOW ruff app.js: unused import",
    ]


def test_escalation_tiers_never_go_backwards() -> None:
    policy = EscalationPolicy(
        tier1_after_seconds=600, tier2_after_seconds=60, tier3_after_seconds=7200
    )
    assert escalation_tiers(policy) == [(1, 600), (2, 600), (3, 7200)]


def test_tier_channels() -> None:
    policy = EscalationPolicy(
        webhook_url="http://h/1", slack_webhook_url="http://s/2", email_to=["a@x", "b@x"]
    )
    assert tier_channels(policy, 1) == [(NotificationChannel.WEBHOOK, "http://h/1")]
    assert tier_channels(policy, 2) == [
        (NotificationChannel.SLACK, "http://s/2"),
        (NotificationChannel.EMAIL, "a@x"),
        (NotificationChannel.EMAIL, "b@x"),
    ]
    assert tier_channels(EscalationPolicy(), 1) == []


def test_automatic_answers_follow_the_policy() -> None:
    approve = EscalationPolicy(auto_decision=AutoDecision.APPROVE)
    fail = EscalationPolicy(auto_decision=AutoDecision.FAIL)
    assert automatic_decision(approve, "g").decision == DecisionKind.APPROVE
    assert automatic_decision(fail, "g").decision == DecisionKind.REJECT
    assert automatic_resolution(approve, "t").action == "skip"
    assert automatic_resolution(fail, "t").action == "abort"


PLAN = [
    TaskPlan(id="a", role="tech_lead"),
    TaskPlan(id="b", role="tech_lead", depends_on=["a"]),
    TaskPlan(id="c", role="tech_lead", depends_on=["b"]),
]
STATUSES = {"a": TaskStatus.COMPLETED, "b": TaskStatus.PENDING, "c": TaskStatus.PENDING}
ROLES = ["tech_lead", "ux_engineer"]


def test_adding_inserts_into_the_dag() -> None:
    new = NewTask(id="x", role="ux_engineer", depends_on=["a"], before=["c"])
    assert changes.check_add(PLAN, STATUSES, ROLES, new) == []
    added = changes.apply_add(PLAN, new)
    assert [t.depends_on for t in added] == [[], ["a"], ["b", "x"], ["a"]]


def test_adding_refuses_cycles_unknowns_and_finished_tasks() -> None:
    cyclic = NewTask(id="x", role="tech_lead", depends_on=["c"], before=["b"])
    assert changes.check_add(PLAN, STATUSES, ROLES, cyclic) == [
        "the change creates a dependency cycle: b -> x -> c -> b"
    ]
    bad = NewTask(id="a", role="wizard", depends_on=["zz"], before=["a"])
    assert changes.check_add(PLAN, STATUSES, ROLES, bad) == [
        "a task 'a' already exists",
        "unknown role 'wizard' (known: tech_lead, ux_engineer)",
        "unknown dependency 'zz'",
        "task 'a' is completed; only pending tasks can change",
    ]


def test_adding_stops_at_the_most_tasks_a_plan_may_have() -> None:
    full = [TaskPlan(id=f"t{i}", role="tech_lead") for i in range(MAX_PLAN_TASKS)]
    statuses = {t.id: TaskStatus.PENDING for t in full}
    new = NewTask(id="one_more", role="tech_lead")
    assert changes.check_add(full[:-1], statuses, ROLES, new) == []
    assert changes.check_add(full, statuses, ROLES, new) == [
        f"the plan already has {MAX_PLAN_TASKS} tasks, the most a run may have"
    ]
    with pytest.raises(ValidationError, match="description"):
        NewTask(id="wordy", role="tech_lead", description="x" * (MAX_DESCRIPTION_CHARS + 1))
    with pytest.raises(ValidationError, match="prompt_addition"):
        TaskModification(task="b", prompt_addition="x" * (MAX_DESCRIPTION_CHARS + 1))


def test_removing_rewires_the_dependants() -> None:
    assert changes.check_remove(STATUSES, TaskRemoval(task="a")) == [
        "task 'a' is completed; only pending tasks can change"
    ]
    remaining = changes.apply_remove(PLAN, TaskRemoval(task="b"))
    assert [(t.id, t.depends_on) for t in remaining] == [("a", []), ("c", ["a"])]


def test_modifying_checks_role_dependencies_and_cycles() -> None:
    change = TaskModification(task="b", depends_on=["c"])
    assert changes.check_modify(PLAN, STATUSES, ROLES, change) == [
        "the change creates a dependency cycle: b -> c -> b"
    ]
    ok = TaskModification(task="c", role="ux_engineer", prompt_addition="Use Tailwind.")
    assert changes.check_modify(PLAN, STATUSES, ROLES, ok) == []
    modified = changes.apply_modify(PLAN, ok)[2]
    assert (modified.role, modified.prompt_addition, modified.depends_on) == (
        "ux_engineer",
        "Use Tailwind.",
        ["b"],
    )
    assert changes.check_modify(PLAN, STATUSES, ROLES, TaskModification(task="nope")) == [
        "no task 'nope' in this run"
    ]
