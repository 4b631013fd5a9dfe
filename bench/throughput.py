"""Throughput: N concurrent offline `sdlc` goals against real worker processes.

    python -m bench.throughput [--runs 100] [--latency 0.5] [--workers 1] [--database-url URL]

Starts the dev server `orchestrator up` runs (same command line, SQLite file history) and
`--workers` `orchestrator worker` subprocesses serving every queue, so the memory measured
is the worker's own: each worker's peak resident set (VmHWM, kept by the kernel), the dev
server's, their sum, and the sampled peak of workers plus their children (the gate checks
run ruff, bandit and pytest in sandboxed subprocesses). Every offline model call sleeps `--latency` seconds. The
database is a fresh SQLite file unless `--database-url` names another (PostgreSQL:
`postgresql+asyncpg://...`). It also prints the concurrency settings the workers run
with, and the CPU seconds per run: the whole machine's busy time over the N runs
(`/proc/stat`; run it on an otherwise idle machine), split into the workers' own, the dev
server's, the sandboxed commands and checks' (as the workers' `/metrics` count them:
`orchestrator_sandbox_cpu_seconds`) and the rest. When the cores are busy, that, not the
ideal, bounds the throughput: the floor line says how far, from the sandboxed work alone
and with the orchestration's CPU added.

One run alone goes first (it also warms the worker up), then N runs start at once.

The ideal: N independent runs do not wait for each other, so N concurrent runs ideally
finish as fast as one: in the critical path of the first run's tasks, each weighted by
its work (model time, the commands its agent ran in the sandbox, the checks on its work:
`bench.makespan.ideal_seconds`), not by a measured makespan, which already contains the
costs this benchmark is after (orchestration, the database, waiting for a core). The path
of model time alone is printed beside it, and the one-run makespan: the gap between it
and the ideal is the per-run cost of orchestration, and N runs / one run shows how much
N runs slow each other down on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import statistics
import sys
import time
import uuid
from collections.abc import Mapping

from temporalio.client import WorkflowFailureError

from agents.roles import ROLES
from bench.common import (
    GOAL,
    FileDevServer,
    MemoryWatch,
    WorkerProcess,
    become_subreaper,
    cpu_seconds,
    cpu_spent,
    kill_orphans,
    machine_cpu_seconds,
    read_memory,
    sandbox_cpu,
    scratch_directory,
    worker_env,
)
from bench.makespan import ideal_seconds
from checks.tests import MENTIONED_PLUGINS
from core.contracts import RunState, RunStatus
from core.infrastructure.local_stack import free_port
from core.infrastructure.settings import Settings
from core.infrastructure.temporal import start_run
from core.persistence.db import Database
from core.services.templates import load_template
from workflows.dsl import compile_plan

# Worker defaults in workers/main.py and the Temporal SDK, printed with the run.
ORCHESTRATOR_QUEUE_ACTIVITIES = 100
SDK_WORKFLOW_TASK_SLOTS = 100
SDK_MAX_CACHED_WORKFLOWS = 1000


def concurrency_lines(settings: Settings, workers: int) -> list[str]:
    agent = settings.provider.agent_max_concurrent_activities
    rate = settings.provider.agent_activities_per_second
    return [
        f"workers: {workers} process(es), each serving every queue",
        "AGENT_MAX_CONCURRENT_ACTIVITIES (model calls at once per agent queue per worker): "
        + (str(agent) if agent else "unset = 100"),
        "AGENT_ACTIVITIES_PER_SECOND (per agent queue, all workers): "
        + (f"{rate:g}" if rate else "unset = no limit"),
        f"ORCHESTRATOR_MAX_CONCURRENT_CHECKS (gate checks at once per worker): "
        f"{settings.sandbox.max_concurrent_checks}",
        f"orchestrator queue activities at once per worker: {ORCHESTRATOR_QUEUE_ACTIVITIES}; "
        f"workflow task slots: {SDK_WORKFLOW_TASK_SLOTS}; "
        f"cached workflows: {SDK_MAX_CACHED_WORKFLOWS} (SDK defaults)",
    ]


async def main(runs: int, latency: float, workers: int, database_url: str | None) -> int:
    become_subreaper()
    with scratch_directory("bench-throughput-") as tmp:
        url = database_url or f"sqlite+aiosqlite:///{tmp / 'orchestrator.db'}"
        server = FileDevServer(tmp / "temporal")
        processes: list[WorkerProcess] = []
        db = Database(url)
        try:
            await db.ensure_schema()  # once, before several workers race to create it
            await server.start()
            client = await server.client()
            env = worker_env(
                server.address, url, tmp / "worker", OFFLINE_LATENCY_SECONDS=str(latency)
            )
            processes = [
                WorkerProcess(env, tmp / f"worker-{n}.log", metrics_port=free_port())
                for n in range(workers)
            ]
            for process in processes:
                process.start()
            await asyncio.gather(*(process.ready() for process in processes))
            measured = [p.pid for p in processes] + [server.pid]  # the workers', the server's
            at_rest = [read_memory(pid)[0] for pid in measured]
            template = load_template("sdlc", ROLES)

            async def one(i: int) -> tuple[float, RunState | None]:
                plan = compile_plan(
                    template, goal=f"{GOAL} (run {i})", run_id=uuid.uuid4().hex, roles=ROLES
                )
                started = time.perf_counter()
                try:
                    state = await (await start_run(client, plan)).result()
                except WorkflowFailureError:
                    state = None  # counted as not completed
                return time.perf_counter() - started, state

            with (
                MemoryWatch([p.pid for p in processes]) as memory,
                MemoryWatch([server.pid]) as server_memory,
            ):
                alone, first = await one(0)
                if first is None or first.status != RunStatus.COMPLETED:
                    raise RuntimeError(f"the first run failed; see {processes[0].log}")
                cpu_before = [cpu_seconds(pid) for pid in measured]
                sandboxed_before = sandbox_cpu(processes)
                machine_before = machine_cpu_seconds()
                started = time.perf_counter()
                results = await asyncio.gather(*(one(i) for i in range(1, runs + 1)))
                wall = time.perf_counter() - started
                cpu = [cpu_seconds(pid) - b for pid, b in zip(measured, cpu_before, strict=True)]
                machine = machine_cpu_seconds() - machine_before
                sandboxed = cpu_spent(sandboxed_before, sandbox_cpu(processes))
        finally:
            for process in processes:
                process.stop()
            server.kill()
            kill_orphans()
            await db.dispose()

    states = [state for _, state in results]
    completed = sum(state is not None and state.status == RunStatus.COMPLETED for state in states)
    calls = sum(t.turns for state in states if state is not None for t in state.tasks)
    ideal = ideal_seconds(first, latency)
    per_run = sorted(seconds for seconds, _ in results)
    settings = Settings()  # the workers inherit this environment

    print(f"throughput: {runs} concurrent offline sdlc runs, model latency {latency:g} s/call")
    print(
        f"machine: {os.cpu_count()} cores; database {url.split(':', 1)[0]}; "
        "dev server as `orchestrator up` starts it (SQLite file history)"
    )
    for line in concurrency_lines(settings, workers):
        print(f"  {line}")
    print(f"completed runs: {completed}/{runs}")
    print(f"model calls: {calls} ({calls / runs:g} per run)")
    print(
        f"ideal (critical path of work, one run): {ideal:.2f} s; "
        f"of model time alone: {ideal_seconds(first, latency, model_only=True):.2f} s"
    )
    print(f"one run alone: {alone:.2f} s ({alone / ideal:.2f}x ideal)")
    print(
        f"total wall time for {runs} runs: {wall:.2f} s "
        f"({wall / ideal:.2f}x ideal, {wall / alone:.2f}x one run alone)"
    )
    print(
        f"per-run makespan under load: p50 {statistics.median(per_run):.2f} s, "
        f"max {per_run[-1]:.2f} s"
    )
    print(f"throughput: {runs / wall * 60:.1f} runs/min, {calls / wall:.1f} model calls/s")
    for line in cpu_lines(runs, wall, ideal, machine, cpu, sandboxed, os.cpu_count() or 1):
        print(line)
    for n, process in enumerate(processes):
        print(f"worker {n} peak RSS (VmHWM): {memory.hwm_kib.get(process.pid, 0) / 1024:.0f} MiB")
    print(f"peak RSS of workers + their children (sampled): {memory.peak_tree_kib / 1024:.0f} MiB")
    server_peak = max(server_memory.hwm_kib.values(), default=0)
    print(
        f"RSS at rest, before the first goal: workers {sum(at_rest[:-1]) / 1024:.0f} MiB, dev "
        f"server {at_rest[-1] / 1024:.0f} MiB ({sum(at_rest) / 1024:.0f} MiB together)"
    )
    print(
        f"dev server peak RSS (VmHWM): {server_peak / 1024:.0f} MiB; workers + dev server "
        f"(their own peaks added): {(sum(memory.hwm_kib.values()) + server_peak) / 1024:.0f} MiB"
    )
    return 0 if completed == runs else 1


def cpu_lines(
    runs: int,
    wall: float,
    ideal: float,
    machine: float,
    cpu: list[float],
    sandboxed: Mapping[str, float],
    cores: int,
) -> list[str]:
    """Where the CPU of the N runs went (`cpu`: each worker's, then the dev server's;
    `sandboxed`: the sandboxes', by purpose), and the wall time the sandboxed work alone
    allows on `cores`: no orchestration can bring N runs below that."""
    orchestration = sum(cpu)
    sandbox = sum(sandboxed.values())
    checks = sandboxed.get("tests", 0.0) + sandboxed.get("test_command", 0.0)
    rest = max(machine - orchestration - sandbox, 0.0)
    floor = sandbox / cores
    with_orchestration = (sandbox + orchestration) / cores
    return [
        f"CPU per run: {machine / runs:.2f} s: workers {sum(cpu[:-1]) / runs:.2f} s, dev server "
        f"{cpu[-1] / runs:.2f} s, sandboxes {sandbox / runs:.2f} s (agents' commands "
        f"{sandboxed.get('command', 0.0) / runs:.2f} s, checks {checks / runs:.2f} s), the "
        f"rest {rest / runs:.2f} s (the database, this process, other services on the "
        f"machine); {machine / wall:.2f} of {cores} cores busy",
        f"floor on {cores} cores: the sandboxed work alone {floor:.2f} s "
        f"({floor / ideal:.2f}x ideal); with the workers' and dev server's CPU "
        f"{with_orchestration:.2f} s ({with_orchestration / ideal:.2f}x ideal)",
        "pytest plugins of the sandbox's interpreter: "
        + "; ".join(f"{k}: {', '.join(v) or 'none'}" for k, v in pytest_plugins().items()),
    ]


def pytest_plugins() -> dict[str, list[str]]:
    """The `pytest11` entry points installed here: those every sandboxed pytest run loads,
    and those it loads only in a workspace that names them (`checks.tests.MENTIONED_PLUGINS`).
    A production checks worker has only the `checks` extra: fewer of either."""
    names = sorted(entry.name for entry in importlib.metadata.entry_points(group="pytest11"))
    return {
        "loaded by every run": [n for n in names if n not in MENTIONED_PLUGINS],
        "only where a file names them": [n for n in names if n in MENTIONED_PLUGINS],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per model call")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    if args.runs < 1 or args.workers < 1 or args.latency < 0:
        parser.error("--runs and --workers must be at least 1, --latency at least 0")
    try:
        code = asyncio.run(main(args.runs, args.latency, args.workers, args.database_url))
    except (OSError, RuntimeError, TimeoutError) as exc:  # a server or worker that failed
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    # Leave without interpreter teardown: the Temporal runtime can abort it (sdk-python#300).
    sys.stdout.flush()
    os._exit(code)
