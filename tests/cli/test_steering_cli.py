"""Steering runs from the `orchestrator` command: decisions, plan changes, dead letters, reset."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from agents.providers.anthropic import AnthropicProvider
from core.contracts import PendingDecision, RunState, RunStatus, TaskStatus
from core.persistence import storage
from core.persistence.db import Database
from offline import OfflineProvider
from tests import processes
from tests.fakes.messages_api import FakeMessagesAPI
from tests.fakes.responders import FaultyDesigner
from tests.helpers import TEMPLATES, make_plan, started, wait_until


def cli(env: WorkflowEnvironment, *args: str) -> subprocess.CompletedProcess[str]:
    """`orchestrator <args>` on the test's Temporal server."""
    address = env.client.service_client.config.target_host
    return processes.cli(*args, env={"TEMPORAL_ADDRESS": address}, timeout=120)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1
    return processes.assert_one_line_error(result)


async def pending_keys(client: Client, workflow_id: str) -> list[str]:
    handle = client.get_workflow_handle(workflow_id)
    waiting = await handle.query("pending_decisions", result_type=list[PendingDecision])
    return [p.key for p in waiting]


async def test_approve_and_change_the_plan_from_the_cli(
    dev_env: WorkflowEnvironment, sqlite_db: Database
) -> None:
    plan = make_plan(template=str(TEMPLATES / "approval.yaml"))
    run_id = plan.run_id
    async with started(dev_env.client, sqlite_db, OfflineProvider(), plan) as handle:

        async def waiting() -> bool:
            return "approval" in await pending_keys(dev_env.client, handle.id)

        await wait_until(waiting)
        shown = await asyncio.to_thread(cli, dev_env, "pending", run_id)
        assert "gate" in shown.stdout and "approval" in shown.stdout

        wrong_gate = await asyncio.to_thread(cli, dev_env, "approve", run_id, "nope")
        assert "is not waiting for a decision on gate 'nope'" in one_line_error(wrong_gate)
        cyclic = await asyncio.to_thread(
            cli,
            dev_env,
            "tasks",
            "add",
            run_id,
            "--id",
            "loop",
            "--role",
            "tech_lead",
            "--after",
            "planning",
            "--before",
            "planning",
        )
        assert "dependency cycle: planning -> loop -> planning" in one_line_error(cyclic)
        added = await asyncio.to_thread(
            cli,
            dev_env,
            "tasks",
            "add",
            run_id,
            "--id",
            "design",
            "--role",
            "ux_engineer",
            "--after",
            "requirements",
            "--before",
            "planning",
        )
        assert added.returncode == 0, added.stderr
        modified = await asyncio.to_thread(
            cli, dev_env, "tasks", "modify", run_id, "planning", "--prompt", "Plan in two weeks."
        )
        assert modified.returncode == 0, modified.stderr

        approved = await asyncio.to_thread(
            cli, dev_env, "approve", run_id, "approval", "--comment", "ship it", "--by", "carol"
        )
        assert approved.returncode == 0, approved.stderr
        final = await handle.result()

    assert final.status == RunStatus.COMPLETED
    assert final.task("design").status == TaskStatus.COMPLETED
    assert final.task("approval").verdicts[-1].decided_by == "human:carol"
    finished = await asyncio.to_thread(cli, dev_env, "approve", run_id, "approval")
    assert f"run {run_id} is completed, not running" in one_line_error(finished)


async def test_dlq_list_and_retry_from_the_cli(
    dev_env: WorkflowEnvironment, sqlite_db: Database
) -> None:
    with FakeMessagesAPI() as api:
        model = FaultyDesigner(api)
        api.responder = model
        provider = AnthropicProvider(api_key="test-key", base_url=api.base_url)
        plan = make_plan(template=str(TEMPLATES / "branches.yaml"))
        async with started(dev_env.client, sqlite_db, provider, plan) as handle:

            async def dead_lettered() -> bool:
                return "design" in await pending_keys(dev_env.client, handle.id)

            await wait_until(dead_lettered)
            listed = await asyncio.to_thread(cli, dev_env, "dlq", "list")
            assert listed.returncode == 0, listed.stderr
            row = next(line for line in listed.stdout.splitlines() if plan.run_id in line)
            assert "design" in row and "prompt is too long" in row

            model.fault = False
            retried = await asyncio.to_thread(cli, dev_env, "dlq", "retry", plan.run_id, "design")
            assert retried.returncode == 0, retried.stderr
            final = await handle.result()
    assert final.status == RunStatus.COMPLETED


async def test_reset_reruns_from_a_task_without_repeating_earlier_calls(
    dev_env: WorkflowEnvironment, sqlite_db: Database, tmp_path: Path
) -> None:
    call_log = tmp_path / "calls.log"
    provider = OfflineProvider(call_log=call_log)
    plan = make_plan(template=str(TEMPLATES / "branches.yaml"))
    async with started(dev_env.client, sqlite_db, provider, plan) as handle:
        first = await handle.result()
        assert first.status == RunStatus.COMPLETED
        calls_before = len(call_log.read_text().splitlines())

        reset = await asyncio.to_thread(cli, dev_env, "reset", plan.run_id, "--to", "cleanup")
        assert reset.returncode == 0, reset.stderr
        new_run = reset.stdout.strip().rsplit(" ", 1)[-1].rstrip(")")
        rerun = dev_env.client.get_workflow_handle(handle.id, run_id=new_run, result_type=RunState)
        second = await rerun.result()

    assert second.status == RunStatus.COMPLETED
    new_calls = [json.loads(line) for line in call_log.read_text().splitlines()[calls_before:]]
    # the cleanup's two turns and its validator's two; nothing before it was called again
    assert sorted(c["role"] for c in new_calls) == ["cleanup_agent"] * 2 + ["validator"] * 2
    entries = await storage.ledger_entries(sqlite_db, handle.id)
    cleanup_rows = [e for e in entries if e.task_id == "cleanup"]
    assert len({e.execution_id for e in cleanup_rows}) == 2  # the first run's and the reset's
    missing = await asyncio.to_thread(cli, dev_env, "reset", plan.run_id, "--to", "nope")
    assert "task 'nope' never ran" in one_line_error(missing)
