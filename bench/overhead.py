"""Orchestration overhead per model call, against the engine floor on the same server.

    .venv/bin/python -m bench.overhead [--floor-runs 20]

Prints: the engine floor (median wall time of a workflow running one no-op
activity, and of one step in a longer workflow: what a model call costs Temporal itself),
the wall time of a whole offline `sdlc` run at zero model latency, the work
on its critical path that is not orchestration (the sandboxed commands the engineers
run, and the checks on their work: `bench.makespan`'s work path at zero latency), and
what is left per model call, also divided by the floor per step; and how late a 50 ms workflow timer
fires on that server (a retry's backoff, a heartbeat timeout and a person's deadline are
timers too).
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
from typing import NamedTuple

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from bench.common import FLOOR_STEPS, dev_server, sqlite_database, step_floor, timed_sdlc_run
from bench.floor import TIMER_SECONDS, FloorWorkflow, TimerWorkflow, noop
from bench.makespan import ideal_seconds
from core.contracts import RunState
from offline import OfflineProvider

FLOOR_QUEUE = "bench-floor"


class Measured(NamedTuple):
    floor: float
    """Median wall time of a workflow running one no-op activity."""
    step: float
    """The engine's cost of one step inside a workflow (`bench.common.step_floor`)."""
    timer_late: float
    """Median of how late a 50 ms workflow timer fired."""
    wall: float
    """Wall time of a zero-latency sdlc run."""
    state: RunState


async def measure(floor_runs: int) -> Measured:
    """The engine floor and timer lateness, then a zero-latency sdlc run; in seconds."""
    async with dev_server() as env:
        floors, lateness = [], []
        async with Worker(
            env.client,
            task_queue=FLOOR_QUEUE,
            workflows=[FloorWorkflow, TimerWorkflow],
            activities=[noop],
        ):
            for _ in range(floor_runs + 2):
                started = time.perf_counter()
                await env.client.execute_workflow(
                    FloorWorkflow.run, id=f"floor-{uuid.uuid4().hex}", task_queue=FLOOR_QUEUE
                )
                floors.append(time.perf_counter() - started)
                lateness.append(await timer_lateness(env.client))
        # The first runs warm up connections and caches.
        floor, timer_late = statistics.median(floors[2:]), statistics.median(lateness[2:])
        step = await step_floor(env.client)

        with tempfile.TemporaryDirectory() as tmp:
            db = sqlite_database(Path(tmp))
            await timed_sdlc_run(env, db, OfflineProvider())  # warm-up
            wall, state = await timed_sdlc_run(env, db, OfflineProvider())
            await db.dispose()
    return Measured(floor, step, timer_late, wall, state)


async def timer_lateness(client: Client) -> float:
    handle = await client.start_workflow(
        TimerWorkflow.run, id=f"timer-{uuid.uuid4().hex}", task_queue=FLOOR_QUEUE
    )
    await handle.result()
    times = {
        event.event_type: event.event_time.ToDatetime()
        for event in (await handle.fetch_history()).events
        if event.event_type
        in (EventType.EVENT_TYPE_TIMER_STARTED, EventType.EVENT_TYPE_TIMER_FIRED)
    }
    waited = times[EventType.EVENT_TYPE_TIMER_FIRED] - times[EventType.EVENT_TYPE_TIMER_STARTED]
    return waited.total_seconds() - TIMER_SECONDS


def overhead_per_call(wall: float, state: RunState) -> float:
    """What the orchestrator adds per model call: the wall time less the work on the
    critical path (at zero latency, its sandboxed commands and checks)."""
    calls = sum(t.turns for t in state.tasks)
    return (wall - ideal_seconds(state, 0.0)) / calls


async def main(floor_runs: int) -> None:
    floor, step, timer_late, wall, state = await measure(floor_runs)
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
    print(
        f"engine floor per workflow step ({FLOOR_STEPS} no-op activities in a row, each after "
        f"a workflow task, median): {step * 1000:.1f} ms"
    )
    print(f"overhead per model call / engine floor per step: {per_call / step:.2f}x")
    print(
        f"a {TIMER_SECONDS * 1000:.0f} ms workflow timer fires {timer_late * 1000:.0f} ms late "
        f"(median of {floor_runs}; a retry's backoff and a heartbeat timeout are timers too)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--floor-runs", type=int, default=20)
    asyncio.run(main(parser.parse_args().floor_runs))
    # Leave without interpreter teardown: the Temporal runtime can abort it (sdk-python#300).
    sys.stdout.flush()
    os._exit(0)
