"""Orchestration overhead per model call, against the engine floor on the same server.

    .venv/bin/python -m bench.overhead [--floor-runs 20]

Prints: the engine floor (median wall time of a workflow running one no-op
activity), the wall time of a whole offline `sdlc` run at zero model latency, the work
on its critical path that is not orchestration (the sandboxed commands the engineers
run, and the checks on their work: `bench.makespan`'s work path at zero latency), and
what is left per model call, also divided by the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from temporalio.worker import Worker

from bench.common import dev_server, sqlite_database, timed_sdlc_run
from bench.floor import FloorWorkflow, noop
from bench.makespan import ideal_seconds
from core.contracts import RunState
from offline import OfflineProvider

FLOOR_QUEUE = "bench-floor"


async def measure(floor_runs: int) -> tuple[float, float, RunState]:
    """(engine floor, wall time of a zero-latency sdlc run, its state), in seconds."""
    async with dev_server() as env:
        floors = []
        async with Worker(
            env.client, task_queue=FLOOR_QUEUE, workflows=[FloorWorkflow], activities=[noop]
        ):
            for _ in range(floor_runs + 2):
                started = time.perf_counter()
                await env.client.execute_workflow(
                    FloorWorkflow.run, id=f"floor-{uuid.uuid4().hex}", task_queue=FLOOR_QUEUE
                )
                floors.append(time.perf_counter() - started)
        floor = statistics.median(floors[2:])  # the first runs warm up connections and caches

        with tempfile.TemporaryDirectory() as tmp:
            db = sqlite_database(Path(tmp))
            await timed_sdlc_run(env, db, OfflineProvider())  # warm-up
            wall, state = await timed_sdlc_run(env, db, OfflineProvider())
            await db.dispose()
    return floor, wall, state


def overhead_per_call(wall: float, state: RunState) -> float:
    """What the orchestrator adds per model call: the wall time less the work on the
    critical path (at zero latency, its sandboxed commands and checks)."""
    calls = sum(t.turns for t in state.tasks)
    return (wall - ideal_seconds(state, 0.0)) / calls


async def main(floor_runs: int) -> None:
    floor, wall, state = await measure(floor_runs)
    calls = sum(t.turns for t in state.tasks)
    work = ideal_seconds(state, 0.0)
    per_call = overhead_per_call(wall, state)
    print(
        f"engine floor (1 no-op activity workflow, median of {floor_runs}): {floor * 1000:.1f} ms"
    )
    print(f"sdlc run, offline model at zero latency: {wall * 1000:.0f} ms for {calls} model calls")
    print(f"sandboxed commands and checks on its critical path: {work * 1000:.0f} ms")
    print(
        f"orchestration overhead per model call: {per_call * 1000:.1f} ms "
        f"(wall / calls: {wall / calls * 1000:.1f} ms; target <= 30 ms)"
    )
    print(f"overhead per model call / engine floor: {per_call / floor:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--floor-runs", type=int, default=20)
    asyncio.run(main(parser.parse_args().floor_runs))
    # Leave without interpreter teardown: the Temporal runtime can abort it (sdk-python#300).
    sys.stdout.flush()
    os._exit(0)
