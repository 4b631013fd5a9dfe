"""Every recorded history still replays against today's workflow code."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from core.contracts import ExpansionStatus, RunState, RunStatus
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
