"""Every recorded history still replays against today's workflow code."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from core.contracts import CALL_MODEL, RUN_TOOL_CALLS, ExpansionStatus, RunState, RunStatus
from core.infrastructure.settings import Settings
from core.infrastructure.temporal import data_converter
from tests.helpers import HISTORIES
from workflows.goal import GoalWorkflow


def test_an_sdlc_history_is_recorded() -> None:
    assert any(path.name.startswith("sdlc") for path in HISTORIES)


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"run-{path.stem}", path.read_text())
    # The codec's converter reads payloads written with and without the codec alike.
    converter = data_converter(Settings(_env_file=None))  # type: ignore[call-arg]
    replayer = Replayer(workflows=[GoalWorkflow], data_converter=converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


async def test_a_recorded_history_expands_the_implementation_stage() -> None:
    """v4 was recorded with the tech lead's work breakdown expanding `implementation`."""
    path = next(p for p in HISTORIES if p.stem == "sdlc_offline_v4")
    history = WorkflowHistory.from_json(f"run-{path.stem}", path.read_text())
    converter = data_converter(Settings(_env_file=None))  # type: ignore[call-arg]
    completed = history.events[-1].workflow_execution_completed_event_attributes
    [state] = await converter.decode(completed.result.payloads, [RunState])
    assert state.status == RunStatus.COMPLETED
    [stage] = state.expansions
    assert (stage.stage, stage.status) == ("implementation", ExpansionStatus.EXPANDED)
    assert {t.id for t in state.tasks if t.stage == "implementation"} == set(stage.tasks)


async def test_a_recorded_history_runs_tool_calls_with_the_model_calls() -> None:
    """v5 was recorded with each turn's tool calls run in its model call: the only tool-call
    activities are the backend's two turns with commands, and no local activity runs them."""
    path = next(p for p in HISTORIES if p.stem == "sdlc_offline_v5")
    history = WorkflowHistory.from_json(f"run-{path.stem}", path.read_text())
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    markers = [
        e.marker_recorded_event_attributes.details["data"].payloads[0].data
        for e in history.events
        if e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    ]
    assert scheduled.count(RUN_TOOL_CALLS) == 2 and scheduled.count(CALL_MODEL) == 40
    assert markers and not any(RUN_TOOL_CALLS.encode() in data for data in markers)
