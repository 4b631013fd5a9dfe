"""The person answering a gate sees what is asked, in Temporal's own tools, and gets an answer.

A run's User Metadata says what it is (static summary and details) and what it does and
waits for (current details, with the commands that answer); its timers are labelled; its
database row follows its status; a decision update refuses a wrong answer with the reason.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from core.contracts import (
    Decision,
    DecisionKind,
    EventType,
    PendingDecision,
    RunState,
    RunStatus,
    TaskResolution,
)
from core.persistence.db import Database
from offline import OfflineProvider
from tests.helpers import (
    TASK_MANAGER_GOAL,
    TEMPLATES,
    command_lines,
    current_details,
    make_plan,
    row_says,
    started,
    timer_summaries,
    wait_until,
)
from tests.processes import shell_line
from workflows.goal import GoalWorkflow

APPROVAL = str(TEMPLATES / "approval.yaml")


async def waiting_on(handle: WorkflowHandle, key: str) -> PendingDecision:  # type: ignore[type-arg]
    async def asked() -> bool:
        waiting = await handle.query(GoalWorkflow.pending_decisions)
        return any(p.key == key for p in waiting)

    await wait_until(asked)
    return next(p for p in await handle.query(GoalWorkflow.pending_decisions) if p.key == key)


async def test_a_waiting_run_says_what_it_waits_for_and_its_temporal_cli_line_answers(
    dev_env: WorkflowEnvironment, sqlite_db: Database
) -> None:
    plan = make_plan(template=APPROVAL)
    address = dev_env.client.service_client.config.target_host
    async with started(dev_env.client, sqlite_db, OfflineProvider(), plan) as handle:
        description = await handle.describe()
        assert await description.static_summary() == TASK_MANAGER_GOAL
        static = await description.static_details() or ""
        for fact in ("template: `approval`", "tenant: `default`", plan.run_id):
            assert fact in static
        assert f"orchestrator status {plan.run_id}" in static

        pending = await waiting_on(handle, "approval")
        await wait_until(row_says(sqlite_db, plan.run_id, "waiting"))
        details = await current_details(handle)
        deadline = pending.since + timedelta(seconds=plan.escalation.tier2_after_seconds)
        assert "Gate `approval` waits for a decision" in details
        assert "reason: human approval required" in details
        assert "options: `approve`, `reject`, `request_changes`" in details
        assert f"tier 2 at {deadline:%Y-%m-%d %H:%M:%S} UTC" in details
        assert command_lines(details, "orchestrator") == [
            f"orchestrator approve {plan.run_id} approval",
            f"orchestrator reject {plan.run_id} approval",
            f"orchestrator request-changes {plan.run_id} approval",
        ]
        approve = command_lines(details, "temporal")[0]
        assert approve == (
            f"temporal workflow signal --address {address} --workflow-id run-{plan.run_id} "
            """--name decide --input '{"gate": "approval", "decision": "approve"}'"""
        )
        assert command_lines(details, "curl")[0].startswith(
            f'curl -X POST "${{ORCHESTRATOR_API_URL:-http://127.0.0.1:8000}}/runs/{plan.run_id}'
            '/decisions/approval"'
        )

        signalled = shell_line(approve)
        assert signalled.returncode == 0, signalled.stderr
        final = await handle.result()
        finished_details = await current_details(handle)

    assert final.status == RunStatus.COMPLETED
    assert final.task("approval").verdicts[-1].decided_by == "human:unknown"
    assert await row_says(sqlite_db, plan.run_id, "completed")()
    assert finished_details.startswith("**Completed**: 3 of 3 tasks done")
    assert "escalation tier 2 for gate approval" in await timer_summaries(handle)


async def test_a_decision_update_refuses_a_wrong_answer_with_the_reason_and_takes_a_good_one(
    dev_client: Client, sqlite_db: Database
) -> None:
    plan = make_plan(template=APPROVAL)
    async with started(dev_client, sqlite_db, OfflineProvider(), plan) as handle:
        await waiting_on(handle, "approval")
        before = await handle.query(GoalWorkflow.status)

        refusals: list[tuple[Decision | TaskResolution, str]] = [
            (
                Decision(gate="signoff", decision=DecisionKind.APPROVE),
                f"run {plan.run_id} is not waiting for a decision on gate 'signoff' "
                "(it waits for: gate approval)",
            ),
            (
                Decision(gate="approval", decision=DecisionKind.RAISE),
                "'raise' is not an option for 'approval' "
                "(options: approve, reject, request_changes)",
            ),
            (
                TaskResolution(task="requirements", action="retry"),
                f"run {plan.run_id} is not waiting for a resolution of task 'requirements'",
            ),
        ]
        for answer, reason in refusals:
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                if isinstance(answer, Decision):
                    await handle.execute_update(GoalWorkflow.submit_decision, answer)
                else:
                    await handle.execute_update(GoalWorkflow.submit_resolution, answer)
            assert reason in getattr(refused.value.cause, "message", "")

        after = await handle.query(GoalWorkflow.status)
        assert before is not None and after is not None
        assert after.status == RunStatus.WAITING
        assert [e.type for e in after.events] == [e.type for e in before.events]
        assert [p.key for p in await handle.query(GoalWorkflow.pending_decisions)] == ["approval"]

        taken = await handle.execute_update(
            GoalWorkflow.submit_decision,
            Decision(gate="approval", decision=DecisionKind.APPROVE, by="dana", comment="ok"),
        )
        final: RunState = await handle.result()

    assert (taken.gate, taken.decision, taken.by) == ("approval", DecisionKind.APPROVE, "dana")
    assert final.status == RunStatus.COMPLETED
    made = [e for e in final.events if e.type == EventType.DECISION_MADE]
    assert [(e.task, e.data["decision"], e.data["by"]) for e in made] == [
        ("approval", "approve", "dana")
    ]
