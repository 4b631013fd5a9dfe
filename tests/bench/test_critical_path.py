"""The benches' critical path: each task weighted by its work, model time alone beside it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory

from bench.common import step_floor
from bench.makespan import StepCosts, floor_ratio, ideal_seconds, step_costs, work_seconds
from bench.overhead import overhead_per_call
from core.contracts import CALL_MODEL, RunState, TaskState
from tests.helpers import HISTORIES


def state() -> RunState:
    """design -> (backend | frontend) -> review; the backend ran its tests and was checked."""
    tasks = [
        TaskState(id="design", role="ux_engineer", turns=2),
        TaskState(
            id="backend",
            role="backend_engineer",
            depends_on=["design"],
            turns=3,
            command_seconds=2.5,
            check_seconds=1.0,
        ),
        TaskState(id="frontend", role="frontend_engineer", depends_on=["design"], turns=5),
        TaskState(
            id="review",
            role="code_reviewer",
            depends_on=["backend", "frontend"],
            turns=1,
            check_seconds=0.5,
        ),
    ]
    return RunState(run_id="r", goal="g", template="t", tasks=tasks)


def test_a_task_weighs_its_model_time_commands_and_checks() -> None:
    backend = state().task("backend")
    assert work_seconds(backend, 1.0) == 6.5
    assert work_seconds(backend, 1.0, model_only=True) == 3.0


def test_the_path_runs_through_the_branch_with_the_most_work() -> None:
    # Model time alone: design 2 + frontend 5 + review 1 = 8 (the backend's 3 is shorter).
    assert ideal_seconds(state(), 1.0, model_only=True) == 8.0
    # With its tests and checks the backend (6.5) outweighs the frontend (5): 2 + 6.5 + 1.5.
    assert ideal_seconds(state(), 1.0) == 10.0


def test_overhead_per_call_leaves_out_the_work_on_the_path() -> None:
    # At zero latency the path is the backend's commands and checks and the review's checks.
    assert ideal_seconds(state(), 0.0) == 4.0
    assert abs(overhead_per_call(4.0 + 1.1, state()) - 0.1) < 1e-9


def _event(event_id: int, at_ms: float, **attributes: object) -> HistoryEvent:
    event = HistoryEvent(event_id=event_id, **attributes)  # type: ignore[arg-type]
    event.event_time.FromDatetime(START + timedelta(milliseconds=at_ms))
    return event


START = datetime(2026, 12, 6, tzinfo=UTC)


def test_step_costs_are_the_medians_of_a_history() -> None:
    # A run that starts, calls the model once (1 s latency) and runs one check.
    events = [
        _event(1, 0, workflow_execution_started_event_attributes={}),
        _event(2, 0, workflow_task_scheduled_event_attributes={}),
        _event(3, 2, workflow_task_started_event_attributes={"scheduled_event_id": 2}),
        _event(4, 10, workflow_task_completed_event_attributes={"started_event_id": 3}),
        _event(
            5, 10, activity_task_scheduled_event_attributes={"activity_type": {"name": CALL_MODEL}}
        ),
        _event(6, 13, activity_task_started_event_attributes={"scheduled_event_id": 5}),
        _event(
            7,
            1033,
            activity_task_completed_event_attributes={
                "scheduled_event_id": 5,
                "started_event_id": 6,
            },
        ),
        _event(8, 1033, workflow_task_scheduled_event_attributes={}),
        _event(9, 1036, workflow_task_started_event_attributes={"scheduled_event_id": 8}),
        _event(10, 1045, workflow_task_completed_event_attributes={"started_event_id": 9}),
        _event(
            11,
            1045,
            activity_task_scheduled_event_attributes={"activity_type": {"name": "run_checks"}},
        ),
        _event(12, 1047, activity_task_started_event_attributes={"scheduled_event_id": 11}),
        _event(
            13,
            1100,
            activity_task_completed_event_attributes={
                "scheduled_event_id": 11,
                "started_event_id": 12,
            },
        ),
    ]

    steps = step_costs(events, latency=1.0)

    assert steps == pytest.approx(StepCosts(0.0025, 0.020, 0.0025, 0.0085, 0.010), abs=1e-6)
    assert steps.line() == (
        "per model call (medians from the history): dispatch 2.5 ms, the call beyond its "
        "latency 20.0 ms, the workflow task after it 11.0 ms (2.5 to start, 8.5 to run); "
        "start to first call 10 ms"
    )


def test_step_costs_read_a_recorded_run() -> None:
    path = next(p for p in HISTORIES if p.stem == "sdlc_offline_v5")
    history = WorkflowHistory.from_json("run", path.read_text())

    steps = step_costs(history.events, latency=0.0)

    assert all(0 < value < 1 for value in steps)


def test_the_engine_floor_ratio_adds_one_step_per_model_call_on_the_path() -> None:
    # Work path 10 s at 1 s a call; the model-only path has 8 calls: 10 + 8 x 0.01 = 10.08.
    assert floor_ratio(state(), 1.0, 0.01) == pytest.approx(1.008)


async def test_the_engine_floor_per_step_is_measured_on_a_real_server(
    dev_client: Client,
) -> None:
    step = await step_floor(dev_client, runs=1)
    # A workflow task, a dispatch and an activity over loopback: real, and far below 1 s.
    assert 0.0005 < step < 1.0
