"""Whole goals through `GoalWorkflow` on real Temporal servers with the offline model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from core.contracts import RunState, RunStatus, TaskStatus
from core.infrastructure.settings import Settings
from core.persistence import storage
from core.persistence.db import Database, WebhookSubscription
from core.persistence.tenancy import create_org, new_id
from core.services.export import export_repository
from offline import OfflineProvider
from tests.fakes.receivers import WebhookReceiver
from tests.helpers import make_plan, run_generated_tests, run_to_end, started, wait_until
from workflows.goal import GoalWorkflow

WEBHOOK_SECRET = "whsec_test-secret-of-some-length"


async def test_sdlc_run_delivers_a_repository_whose_tests_pass(
    dev_client: Client, sqlite_db: Database, tmp_path: Path
) -> None:
    plan = make_plan()
    state = await run_to_end(dev_client, sqlite_db, OfflineProvider(), plan)

    assert state.status == RunStatus.COMPLETED, state.error
    statuses = {t.id: t.status for t in state.tasks}
    assert statuses.pop("data_science") == TaskStatus.SKIPPED  # the goal asks for no analytics
    assert set(statuses.values()) == {TaskStatus.COMPLETED}
    assert state.task("requirements").outputs["needs_auth"] is True
    assert state.usage.total > 0 and state.cost_usd == 0.0

    # the ledger holds one row per model call, and the run's totals are its sum
    entries = await storage.ledger_entries(sqlite_db, f"run-{plan.run_id}")
    assert len(entries) == sum(t.turns for t in state.tasks)
    run = await storage.get_run(sqlite_db, plan.run_id)
    assert run is not None and run.status == "completed"
    assert run.input_tokens == sum(e.input_tokens for e in entries) == state.usage.input_tokens

    out = tmp_path / "repo"
    await export_repository(sqlite_db, plan.run_id, f"run-{plan.run_id}", out)
    provenance = (out / "PROVENANCE.md").read_text()
    assert "offline" in provenance and "backend/app.py" in provenance
    tests = run_generated_tests(out / "backend")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout


async def test_backend_and_frontend_run_in_parallel_and_status_is_queryable(
    dev_client: Client, sqlite_db: Database
) -> None:
    plan = make_plan()
    provider = OfflineProvider(latency_seconds=0.3)
    seen_running: set[frozenset[str]] = set()
    async with started(dev_client, sqlite_db, provider, plan) as handle:
        while True:
            state = await handle.query("status", result_type=RunState)
            if state is not None:
                running = frozenset(t.id for t in state.tasks if t.status == TaskStatus.RUNNING)
                seen_running.add(running)
                if state.status != RunStatus.RUNNING:
                    break
            await asyncio.sleep(0.05)
        await handle.result()

    assert any({"backend", "frontend"} <= running for running in seen_running)
    history = await handle.fetch_history()
    summaries = [
        event.user_metadata.summary.data.decode()
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.HasField("user_metadata")
    ]
    assert '"backend (backend_engineer): turn 1"' in summaries
    assert '"frontend (frontend_engineer): turn 2"' in summaries

    listed = [
        w.id
        async for w in dev_client.list_workflows(
            f'WorkflowType="GoalWorkflow" AND WorkflowId="run-{plan.run_id}"'
            ' AND Template="sdlc" AND RunStatus="completed"'
        )
    ]
    assert listed == [f"run-{plan.run_id}"]


async def test_a_goal_on_the_time_skipping_server_with_postgres(
    time_skipping_env: WorkflowEnvironment, postgres_db: Database
) -> None:
    plan = make_plan("Build a recipe catalog service with sales forecasting analytics")
    state = await run_to_end(time_skipping_env.client, postgres_db, OfflineProvider(), plan)
    assert state.status == RunStatus.COMPLETED, state.error
    assert state.task("data_science").status == TaskStatus.COMPLETED  # the goal asks for analytics
    files = {a.path for a in await storage.latest_artifacts(postgres_db, plan.run_id)}
    assert {"backend/app.py", "db/schema.sql", "analytics/metrics.py", "README.md"} <= files


async def test_a_long_history_continues_as_new_and_carries_the_state(
    dev_client: Client, sqlite_db: Database
) -> None:
    plan = make_plan(history_event_limit=40)
    async with started(dev_client, sqlite_db, OfflineProvider(), plan) as handle:
        state = await handle.result()
        first_run = dev_client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
        first_history = await first_run.fetch_history()

    assert (
        first_history.events[-1].event_type
        == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    )
    assert state.status == RunStatus.COMPLETED, state.error
    # two turns and the validator's two, finished in the first run, carried over
    assert state.task("requirements").turns == 4
    assert [v.passed for v in state.task("requirements").validations] == [True]
    entries = await storage.ledger_entries(sqlite_db, handle.id)
    assert len(entries) == sum(t.turns for t in state.tasks)
    assert state.usage.input_tokens == sum(e.input_tokens for e in entries)


async def test_continue_as_new_waits_for_deliveries_still_retrying(
    dev_client: Client, sqlite_db: Database
) -> None:
    """A webhook delivery still retrying when the history runs long ends in the old run:
    continue-as-new would cut its retries off, and the event would never arrive."""
    org = (await create_org(sqlite_db, new_id("org-name"))).id
    with WebhookReceiver(WEBHOOK_SECRET) as receiver:
        receiver.respond_with(503, "starting up", times=3)  # run.started retries for ~7 s
        async with sqlite_db.session() as session:
            session.add(
                WebhookSubscription(
                    id=new_id("whk"),
                    org_id=org,
                    url=f"{receiver.url}/hook",
                    secret=WEBHOOK_SECRET,
                    event_types=json.dumps(["run.started"]),
                )
            )
            await session.commit()
        plan = make_plan(history_event_limit=40, tenant=org)
        settings = Settings(_env_file=None, WEBHOOK_ALLOW_PRIVATE_TARGETS=True)  # type: ignore[call-arg]
        async with started(dev_client, sqlite_db, OfflineProvider(), plan, settings) as handle:
            state = await handle.result()
            first_run = dev_client.get_workflow_handle(
                handle.id, run_id=handle.first_execution_run_id
            )
            first_history = await first_run.fetch_history()

        assert state.status == RunStatus.COMPLETED, state.error
        assert receiver.pending == 0
        assert [e.event["seq"] for e in receiver.accepted] == [1]  # run.started, once

    events = first_history.events
    assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    scheduled = {
        e.event_id for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    completed = {
        e.activity_task_completed_event_attributes.scheduled_event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    }
    assert scheduled and scheduled == completed  # the old run left nothing in flight
    replayer = Replayer(workflows=[GoalWorkflow], data_converter=dev_client.data_converter)
    replayed = await replayer.replay_workflow(first_history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None


async def test_a_cancelled_run_stops_and_records_how_far_it_got(
    dev_client: Client, sqlite_db: Database
) -> None:
    from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

    from core.contracts import EventType as RunEventType

    plan = make_plan()
    async with started(dev_client, sqlite_db, OfflineProvider(latency_seconds=0.5), plan) as handle:

        async def requirements_done() -> bool:
            state = await handle.query("status", result_type=RunState)
            return state.task("requirements").status == TaskStatus.COMPLETED

        await wait_until(requirements_done)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        description = await handle.describe()

    assert description.status == WorkflowExecutionStatus.CANCELED
    run = await storage.get_run(sqlite_db, plan.run_id)
    assert run is not None and run.status == "cancelled"
    final = RunState.model_validate_json(run.final_state or "")
    assert final.task("requirements").status == TaskStatus.COMPLETED
    assert final.task("backend").status == TaskStatus.FAILED
    assert final.events[-1].type == RunEventType.RUN_CANCELLED
