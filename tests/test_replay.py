"""Every recorded history still replays against today's workflow code."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.goal import GoalWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_an_sdlc_history_is_recorded() -> None:
    assert any(path.name.startswith("sdlc") for path in HISTORIES)


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(f"run-{path.stem}", path.read_text())
    replayer = Replayer(workflows=[GoalWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
