"""Record the event history of one offline `sdlc` run for the replay test.

    .venv/bin/python -m tests.record_history tests/histories/sdlc_offline_v2.json

Record a new file (keep the old ones) whenever a released change alters the
workflow's commands; `tests/test_replay.py` replays every file here. Payloads are
written with the deployment's codec (compressed, as a default deployment stores them);
v1 was recorded before the codec existed and still replays.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from core.infrastructure.settings import Settings
from core.infrastructure.temporal import data_converter, ensure_search_attributes
from core.persistence.db import Database
from offline import OfflineProvider
from tests.conftest import binary
from tests.helpers import make_plan, started


async def record(out: Path) -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        data_converter=data_converter(Settings(_env_file=None)),  # type: ignore[call-arg]
    )
    try:
        await ensure_search_attributes(env.client)
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite+aiosqlite:///{tmp}/orchestrator.db")
            plan = make_plan()
            async with started(env.client, db, OfflineProvider(), plan) as handle:
                await handle.result()
                history = await handle.fetch_history()
            await db.dispose()
        out.write_text(history.to_json())
        print(f"recorded {len(history.events)} events of {handle.id} to {out}")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(record(Path(sys.argv[1])))
