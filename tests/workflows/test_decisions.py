"""Human decisions, escalation tiers and plan changes on real Temporal servers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from core.contracts import (
    AutoDecision,
    EscalationPolicy,
    NewTask,
    PendingDecision,
    RunState,
    RunStatus,
    TaskStatus,
)
from core.infrastructure.settings import Settings
from core.persistence.db import Database
from core.services.runs import final_state
from offline import OfflineProvider
from tests.fakes.receivers import HttpReceiver, SmtpReceiver
from tests.helpers import TEMPLATES, make_plan, started, wait_until

TEMPORAL = str(Path(sys.executable).parent / "temporal")
HOUR = 3600.0


async def waiting_for(handle: WorkflowHandle, key: str) -> PendingDecision:  # type: ignore[type-arg]
    found: list[PendingDecision] = []

    async def ready() -> bool:
        found[:] = [
            p
            for p in await handle.query("pending_decisions", result_type=list[PendingDecision])
            if p.key == key
        ]
        return bool(found)

    await wait_until(ready)
    return found[0]


async def test_a_decide_signal_from_the_temporal_cli_releases_a_gate(
    dev_env: WorkflowEnvironment, sqlite_db: Database
) -> None:
    plan = make_plan(template=str(TEMPLATES / "approval.yaml"))
    async with started(dev_env.client, sqlite_db, OfflineProvider(), plan) as handle:
        pending = await waiting_for(handle, "approval")
        assert pending.kind == "gate" and pending.options == [
            "approve",
            "reject",
            "request_changes",
        ]
        state = await handle.query("status", result_type=RunState)
        assert state.status == RunStatus.WAITING
        assert state.task("approval").status == TaskStatus.WAITING

        signal = subprocess.run(
            [
                TEMPORAL,
                "workflow",
                "signal",
                "--address",
                dev_env.client.service_client.config.target_host,
                "--workflow-id",
                handle.id,
                "--name",
                "decide",
                "--input",
                json.dumps({"gate": "approval", "decision": "approve", "by": "alice"}),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert signal.returncode == 0, signal.stderr
        final = await handle.result()

    assert final.status == RunStatus.COMPLETED
    assert final.task("planning").status == TaskStatus.COMPLETED
    assert final.task("approval").verdicts[-1].decided_by == "human:alice"


async def test_without_a_decision_the_tiers_notify_then_the_policy_decides(
    time_skipping_env: WorkflowEnvironment, sqlite_db: Database
) -> None:
    with HttpReceiver() as webhook, HttpReceiver() as slack, SmtpReceiver() as smtp:
        policy = EscalationPolicy(
            tier1_after_seconds=60,
            tier2_after_seconds=HOUR,
            tier3_after_seconds=4 * HOUR,
            auto_decision=AutoDecision.APPROVE,
            webhook_url=webhook.url + "/hooks/run",
            slack_webhook_url=slack.url + "/services/T0/B0/xyz",
            email_to=["lead@example.com"],
        )
        plan = make_plan(template=str(TEMPLATES / "approval.yaml"), escalation=policy)
        # The receivers are on loopback: the operator's setting for receivers of its own.
        settings = Settings(
            SMTP_HOST=smtp.host, SMTP_PORT=smtp.port, WEBHOOK_ALLOW_PRIVATE_TARGETS=True
        )
        async with started(
            time_skipping_env.client, sqlite_db, OfflineProvider(), plan, settings
        ) as handle:
            final = await handle.result()
        hook_calls, slack_calls, mails = webhook.requests, slack.requests, smtp.messages

    assert final.status == RunStatus.COMPLETED
    assert final.task("approval").verdicts[-1].decided_by == "policy"
    assert [r.body["tier"] for r in hook_calls] == [1]
    assert hook_calls[0].body["details"]["key"] == "approval"
    assert len(slack_calls) == 1 and "approval" in slack_calls[0].body["text"]
    assert len(mails) == 1 and "approval" in mails[0]["Subject"]


async def test_policy_fail_fails_the_run(
    time_skipping_env: WorkflowEnvironment, sqlite_db: Database
) -> None:
    plan = make_plan(
        template=str(TEMPLATES / "approval.yaml"),
        escalation=EscalationPolicy(tier3_after_seconds=HOUR, auto_decision=AutoDecision.FAIL),
    )
    async with started(time_skipping_env.client, sqlite_db, OfflineProvider(), plan) as handle:
        final = await final_state(sqlite_db, handle)
    assert final.status == RunStatus.FAILED
    assert final.error == "gate approval waited past its escalation policy"
    assert final.task("planning").status == TaskStatus.FAILED
    assert (
        final.task("planning").error == "not run: gate approval waited past its escalation policy"
    )


async def test_tasks_added_mid_run_run_and_a_cycle_is_refused(
    dev_client: Client, sqlite_db: Database
) -> None:
    plan = make_plan(template=str(TEMPLATES / "approval.yaml"))
    async with started(dev_client, sqlite_db, OfflineProvider(), plan) as handle:
        await waiting_for(handle, "approval")
        added = await handle.execute_update(
            "add_task",
            NewTask(
                id="design", role="ux_engineer", depends_on=["requirements"], before=["planning"]
            ),
            result_type=None,
        )
        assert added is not None
        with pytest.raises(WorkflowUpdateFailedError) as cyclic:
            await handle.execute_update(
                "add_task",
                NewTask(id="loop", role="tech_lead", depends_on=["planning"], before=["planning"]),
            )
        assert "dependency cycle: planning -> loop -> planning" in str(cyclic.value.cause)
        with pytest.raises(WorkflowUpdateFailedError) as unknown:
            await handle.execute_update("add_task", NewTask(id="x", role="wizard"))
        assert "unknown role 'wizard'" in str(unknown.value.cause)
        with pytest.raises(WorkflowUpdateFailedError) as finished:
            await handle.execute_update("modify_task", {"task": "requirements", "model": "other"})
        assert "task 'requirements' is completed" in str(finished.value.cause)

        await handle.signal("decide", {"gate": "approval", "decision": "approve"})
        final = await handle.result()

    assert final.status == RunStatus.COMPLETED
    assert final.task("design").status == TaskStatus.COMPLETED
    assert {t.id for t in final.tasks} == {"requirements", "approval", "planning", "design"}
