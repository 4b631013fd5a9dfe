"""The `orchestrator` line a waiting run prints answers it; a run that fails fails in Temporal
and still shows its state in `orchestrator status`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from core.contracts import RUN_FAILED_ERROR, RunStatus
from core.persistence import storage
from core.persistence.db import Database
from core.services.runs import final_state
from offline import OfflineProvider
from tests.helpers import (
    TEMPLATES,
    command_lines,
    current_details,
    make_plan,
    row_says,
    started,
    wait_until,
)
from tests.processes import cli, joining, shell_line
from workflows.goal import GoalWorkflow


async def test_the_cli_line_of_a_waiting_run_answers_it_and_a_failed_run_still_shows_its_state(
    dev_env: WorkflowEnvironment, sqlite_db: Database, tmp_path: Path
) -> None:
    client = dev_env.client
    env = joining(client.service_client.config.target_host, "default", sqlite_db.url, tmp_path)
    plan = make_plan(template=str(TEMPLATES / "approval.yaml"))
    async with started(client, sqlite_db, OfflineProvider(), plan) as handle:

        async def asked() -> bool:
            return bool(await handle.query(GoalWorkflow.pending_decisions))

        await wait_until(asked)
        await wait_until(row_says(sqlite_db, plan.run_id, "waiting"))
        listed = await asyncio.to_thread(cli, "runs", env=env)
        assert listed.returncode == 0, listed.stderr
        assert any(plan.run_id in row and "waiting" in row for row in listed.stdout.splitlines())

        [reject] = [
            line
            for line in command_lines(await current_details(handle), "orchestrator")
            if " reject " in line
        ]
        rejected = await asyncio.to_thread(shell_line, f"{reject} --by erin", env)
        assert rejected.returncode == 0, rejected.stderr
        assert f"reject accepted by gate approval of run {plan.run_id}" in rejected.stdout
        final = await final_state(sqlite_db, handle)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        description = await handle.describe()

    assert final.status == RunStatus.FAILED
    assert final.task("approval").error == "rejected by erin"
    assert getattr(failure.value.cause, "type", None) == RUN_FAILED_ERROR
    assert description.status == WorkflowExecutionStatus.FAILED

    async def failed_in_visibility() -> bool:
        query = f'ExecutionStatus="Failed" AND WorkflowId="{handle.id}"'
        return (await client.count_workflows(query)).count == 1

    await wait_until(failed_in_visibility)
    status = await asyncio.to_thread(cli, "status", plan.run_id, env=env)
    assert status.returncode == 0, status.stderr
    for task in ("requirements", "approval", "planning"):
        assert task in status.stdout
    assert "failed" in status.stdout
    artifacts = await asyncio.to_thread(cli, "artifacts", plan.run_id, env=env)
    assert artifacts.returncode == 0, artifacts.stderr
    stored = await storage.latest_artifacts(sqlite_db, plan.run_id)
    assert stored and all(a.path in artifacts.stdout for a in stored)
    assert final.task("requirements").artifacts
