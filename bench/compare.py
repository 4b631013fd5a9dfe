"""The project against the ideal, side by side: makespan, overhead per call, N-goal throughput.

    .venv/bin/python -m bench.compare [--quick]

One table, one row per measure, each from a real run on this machine:

- makespan: one offline `sdlc` run with every model call sleeping `--latency` (1 s), against
  its critical path (the longest chain of work through the tasks the run ran: model time,
  the sandboxed commands of the engineers and the checks; see `bench.makespan`);
- overhead per model call: one `sdlc` run at zero model latency, its wall time less the
  commands and checks on its critical path, divided by its model calls. Ideally zero;
  beside it the engine floor per step (one of 40 no-op activities in a row on the same
  server, each after a workflow task: what a model call costs in Temporal itself);
- throughput: `--runs` (50) goals started at once against one `orchestrator worker`
  process on the dev server `orchestrator up` runs, every call sleeping 0.2 s, against
  the ideal: N independent runs finish as fast as one, in its critical path. Each goal
  differs, so no two runs share a workspace (nor gate-check results). The row below it is
  the floor the goals' sandboxed commands and checks set on this machine's cores (their
  CPU, as the worker counts it, over the cores): no orchestration finishes them sooner;
- Temporal alone (`bench.engine_shape`): as many workflows, each as many activities in a
  row as one of those runs scheduled, every one sleeping 0.2 s, on a worker with nothing
  but Temporal's SDK, on the same kind of dev server. Its CPU per run and its peak memory
  are the ideal for the project's orchestration CPU (worker and dev server, sandboxes
  not counted) and for the project's peak memory (worker and dev server) on those goals.

`--quick` measures the same at a fraction of the cost (0.2 s makespan latency, 10 goals),
for a first look; `make bench` prints the full table. The goal column is issue 17's.
Other processes on the machine share its cores: the figures are as loaded as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass
from typing import Any

from temporalio.client import WorkflowFailureError, WorkflowHandle

from bench.common import (
    GOAL,
    FileDevServer,
    WorkerProcess,
    become_subreaper,
    cpu_spent,
    kill_orphans,
    sandbox_cpu,
    scratch_directory,
    sdlc_plan,
    worker_env,
)
from bench.engine_shape import Footprint, Metered, temporal_alone
from bench.makespan import ideal_seconds, timed
from bench.overhead import measure, overhead_per_call
from core.contracts import RunState, RunStatus
from core.infrastructure.local_stack import free_port
from core.infrastructure.temporal import start_run
from core.persistence.db import Database


@dataclass(frozen=True)
class Row:
    measure: str
    project: str
    ideal: str
    ratio: str
    goal: str


async def makespan(latency: float) -> Row:
    wall, state, _, _ = await timed(latency, fixed=False, goal=GOAL)
    ideal = ideal_seconds(state, latency)
    return Row(
        f"makespan of one sdlc run, {latency:g} s per call",
        f"{wall:.2f} s",
        f"{ideal:.2f} s",
        f"{wall / ideal:.3f}",
        "<= 1.03",
    )


async def overhead(floor_runs: int) -> Row:
    measured = await measure(floor_runs)
    return Row(
        "overhead per model call, zero latency",
        f"{overhead_per_call(measured.wall, measured.state) * 1000:.1f} ms",
        "0 ms",
        f"floor {measured.step * 1000:.1f} ms a step",
        "<= 30 ms",
    )


async def throughput(runs: int, latency: float) -> list[Row]:
    """`runs` goals at once against one worker process, after one alone to warm it up; and
    the floor their sandboxed work alone sets on this machine's cores."""
    become_subreaper()
    with scratch_directory("bench-compare-") as tmp:
        url = f"sqlite+aiosqlite:///{tmp / 'orchestrator.db'}"
        server = FileDevServer(tmp / "temporal")
        worker = WorkerProcess(
            worker_env(server.address, url, tmp / "worker", OFFLINE_LATENCY_SECONDS=str(latency)),
            tmp / "worker.log",
            metrics_port=free_port(),
        )
        db = Database(url)
        try:
            await db.ensure_schema()
            await server.start()
            client = await server.client()
            worker.start()
            await worker.ready()

            async def one(i: int) -> RunState | None:
                plan = sdlc_plan(goal=f"{GOAL} (compare run {i})")  # its own workspace
                try:
                    return await (await start_run(client, plan)).result()
                except WorkflowFailureError:
                    return None

            # The first run warms the worker up; its plan gives the ideal, its history the
            # shape Temporal alone is measured at.
            handle = await start_run(client, sdlc_plan(goal=f"{GOAL} (compare run 0)"))
            first = await handle.result()
            if first.status != RunStatus.COMPLETED:
                raise RuntimeError(f"the first run failed; see {worker.log}")
            steps = await activities_scheduled(handle)
            meter = Metered(worker.pid, server.pid)
            sandboxed_before = sandbox_cpu([worker])
            meter.start()
            states = await asyncio.gather(*(one(i) for i in range(1, runs + 1)))
            project = meter.footprint(runs)
            sandboxed = sum(cpu_spent(sandboxed_before, sandbox_cpu([worker])).values())
        finally:
            worker.stop()
            server.kill()
            kill_orphans()
            await db.dispose()
    completed = sum(s is not None and s.status == RunStatus.COMPLETED for s in states)
    engine = await temporal_alone(runs, steps, latency)
    ideal = ideal_seconds(first, latency)
    cores = os.cpu_count() or 1
    wall = project.wall_seconds
    return [
        Row(
            f"{runs} concurrent goals, {latency:g} s per call ({completed}/{runs} completed)",
            f"{wall:.1f} s",
            f"{ideal:.1f} s",
            f"{wall / ideal:.2f}",
            "<= 4" if runs >= 50 else "<= 1.5" if runs <= 10 else "-",
        ),
        Row(
            f"  their sandboxed work alone on {cores} cores ({sandboxed / runs:.2f} CPU s per goal)",
            f"{sandboxed / cores:.1f} s",
            f"{ideal:.1f} s",
            f"{sandboxed / cores / ideal:.2f}",
            "-",
        ),
        Row(
            f"  Temporal alone: {runs} workflows of {steps} activities of {latency:g} s in a row",
            f"{engine.wall_seconds:.1f} s",
            f"{steps * latency:.1f} s",
            f"{engine.wall_seconds / (steps * latency):.2f}",
            "-",
        ),
        *footprint_rows(project, engine),
    ]


def footprint_rows(project: Footprint, engine: Footprint) -> list[Row]:
    """The project's orchestration CPU and peak memory on those goals, against Temporal
    alone on the same number of workflows of the same length."""
    return [
        Row(
            "CPU per run, worker + dev server (ideal: Temporal alone)",
            f"{project.cpu:.2f} s",
            f"{engine.cpu:.2f} s",
            f"{project.cpu / engine.cpu:.2f}",
            "<= 0.3 s",
        ),
        Row(
            f"peak RSS, worker + dev server, {project.runs} goals (ideal: Temporal alone)",
            f"{project.peak_mib:.0f} MiB",
            f"{engine.peak_mib:.0f} MiB",
            f"{project.peak_mib / engine.peak_mib:.2f}",
            "<= 300 MiB",
        ),
    ]


async def activities_scheduled(handle: WorkflowHandle[Any, Any]) -> int:
    """How many activities a finished run scheduled, from its history."""
    history = await handle.fetch_history()
    return sum(e.HasField("activity_task_scheduled_event_attributes") for e in history.events)


def table(rows: list[Row]) -> list[str]:
    header = Row("measure", "project", "ideal", "project/ideal", "goal")
    widths = [max(len(getattr(r, f)) for r in [header, *rows]) for f in Row.__dataclass_fields__]
    return [
        "  ".join(
            value.ljust(width) if n == 0 else value.rjust(width)
            for n, (value, width) in enumerate(
                zip([r.measure, r.project, r.ideal, r.ratio, r.goal], widths, strict=True)
            )
        )
        for r in [header, *rows]
    ]


async def main(quick: bool) -> int:
    latency = 0.2 if quick else 1.0
    rows = [await makespan(latency), await overhead(5 if quick else 20)]
    rows += await throughput(10 if quick else 50, 0.2)
    print(
        f"bench.compare{' --quick' if quick else ''}: project vs ideal on {os.cpu_count()} cores, "
        "offline model, SQLite; other processes on the machine share its cores"
    )
    for line in table(rows):
        print(line)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller runs, for a first look")
    try:
        code = asyncio.run(main(parser.parse_args().quick))
    except (OSError, RuntimeError, TimeoutError) as exc:  # a server or worker that failed
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    # Leave without interpreter teardown: the Temporal runtime can abort it (sdk-python#300).
    sys.stdout.flush()
    os._exit(code)
