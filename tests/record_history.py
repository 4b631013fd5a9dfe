"""Record the event history of one offline run for the replay test.

    .venv/bin/python -m tests.record_history tests/histories/sdlc_offline_v2.json
    .venv/bin/python -m tests.record_history tests/histories/approval_rejected_v1.json approval-rejected
    .venv/bin/python -m tests.record_history tests/histories/change_offline_v1.json change

`sdlc` (the default) runs the `sdlc` template to its end; `approval-rejected` waits at a
human gate (its status row, labelled escalation timers), takes a rejection by the
`submit_decision` update and fails its execution after recording its state; `change` runs
the `change` template from a fixture repository (its workspace seeded, the repository's
tests in the gates).

Record a new file (keep the old ones) whenever a released change alters the
workflow's commands; `tests/workflows/test_replay.py` replays every file here. Payloads are
written with the deployment's codec (compressed, as a default deployment stores them);
v1 was recorded before the codec existed and still replays.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from agents.repomap import outline_json
from core.contracts import Decision, DecisionKind, RunPlan, RunState
from core.infrastructure.settings import RepositorySettings, Settings
from core.infrastructure.temporal import data_converter, ensure_search_attributes
from core.persistence.db import Database
from core.services.repositories import import_local
from offline import OfflineProvider
from tests.conftest import binary
from tests.helpers import TEMPLATES, make_plan, started, wait_until
from tests.workflows.test_change_run import GOAL, make_repository
from workflows.goal import GoalWorkflow

Handle = WorkflowHandle[Any, RunState]


async def _to_the_end(handle: Handle) -> None:
    await handle.result()


async def _rejected_at_the_gate(handle: Handle) -> None:
    async def asked() -> bool:
        return bool(await handle.query(GoalWorkflow.pending_decisions))

    await wait_until(asked)
    await handle.execute_update(
        GoalWorkflow.submit_decision,
        Decision(gate="approval", decision=DecisionKind.REJECT, by="recorder"),
    )
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()


SCENARIOS: dict[str, tuple[str, Callable[[Handle], Awaitable[None]]]] = {
    "sdlc": ("sdlc", _to_the_end),
    "approval-rejected": (str(TEMPLATES / "approval.yaml"), _rejected_at_the_gate),
    "change": ("change", _to_the_end),
}


async def _plan(db: Database, scenario: str, template: str, tmp: Path) -> RunPlan:
    """The scenario's plan; `change` starts from a fixture repository stored in `db`."""
    if scenario != "change":
        return make_plan(template=template)
    repository = await import_local(
        db, RepositorySettings(), "default", make_repository(tmp), outline=outline_json
    )
    return make_plan(goal=GOAL, template=template, repository=repository)


async def record(out: Path, scenario: str = "sdlc") -> None:
    template, drive = SCENARIOS[scenario]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        data_converter=data_converter(Settings(_env_file=None)),  # type: ignore[call-arg]
    )
    try:
        await ensure_search_attributes(env.client)
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite+aiosqlite:///{tmp}/orchestrator.db")
            plan = await _plan(db, scenario, template, Path(tmp))
            async with started(env.client, db, OfflineProvider(), plan) as handle:
                await drive(handle)
                history = await handle.fetch_history()
            await db.dispose()
        out.write_text(history.to_json())
        print(f"recorded {len(history.events)} events of {handle.id} to {out}")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(record(Path(sys.argv[1]), *sys.argv[2:3]))
