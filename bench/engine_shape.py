"""Temporal alone at a run's shape: the CPU and memory no orchestration on this engine can
go under, beside what `orchestrator worker` and its dev server spend on the same runs.

    .venv/bin/python -m bench.engine_shape [--runs 50] [--steps 45] [--latency 0.2]

`--runs` workflows start at once on the dev server `orchestrator up` runs (the same command
line: SQLite file history, the project's tuning), each `--steps` activities in a row that
only sleep `--latency`, served by `bench.floor_worker`: a worker process with Temporal's
SDK and nothing else. It prints their wall time, the CPU per run of the worker and of the
dev server, and the peak memory of the two. An `sdlc` run schedules 45 activities (40 model
calls, the checks and two tool runs), hence the default; `bench.compare` passes the count
read from its own run's history.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from bench.common import (
    FileDevServer,
    cpu_seconds,
    kill_tree,
    read_memory,
    scratch_directory,
)
from bench.floor import StepsWorkflow
from bench.floor_worker import ACTIVITY_QUEUE, SERVING, WORKFLOW_QUEUE

MiB = 1024
WORKER_START_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Footprint:
    """What a worker process and its dev server spent on a batch of runs."""

    runs: int
    wall_seconds: float
    worker_cpu: float
    """CPU seconds per run of the worker process (not its sandboxes)."""
    server_cpu: float
    """CPU seconds per run of the dev server."""
    rest_mib: float
    """RSS of the two together before the batch."""
    peak_mib: float
    """Their own peaks (VmHWM) added: neither ever held more."""

    @property
    def cpu(self) -> float:
        return self.worker_cpu + self.server_cpu


class Metered:
    """Reads a worker's and a dev server's CPU and memory around a batch of runs:
    `start()` before it, `footprint(runs)` after."""

    def __init__(self, worker: int, server: int) -> None:
        self.pids = (worker, server)
        self._cpu = (0.0, 0.0)
        self._rest_kib = 0
        self._started = 0.0

    def start(self) -> None:
        self._rest_kib = sum(read_memory(pid)[0] for pid in self.pids)
        self._cpu = (cpu_seconds(self.pids[0]), cpu_seconds(self.pids[1]))
        self._started = time.perf_counter()

    def footprint(self, runs: int) -> Footprint:
        wall = time.perf_counter() - self._started
        worker, server = (
            cpu_seconds(pid) - before for pid, before in zip(self.pids, self._cpu, strict=True)
        )
        return Footprint(
            runs=runs,
            wall_seconds=wall,
            worker_cpu=worker / runs,
            server_cpu=server / runs,
            rest_mib=self._rest_kib / MiB,
            peak_mib=sum(read_memory(pid)[1] for pid in self.pids) / MiB,
        )


async def temporal_alone(runs: int, steps: int, latency: float) -> Footprint:
    """`runs` workflows of `steps` activities that sleep `latency`, started at once, after one
    at zero latency to warm the worker and the server up. Both processes are killed with
    their trees afterwards; nothing else of the caller's is touched."""
    with scratch_directory("bench-engine-") as tmp:
        server = FileDevServer(tmp / "temporal")
        log = tmp / "floor-worker.log"
        worker: subprocess.Popen[bytes] | None = None
        try:
            await server.start()
            # Plain payloads on both sides, as the floor worker has no codec and no converter
            # of ours (`server.client()` would use the project's).
            client = await Client.connect(server.address)
            with log.open("wb") as out:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "bench.floor_worker", server.address],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=Path(__file__).resolve().parents[1],
                )
            deadline = time.monotonic() + WORKER_START_TIMEOUT_SECONDS
            while SERVING not in log.read_text():
                if worker.poll() is not None:
                    raise RuntimeError(f"the floor worker exited; see {log}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the floor worker did not start; see {log}")
                await asyncio.sleep(0.05)

            async def one(seconds: float) -> None:
                await client.execute_workflow(
                    StepsWorkflow.run,
                    args=[steps, ACTIVITY_QUEUE, seconds],
                    id=f"engine-{uuid.uuid4().hex}",
                    task_queue=WORKFLOW_QUEUE,
                )

            await one(0.0)
            meter = Metered(worker.pid, server.pid)
            meter.start()
            await asyncio.gather(*(one(latency) for _ in range(runs)))
            return meter.footprint(runs)
        finally:
            if worker is not None:
                kill_tree(worker.pid)
                worker.wait()
            server.kill()


def report(footprint: Footprint, steps: int, latency: float) -> list[str]:
    ideal = steps * latency
    return [
        f"Temporal alone: {footprint.runs} workflows at once, each {steps} activities of "
        f"{latency:g} s in a row (ideal {ideal:.1f} s)",
        f"wall time: {footprint.wall_seconds:.1f} s ({footprint.wall_seconds / ideal:.2f}x ideal)",
        f"CPU per run: {footprint.cpu:.3f} s (worker {footprint.worker_cpu:.3f} s, dev server "
        f"{footprint.server_cpu:.3f} s)",
        f"RSS of the worker and the dev server: {footprint.rest_mib:.0f} MiB at rest, "
        f"{footprint.peak_mib:.0f} MiB their peaks added",
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--steps", type=int, default=45)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    if args.runs < 1 or args.steps < 1 or args.latency <= 0:
        parser.error("--runs and --steps must be at least 1, --latency above 0")
    try:
        found = asyncio.run(temporal_alone(args.runs, args.steps, args.latency))
    except (OSError, RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.stdout.flush()
        os._exit(1)
    print("\n".join(report(found, args.steps, args.latency)))
    # Leave without interpreter teardown: the Temporal runtime can abort it (sdk-python#300).
    sys.stdout.flush()
    os._exit(0)
