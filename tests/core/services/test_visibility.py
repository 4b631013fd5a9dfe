"""After a reset, every product query over Temporal visibility sees the run once.

A reset ends the run's execution and goes on in a new one; the execution it left keeps its
search attributes (`RunStatus="waiting"`, or a failed run's status). `orchestrator dlq
list`, the API's `orchestrator_pending_decisions` and the Web UI filter of
docs/gates-and-decisions.md must count only the current execution.
"""

from __future__ import annotations

import asyncio
import re

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from agents.providers.anthropic import AnthropicProvider
from core.contracts import (
    SEARCH_ATTRIBUTE_RUN_STATUS,
    Decision,
    DecisionKind,
    PendingDecision,
    RunState,
    RunStatus,
)
from core.persistence.db import Database
from core.services import steering
from offline import OfflineProvider
from tests import processes
from tests.api_harness import api_settings, isolated_client, serving_api
from tests.fakes.messages_api import FakeMessagesAPI
from tests.fakes.responders import FaultyDesigner
from tests.helpers import TEMPLATES, make_plan, metric_value, started, wait_until
from tests.processes import REPO


def documented_waiting_filter() -> str:
    """The Web UI filter docs/gates-and-decisions.md gives for runs waiting on a person."""
    page = (REPO / "docs" / "gates-and-decisions.md").read_text()
    # the filter stands alone on its line, as inline code
    [found] = [f for f in re.findall(r"^`([^`]+)`$", page, re.M) if 'RunStatus="waiting"' in f]
    return found


def dlq_rows(client: Client, run_id: str) -> list[str]:
    """`orchestrator dlq list` on the client's namespace: the lines that name the run."""
    listed = processes.cli(
        "dlq",
        "list",
        env={
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": client.namespace,
        },
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    return [line for line in listed.stdout.splitlines() if run_id in line]


async def pending_keys(client: Client, workflow_id: str) -> list[str]:
    """What the run's current execution waits for; nothing while none answers."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        waiting = await handle.query("pending_decisions", result_type=list[PendingDecision])
    except Exception:  # between a reset and the new execution's first task
        return []
    return [p.key for p in waiting]


async def reset_and_wait(client: Client, run_id: str, to_task: str, waits_for: str) -> str:
    """`orchestrator reset RUN --to TASK`, then until the new execution waits again and
    visibility holds both executions; the new execution's run id."""
    workflow_id = f"run-{run_id}"
    reset = await asyncio.to_thread(
        processes.cli,
        "reset",
        run_id,
        "--to",
        to_task,
        env={
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": client.namespace,
        },
        timeout=120,
    )
    assert reset.returncode == 0, reset.stderr
    new_run = reset.stdout.strip().rsplit(" ", 1)[-1].rstrip(")")

    async def waiting_again() -> bool:
        return waits_for in await pending_keys(client, workflow_id)

    async def both_executions_listed() -> bool:
        executions = [e async for e in client.list_workflows(f'WorkflowId="{workflow_id}"')]
        return len(executions) == 2 and all(
            e.search_attributes.get(SEARCH_ATTRIBUTE_RUN_STATUS) for e in executions
        )

    await wait_until(waiting_again)
    await wait_until(both_executions_listed)
    return new_run


async def test_a_waiting_run_reset_is_counted_once_by_dlq_metrics_and_the_web_ui_filter(
    dev_env: WorkflowEnvironment, sqlite_db: Database
) -> None:
    client = await isolated_client(dev_env.client)
    await sqlite_db.ensure_schema()
    plan = make_plan(template=str(TEMPLATES / "approval.yaml"))
    workflow_id = f"run-{plan.run_id}"
    async with started(client, sqlite_db, OfflineProvider(), plan):
        await wait_until(lambda: _waits_for(client, workflow_id, "approval"))
        await reset_and_wait(client, plan.run_id, "requirements", waits_for="approval")

        # the execution the reset left: Terminated, and its RunStatus still says waiting
        statuses = {
            (e.status, e.search_attributes[SEARCH_ATTRIBUTE_RUN_STATUS][0])
            async for e in client.list_workflows(f'WorkflowId="{workflow_id}"')
        }
        assert statuses == {
            (WorkflowExecutionStatus.TERMINATED, RunStatus.WAITING.value),
            (WorkflowExecutionStatus.RUNNING, RunStatus.WAITING.value),
        }

        web_ui_filter = documented_waiting_filter()
        assert (await client.count_workflows(web_ui_filter)).count == 1
        assert await asyncio.to_thread(dlq_rows, client, plan.run_id) == []
        async with serving_api(
            sqlite_db, client, api_settings(METRICS_CACHE_SECONDS=0), with_workers=False
        ) as api:
            exposition = (await api.http().get("/metrics")).text
        assert metric_value(exposition, "orchestrator_pending_decisions", kind="gate") == 1

        await steering.decide(
            client, plan.run_id, Decision(gate="approval", decision=DecisionKind.APPROVE)
        )
        final = await current_result(client, workflow_id)
    assert final.status == RunStatus.COMPLETED
    assert await asyncio.to_thread(dlq_rows, client, plan.run_id) == []


async def test_a_failed_run_reset_is_listed_by_its_current_execution_only(
    dev_env: WorkflowEnvironment, sqlite_db: Database
) -> None:
    """A reset of a closed run leaves that execution closed as it was (here: failed)."""
    client = await isolated_client(dev_env.client)
    plan = make_plan(template=str(TEMPLATES / "branches.yaml"))
    workflow_id = f"run-{plan.run_id}"
    with FakeMessagesAPI() as fake:
        model = FaultyDesigner(fake)
        fake.responder = model
        provider = AnthropicProvider(api_key="test-key", base_url=fake.base_url)
        async with started(client, sqlite_db, provider, plan):
            await wait_until(lambda: _waits_for(client, workflow_id, "design"))
            await steering.resolve(client, plan.run_id, "design", "abort", "give up", "carol")
            await wait_until(lambda: _closed(client, workflow_id))
            [failed] = await asyncio.to_thread(dlq_rows, client, plan.run_id)
            assert failed.split() == [plan.run_id, "-", "run", "failed"]

            await reset_and_wait(client, plan.run_id, "design", waits_for="design")
            # the failed execution is still in visibility, but no longer the run
            [dead_letter] = await asyncio.to_thread(dlq_rows, client, plan.run_id)
            assert dead_letter.split()[:2] == [plan.run_id, "design"]
            assert "prompt is too long" in dead_letter

            model.fault = False
            await steering.resolve(client, plan.run_id, "design", "retry", "", "carol")
            final = await current_result(client, workflow_id)
    assert final.status == RunStatus.COMPLETED
    assert await asyncio.to_thread(dlq_rows, client, plan.run_id) == []


async def current_result(client: Client, workflow_id: str) -> RunState:
    """The result of the run's latest execution (the one a reset started)."""
    return await client.get_workflow_handle(workflow_id, result_type=RunState).result()


async def _waits_for(client: Client, workflow_id: str, key: str) -> bool:
    return key in await pending_keys(client, workflow_id)


async def _closed(client: Client, workflow_id: str) -> bool:
    description = await client.get_workflow_handle(workflow_id).describe()
    return description.status != WorkflowExecutionStatus.RUNNING
