"""Makespan of an `sdlc` run against its critical path, with a simulated model latency.

    .venv/bin/python -m bench.makespan [--latency 1.0]

Every offline model call sleeps `--latency` seconds. The critical path is the
longest chain of tasks weighted by (turns x latency); a scheduler that truly runs
backend and frontend together gets a makespan within a few percent of it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from agents.roles import ROLES
from bench.common import dev_server, sqlite_database, timed_sdlc_run
from core.services.templates import load_template
from offline import OfflineProvider
from workflows.dag import critical_path
from workflows.dsl import compile_plan


async def main(latency: float) -> None:
    async with dev_server() as env:
        with tempfile.TemporaryDirectory() as tmp:
            db = sqlite_database(Path(tmp))
            makespan, state = await timed_sdlc_run(
                env, db, OfflineProvider(latency_seconds=latency)
            )
            await db.dispose()

    plan = compile_plan(load_template("sdlc", ROLES), goal=state.goal, run_id=state.run_id)
    model_time = {t.id: t.turns * latency for t in state.tasks}
    ideal = critical_path(plan.tasks, model_time)
    serial = sum(model_time.values())
    print(f"simulated model latency per call: {latency:.2f} s")
    print(f"model time if run one task at a time: {serial:.2f} s")
    print(f"critical path (longest chain of model time): {ideal:.2f} s")
    print(f"makespan (wall time of the run): {makespan:.2f} s")
    print(f"makespan / critical path: {makespan / ideal:.3f} (target <= 1.05)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency", type=float, default=1.0)
    asyncio.run(main(parser.parse_args().latency))
    # Leave without interpreter teardown: the Temporal runtime can abort it (sdk-python#300).
    sys.stdout.flush()
    os._exit(0)
