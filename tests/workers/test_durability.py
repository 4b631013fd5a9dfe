"""Kill the worker with SIGKILL mid-run: the run completes and no finished model call repeats."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.model_calls import ModelActivities
from activities.workspace import WorkspaceActivities
from agents.providers.anthropic import AnthropicProvider
from core.contracts import ModelCallInput, RunStatus, ToolCallsInput, TurnKey
from core.infrastructure.settings import Settings
from core.infrastructure.temporal import start_run
from core.persistence import storage
from core.persistence.db import Database, LedgerEntry
from tests.fakes.messages_api import FakeMessagesAPI
from tests.helpers import make_plan
from tests.processes import clean_environ, orchestrator_process
from workflows.agent_loop import MODEL_CALL_FIRST_RETRY


def invocations(call_log: Path) -> Counter[str]:
    """Calls by response id: the offline model derives it from role, turn and task message,
    so a call made twice logs the same id twice, and the ledger row stores that id."""
    lines = [json.loads(line) for line in call_log.read_text().splitlines() if line.strip()]
    return Counter(str(line["id"]) for line in lines)


def response_id(entry: LedgerEntry) -> str:
    return str(json.loads(entry.response)["id"])


async def test_sigkilled_worker_loses_nothing_and_repeats_no_finished_call(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'orchestrator.db'}"
    call_log = tmp_path / "calls.log"
    env = clean_environ(
        {
            "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "DATABASE_URL": db_url,
            "OFFLINE_LATENCY_SECONDS": "0.4",
            "OFFLINE_CALL_LOG": str(call_log),
        }
    )
    db = Database(db_url)
    plan = make_plan(model_heartbeat_timeout_seconds=2.0)
    workflow_id = f"run-{plan.run_id}"
    log = tmp_path / "worker1.log"
    with orchestrator_process(["worker"], env, log, stop=signal.SIGKILL) as first:
        handle = await start_run(dev_env.client, plan)
        while len(await storage.ledger_entries(db, workflow_id)) < 7:
            assert first.poll() is None, log.read_text()
            await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait()
        finished_before_kill = {
            response_id(e) for e in await storage.ledger_entries(db, workflow_id)
        }
        versions_before_kill = len(await storage.all_artifact_versions(db, plan.run_id))

    with orchestrator_process(["worker"], env, tmp_path / "worker2.log", stop=signal.SIGTERM):
        state = await asyncio.wait_for(handle.result(), timeout=180)

    assert state.status == RunStatus.COMPLETED, state.error
    # a call the kill cut ran again as soon as its heartbeat timed out, not a backoff later
    history = await handle.fetch_history()
    model_calls = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "call_model"
    ]
    assert model_calls and all(
        a.retry_policy.initial_interval.ToTimedelta() == MODEL_CALL_FIRST_RETRY for a in model_calls
    )
    calls = invocations(call_log)
    ledger = await storage.ledger_entries(db, workflow_id)
    assert len(ledger) == sum(t.turns for t in state.tasks)
    assert len({(e.task_id, e.turn) for e in ledger}) == len(ledger)
    assert set(calls) == {response_id(e) for e in ledger}  # each logged call has its row
    # every call that had finished before the kill was made exactly once
    assert all(calls[key] == 1 for key in finished_before_kill), calls
    # only calls in flight at the kill (at most one per running task) were made twice
    repeated = [key for key, count in calls.items() if count > 1]
    assert len(repeated) <= 3, repeated
    assert sum(calls.values()) == len(ledger) + len(repeated)
    # no artifact was written twice: as in an uninterrupted run, one version per path but
    # backend/app.py, which the backend engineer fixes after its tests caught its defect
    versions = await storage.all_artifact_versions(db, plan.run_id)
    latest = await storage.latest_artifacts(db, plan.run_id)
    rewritten = [path for path, n in Counter(v.path for v in versions).items() if n > 1]
    assert rewritten == ["backend/app.py"]
    assert len(versions) == len(latest) + 1 and len(versions) > versions_before_kill
    await db.dispose()


@pytest.mark.parametrize("response_cache", ["off", "on"])
async def test_a_retried_model_call_does_not_pay_the_provider_again(
    any_db: Database, response_cache: str
) -> None:
    """The activity's retry (its worker died before reporting) answers from the ledger.

    The ledger keeps the first row whatever happens, so only the wire shows a second
    payment; and with the response cache on, a retry answered from the cache would report
    no usage for a turn that was paid for.
    """
    call = ModelCallInput(
        key=TurnKey(run_id="r1", workflow_id="run-r1", task_id="requirements", turn=0),
        role="business_analyst",
        goal="Build a todo API",
    )
    settings = Settings(_env_file=None, RESPONSE_CACHE=response_cache)  # type: ignore[call-arg]
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2)
    with FakeMessagesAPI() as api:
        provider = AnthropicProvider(api_key="test-key", base_url=api.base_url)
        activities = ModelActivities(any_db, provider, settings.provider)
        first = await ActivityEnvironment().run(activities.call_model, call)
        again = await retry.run(activities.call_model, call)
        await provider.aclose()
        sent = [r for r in api.requests if r.path == "/v1/messages"]

    assert len(sent) == 1
    assert (again.usage, again.cost_usd, again.stop_reason) == (
        first.usage,
        first.cost_usd,
        first.stop_reason,
    )
    assert first.usage.total > 0 and first.cost_usd > 0
    assert again.replayed and not first.replayed
    [entry] = await storage.ledger_entries(any_db, "run-r1")
    assert (storage.entry_usage(entry), entry.cost_usd) == (first.usage, first.cost_usd)


@pytest.mark.parametrize(
    ("attempt", "headers", "delay"),
    [(1, {}, 1.0), (3, {}, 4.0), (9, {}, 60.0), (1, {"retry-after": "3"}, 3.0)],
)
async def test_a_providers_failure_backs_off_though_a_dead_workers_call_retries_at_once(
    any_db: Database, attempt: int, headers: dict[str, str], delay: float
) -> None:
    """The model call's retry policy starts at 0.2 s so a call cut by a worker's death runs
    again at once; a provider's 529 must not be hammered that fast, so the activity sets the
    delay itself: what the server asked for, else 1 s doubling per attempt up to a minute."""
    call = ModelCallInput(
        key=TurnKey(run_id="r1", workflow_id="run-r1", task_id="requirements", turn=0),
        role="business_analyst",
        goal="Build a todo API",
    )
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    with FakeMessagesAPI() as api:
        api.enqueue_overloaded(**headers)
        provider = AnthropicProvider(api_key="test-key", base_url=api.base_url)
        with pytest.raises(ApplicationError) as failed:
            await env.run(ModelActivities(any_db, provider, settings.provider).call_model, call)
        await provider.aclose()

    assert failed.value.type == "ProviderError" and not failed.value.non_retryable
    assert failed.value.next_retry_delay == timedelta(seconds=delay)


async def test_tool_calls_run_with_the_model_call_once_and_a_retry_repeats_nothing(
    any_db: Database,
) -> None:
    """An answer without commands has its tool calls run in the model-call activity: one
    step. A retry of that activity (its worker died before reporting) pays nothing and
    writes nothing again: the ledger holds the call, the turn's record holds the outcome."""
    key = TurnKey(run_id="r2", workflow_id="run-r2", task_id="requirements", turn=0)
    call = ModelCallInput(
        key=key,
        role="business_analyst",
        goal="Build a todo API",
        tools=ToolCallsInput(key=key, role="business_analyst", model=""),
    )
    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, attempt=2)
    with FakeMessagesAPI() as api:
        api.enqueue_tool_use("write_file", {"path": "docs/requirements.md", "content": "# R\n"})
        provider = AnthropicProvider(api_key="test-key", base_url=api.base_url)
        workspace = WorkspaceActivities(any_db)
        activities = ModelActivities(any_db, provider, Settings().provider, tools=workspace)
        first = await ActivityEnvironment().run(activities.call_model, call)
        again = await retry.run(activities.call_model, call)
        # A worker that runs no tools with its calls leaves them to the workflow.
        alone = ModelActivities(any_db, provider, Settings().provider)
        left = await retry.run(alone.call_model, call)
        await provider.aclose()

    assert first.tool_results is not None and again.tool_results == first.tool_results
    [written] = first.tool_results.written
    assert (written.path, written.version, first.tool_results.tool_counts) == (
        "docs/requirements.md",
        1,
        {"write_file": 1},
    )
    assert left.tool_results is None and left.tool_calls == 1
    versions = await storage.latest_artifacts(any_db, "r2")
    assert [(a.path, a.version) for a in versions] == [("docs/requirements.md", 1)]
