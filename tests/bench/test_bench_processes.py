"""What the recovery and throughput benchmarks rely on: call-log lines that name their
ledger row, killing a process tree with nothing left behind, and reading peak memory."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Histogram, start_http_server

from agents.context import build_task_message
from agents.protocol import Message, ModelRequest, TextBlock
from bench.common import (
    MemoryWatch,
    WorkerProcess,
    cpu_spent,
    descendants,
    kill_tree,
    sandbox_cpu,
)
from bench.throughput import cpu_lines
from core.infrastructure.local_stack import free_port
from offline import OFFLINE_MODEL, OfflineProvider


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_call_log_line_names_the_response_id_the_ledger_stores(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    message = build_task_message(
        goal="Build a bookstore inventory service",
        task_id="requirements",
        role="business_analyst",
        description="Write the requirements.",
        upstream=[],
    )
    request = ModelRequest(
        model=OFFLINE_MODEL,
        system="You are an agent.",
        messages=[Message(role="user", content=[TextBlock(text=message)])],
        role="business_analyst",
    )
    response = asyncio.run(OfflineProvider(call_log=log).complete(request))
    [line] = [json.loads(text) for text in log.read_text().splitlines()]
    assert line["id"] == response.id
    assert line["pid"] == os.getpid()
    assert line["role"] == "business_analyst" and line["turn"] == 0
    assert isinstance(line["at"], float)


def test_kill_tree_kills_children_that_left_the_process_group(tmp_path: Path) -> None:
    # A child in its own session (as the check sandbox starts) escapes a group kill.
    script = "sleep 300 & setsid sleep 300 & echo started > ready; wait"
    parent = subprocess.Popen(["sh", "-c", script], cwd=tmp_path, start_new_session=True)
    try:
        while not (tmp_path / "ready").exists() or len(descendants(parent.pid)) < 2:
            assert parent.poll() is None
            time.sleep(0.01)
        children = descendants(parent.pid)
        kill_tree(parent.pid)
        parent.wait()
        while any(running(child) for child in children):
            time.sleep(0.01)  # SIGKILL is delivered asynchronously; the loop ends when it is
        assert not any(running(child) for child in children)
    finally:
        kill_tree(parent.pid)


def test_memory_watch_reports_the_kernel_peak_of_a_process() -> None:
    child = subprocess.Popen(["sleep", "300"])
    try:
        watch = MemoryWatch([os.getpid(), child.pid])
        watch.sample()
        assert watch.hwm_kib[os.getpid()] > 0 and watch.hwm_kib[child.pid] > 0
        assert watch.peak_tree_kib > 0
    finally:
        child.kill()
        child.wait()


def test_a_workers_sandbox_cpu_is_read_from_its_metrics_endpoint(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    histogram = Histogram("orchestrator_sandbox_cpu_seconds", "", ["purpose"], registry=registry)
    for purpose, seconds in (("command", 0.5), ("command", 1.25), ("tests", 0.25)):
        histogram.labels(purpose).observe(seconds)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        worker = WorkerProcess({}, tmp_path / "worker.log", metrics_port=port)
        before = {"command": 0.5}
        assert worker.sandbox_cpu_seconds() == {"command": 1.75, "tests": 0.25}
        assert sandbox_cpu([worker, worker]) == {"command": 3.5, "tests": 0.5}
        assert cpu_spent(before, sandbox_cpu([worker])) == {"command": 1.25, "tests": 0.25}
    finally:
        server.shutdown()
        thread.join()


def test_the_cpu_lines_split_the_machine_and_bound_the_wall_time() -> None:
    # 10 runs: the machine busy 42 s, two workers 5 + 4 s, the dev server 9 s, sandboxes 22 s.
    lines = cpu_lines(
        10,
        wall=25.0,
        ideal=10.0,
        machine=42.0,
        cpu=[5.0, 4.0, 9.0],
        sandboxed={"command": 20.0, "tests": 1.5, "test_command": 0.5},
        cores=2,
    )

    assert lines[0].startswith(
        "CPU per run: 4.20 s: workers 0.90 s, dev server 0.90 s, sandboxes 2.20 s "
        "(agents' commands 2.00 s, checks 0.20 s), the rest 0.20 s"
    )
    assert lines[0].endswith("1.68 of 2 cores busy")
    assert lines[1] == (
        "floor on 2 cores: the sandboxed work alone 11.00 s (1.10x ideal); "
        "with the workers' and dev server's CPU 20.00 s (2.00x ideal)"
    )
    assert lines[2].startswith("pytest plugins of the sandbox's interpreter: loaded by every run: ")
