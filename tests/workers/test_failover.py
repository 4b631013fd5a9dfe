"""A worker that stops (SIGTERM, a deploy) or dies (SIGKILL) mid-call: its model calls finish
or move to another worker, read from the run's history; no finished call is made twice."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections import Counter
from pathlib import Path

from temporalio.api.enums.v1 import EventType as HistoryEvent
from temporalio.api.enums.v1 import TimeoutType
from temporalio.api.history.v1 import ActivityTaskStartedEventAttributes
from temporalio.api.history.v1 import HistoryEvent as Event
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.heartbeat import WORKER_SHUTDOWN_ERROR
from core.contracts import CALL_MODEL, RunState, RunStatus
from core.infrastructure.settings import Settings
from core.infrastructure.temporal import start_run
from core.persistence import storage
from core.persistence.db import Database, LedgerEntry
from tests.helpers import TEMPLATES, make_plan
from tests.processes import clean_environ, orchestrator_process
from workers.in_flight import RETRY_HANDED_BACK_AFTER, WORKER_DIED_ERROR


class Setup:
    def __init__(self, dev_env: WorkflowEnvironment, tmp_path: Path, **settings: str) -> None:
        self.client = dev_env.client
        self.tmp_path = tmp_path
        self.call_log = tmp_path / "calls.log"
        db_url = f"sqlite+aiosqlite:///{tmp_path / 'orchestrator.db'}"
        self.db = Database(db_url)
        self.env = clean_environ(
            {
                "TEMPORAL_ADDRESS": self.client.service_client.config.target_host,
                "DATABASE_URL": db_url,
                "LLM_PROVIDER": "offline",
                "OFFLINE_CALL_LOG": str(self.call_log),
                # where a worker keeps its slot: a successor here hands back what it left
                "ORCHESTRATOR_DATA_DIR": str(tmp_path / "data"),
                **settings,
            }
        )
        # The production default (ORCHESTRATOR_MODEL_HEARTBEAT_TIMEOUT), as `plans` sets it.
        heartbeat = Settings(_env_file=None).provider.model_heartbeat_timeout_seconds
        self.plan = make_plan(
            template=str(TEMPLATES / "branches.yaml"), model_heartbeat_timeout_seconds=heartbeat
        )
        self.workflow_id = f"run-{self.plan.run_id}"

    def calls(self) -> list[dict[str, object]]:
        if not self.call_log.exists():
            return []
        return [json.loads(line) for line in self.call_log.read_text().splitlines() if line]

    async def recorded(self) -> set[str]:
        return {response_id(e) for e in await storage.ledger_entries(self.db, self.workflow_id)}

    async def in_flight(self, worker: subprocess.Popen[bytes]) -> set[str]:
        """Wait for a model call of `worker` that has begun and is not recorded yet, after
        the run recorded two calls; its response ids."""
        while True:
            assert worker.poll() is None, "the worker exited"
            recorded = await self.recorded()
            running = {str(c["id"]) for c in self.calls() if c["pid"] == worker.pid} - recorded
            if len(recorded) >= 2 and running:
                return running
            await asyncio.sleep(0.02)

    async def cut(self, worker: subprocess.Popen[bytes]) -> set[str]:
        """Calls `worker` began and never recorded (call once it has exited)."""
        began = {str(c["id"]) for c in self.calls() if c["pid"] == worker.pid}
        return began - await self.recorded()

    async def finish(
        self, handle: WorkflowHandle[object, RunState], *, elsewhere: bool = False
    ) -> RunState:
        """Serve the run with a second worker (no model latency) until it ends; `elsewhere`:
        on another data directory, as on another machine."""
        env = {**self.env, "OFFLINE_LATENCY_SECONDS": "0"}
        if elsewhere:
            env["ORCHESTRATOR_DATA_DIR"] = str(self.tmp_path / "elsewhere")
        with orchestrator_process(
            ["worker"], env, self.tmp_path / "worker2.log", stop=signal.SIGTERM
        ):
            state = await asyncio.wait_for(handle.result(), timeout=240)
        assert state.status == RunStatus.COMPLETED, state.error
        return state


def response_id(entry: LedgerEntry) -> str:
    return str(json.loads(entry.response)["id"])


async def call_starts(handle: WorkflowHandle[object, RunState]) -> list[Event]:
    """The ActivityTaskStarted events of the run's model calls (one per call: its last
    attempt, which carries the failure of the one before)."""
    events = (await handle.fetch_history()).events
    model_calls = {
        e.event_id
        for e in events
        if e.event_type == HistoryEvent.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == CALL_MODEL
    }
    return [
        e
        for e in events
        if e.event_type == HistoryEvent.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and e.activity_task_started_event_attributes.scheduled_event_id in model_calls
    ]


async def stop(worker: subprocess.Popen[bytes], signum: signal.Signals) -> int:
    worker.send_signal(signum)
    return await asyncio.to_thread(worker.wait, 60)


async def test_sigterm_lets_the_call_in_flight_finish_and_nothing_is_called_twice(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    setup = Setup(
        dev_env,
        tmp_path,
        OFFLINE_LATENCY_SECONDS="2",
        ORCHESTRATOR_WORKER_SHUTDOWN_SECONDS="30",
    )
    log = tmp_path / "worker1.log"
    with orchestrator_process(["worker"], setup.env, log, stop=signal.SIGKILL) as first:
        handle = await start_run(setup.client, setup.plan)
        running = await setup.in_flight(first)
        assert await stop(first, signal.SIGTERM) == 0, log.read_text()
        # The stopping worker finished its calls and recorded them before it exited.
        assert running <= await setup.recorded()
        assert await setup.cut(first) == set()
    assert "worker stopped" in log.read_text()

    state = await setup.finish(handle)
    calls = Counter(str(c["id"]) for c in setup.calls())
    assert set(calls.values()) == {1}, calls  # no model call was made twice
    ledger = await storage.ledger_entries(setup.db, setup.workflow_id)
    assert len(ledger) == sum(t.turns for t in state.tasks) == len(calls)
    starts = await call_starts(handle)
    assert [e.activity_task_started_event_attributes.attempt for e in starts] == [1] * len(ledger)
    await setup.db.dispose()


async def test_sigterm_hands_back_a_call_that_outlasts_the_grace_period(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    setup = Setup(
        dev_env,
        tmp_path,
        OFFLINE_LATENCY_SECONDS="3",
        ORCHESTRATOR_WORKER_SHUTDOWN_SECONDS="0",
    )
    log = tmp_path / "worker1.log"
    with orchestrator_process(["worker"], setup.env, log, stop=signal.SIGKILL) as first:
        handle = await start_run(setup.client, setup.plan)
        await setup.in_flight(first)
        finished_before = await setup.recorded()
        assert await stop(first, signal.SIGTERM) == 0, log.read_text()
        running = await setup.cut(first)  # cut short: begun, never recorded
    assert running

    state = await setup.finish(handle)
    calls = Counter(str(c["id"]) for c in setup.calls())
    assert all(calls[key] == 1 for key in finished_before), calls
    assert {key for key, n in calls.items() if n > 1} == running
    ledger = await storage.ledger_entries(setup.db, setup.workflow_id)
    assert len(ledger) == sum(t.turns for t in state.tasks) == len(calls)
    # Each cut call failed over at once with WorkerShutdown, not after a heartbeat timeout.
    retried = [
        e.activity_task_started_event_attributes
        for e in await call_starts(handle)
        if e.activity_task_started_event_attributes.attempt > 1
    ]
    assert [a.attempt for a in retried] == [2] * len(running)
    assert all(
        a.last_failure.application_failure_info.type == WORKER_SHUTDOWN_ERROR for a in retried
    ), retried
    await setup.db.dispose()


async def retried_after_sigkill(
    setup: Setup, *, elsewhere: bool
) -> list[ActivityTaskStartedEventAttributes]:
    """SIGKILL the worker mid-call and finish the run with a second one (`elsewhere`: on
    another data directory); the retried attempts' starts, each a call the kill cut, made
    again once, and nothing else made twice."""
    with orchestrator_process(
        ["worker"], setup.env, setup.tmp_path / "worker1.log", stop=signal.SIGKILL
    ) as first:
        handle = await start_run(setup.client, setup.plan)
        await setup.in_flight(first)
        finished_before = await setup.recorded()
        await stop(first, signal.SIGKILL)
        running = await setup.cut(first)
    assert running

    state = await setup.finish(handle, elsewhere=elsewhere)
    calls = Counter(str(c["id"]) for c in setup.calls())
    assert all(calls[key] == 1 for key in finished_before), calls
    assert {key for key, n in calls.items() if n > 1} == running
    assert len(await storage.ledger_entries(setup.db, setup.workflow_id)) == sum(
        t.turns for t in state.tasks
    )
    retried = [
        e.activity_task_started_event_attributes
        for e in await call_starts(handle)
        if e.activity_task_started_event_attributes.attempt > 1
    ]
    assert [a.attempt for a in retried] == [2] * len(running)
    await setup.db.dispose()
    return retried


async def test_a_killed_workers_call_moves_on_after_the_short_heartbeat_timeout(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    setup = Setup(dev_env, tmp_path, OFFLINE_LATENCY_SECONDS="3")
    assert setup.plan.model_heartbeat_timeout_seconds <= 2.0
    # The second worker runs on another machine, so it has nothing to hand back: the cut
    # calls were declared lost by their heartbeat timeout (well inside the 600 s
    # start-to-close timeout).
    retried = await retried_after_sigkill(setup, elsewhere=True)
    assert all(
        a.last_failure.timeout_failure_info.timeout_type == TimeoutType.TIMEOUT_TYPE_HEARTBEAT
        for a in retried
    ), retried


async def test_a_killed_workers_successor_hands_back_its_calls_before_any_timeout(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    setup = Setup(dev_env, tmp_path, OFFLINE_LATENCY_SECONDS="3")
    # A heartbeat timeout far longer than the test: only the hand-back can retry the calls.
    setup.plan = setup.plan.model_copy(update={"model_heartbeat_timeout_seconds": 600.0})
    retried = await retried_after_sigkill(setup, elsewhere=False)
    # The second worker took the dead one's slot and failed its calls in flight at once,
    # asking for the retry at once too (not after the policy's first interval).
    assert all(
        a.last_failure.application_failure_info.type == WORKER_DIED_ERROR
        and a.last_failure.application_failure_info.next_retry_delay.ToTimedelta()
        == RETRY_HANDED_BACK_AFTER
        for a in retried
    ), retried
    assert "handed back a dead worker's activities" in (tmp_path / "worker2.log").read_text()
