"""SIGKILL the checks worker while the offline engineer's command runs: the command's result is
recorded once, the command that had finished before the kill is answered from its record
instead of running again, and the run completes.

The workers are split as production splits them: one process serves the orchestrator and
agent queues, another the `checks` queue, which is the one killed. With
`OFFLINE_COMMAND_PAUSE_SECONDS` the offline engineer follows each test run with a `sleep`
command in the same turn, so the kill lands after one command of the turn finished and
while the next one runs.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from core.contracts import CHECKS_QUEUE, RUN_TOOL_CALLS, RunStatus
from core.infrastructure.temporal import start_run
from core.persistence.db import Database
from offline.run_and_fix import TEST_COMMAND
from tests.helpers import TEMPLATES, make_plan
from tests.processes import joining, orchestrator_process
from tests.workflows.recorded_turns import command_rows, recorded_turns
from workers.main import ALL_QUEUES

PAUSE_SECONDS = 6
SLEEP = f"sleep {PAUSE_SECONDS}"


def logged(log: Path, event: str) -> list[dict[str, Any]]:
    """The JSON log lines of `event` a worker wrote."""
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    return [entry for entry in map(json.loads, lines) if entry.get("event") == event]


def ran_and_reused(log: Path) -> tuple[list[str], list[str]]:
    """Tool-call ids of the commands a worker ran, and of those it answered from the ledger."""
    ran = [e["tool_use_id"] for e in logged(log, "command ran in the sandbox")]
    reused = [e["tool_use_id"] for e in logged(log, "command answered from the ledger")]
    return ran, reused


async def test_a_checks_worker_killed_mid_command_loses_nothing_and_reruns_nothing_finished(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'orchestrator.db'}"
    db = Database(db_url)
    await db.ensure_schema()
    env = joining(
        dev_env.client.service_client.config.target_host,
        dev_env.client.namespace,
        db_url,
        tmp_path / "data",
        OFFLINE_COMMAND_PAUSE_SECONDS=str(PAUSE_SECONDS),
        LOG_FORMAT="json",
    )
    plan = make_plan(
        "Build a bookstore inventory service", template=str(TEMPLATES / "engineer.yaml")
    )
    workflow_id = f"run-{plan.run_id}"
    others = ",".join(q for q in ALL_QUEUES if q != CHECKS_QUEUE)
    first_log, second_log = tmp_path / "checks1.log", tmp_path / "checks2.log"
    with orchestrator_process(["worker", "--queues", others], env, tmp_path / "main.log"):
        with orchestrator_process(
            ["worker", "--queues", CHECKS_QUEUE], env, first_log, stop=signal.SIGKILL
        ) as checks:
            handle = await start_run(dev_env.client, plan)
            # The turn's test run has finished and is kept; its `sleep` has begun.
            while not await command_rows(db, workflow_id, "backend"):
                assert checks.poll() is None, first_log.read_text()
                await asyncio.sleep(0.05)
            await asyncio.sleep(1)
            before_kill = await command_rows(db, workflow_id, "backend")
            checks.send_signal(signal.SIGKILL)
            checks.wait()
        with orchestrator_process(["worker", "--queues", CHECKS_QUEUE], env, second_log):
            state = await asyncio.wait_for(handle.result(), timeout=240)
        history = await handle.fetch_history()

    assert state.status == RunStatus.COMPLETED, state.error
    [kept] = before_kill
    assert (kept.turn, kept.command, kept.exit_code) == (1, TEST_COMMAND, 1)

    turns = await recorded_turns(db, workflow_id, "backend")
    assert [t.steps for t in turns] == [
        ["create"] * 5,
        ["bash", "bash"],
        ["str_replace"],
        ["bash", "bash"],
        ["end"],
    ]
    calls = [call for t in turns for call in t.commands()]
    assert [c.input["command"] for c in calls] == [TEST_COMMAND, SLEEP, TEST_COMMAND, SLEEP]

    # one row per command call, and the one kept before the kill is the same row still
    rows = await command_rows(db, workflow_id, "backend")
    assert [r.tool_use_id for r in rows] == [c.id for c in calls]
    assert [r.exit_code for r in rows] == [1, 0, 0, 0]
    assert (rows[0].id, rows[0].output, rows[0].created_at) == (
        kept.id,
        kept.output,
        kept.created_at,
    )
    # what the agent read is what was kept, and the run's state counts each command once
    results = {tool_id: r for t in turns for tool_id, r in t.results.items()}
    assert [results[r.tool_use_id].content for r in rows] == [r.output for r in rows]
    assert "test_delete_removes_the_record" in rows[0].output
    assert [c.exit_code for c in state.task("backend").commands] == [1, 0, 0, 0]

    # the killed worker finished only the test run; the new one answered it from its record
    # and ran the interrupted `sleep` (once) and the next turn's commands
    failing, sleep, passing, last_sleep = (c.id for c in calls)
    assert ran_and_reused(first_log) == ([failing], [])
    assert ran_and_reused(second_log) == ([sleep, passing, last_sleep], [failing])

    # the interrupted turn's tool-call activity was retried, on the checks queue
    started = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == RUN_TOOL_CALLS
    ]
    assert [a.task_queue.name for a in scheduled] == [CHECKS_QUEUE, CHECKS_QUEUE]
    assert max(started) == 2
    await db.dispose()
