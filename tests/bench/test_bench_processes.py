"""What the recovery and throughput benchmarks rely on: call-log lines that name their
ledger row, killing a process tree with nothing left behind, and reading peak memory."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

from agents.context import build_task_message
from agents.protocol import Message, ModelRequest, TextBlock
from bench.common import MemoryWatch, descendants, kill_tree
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
