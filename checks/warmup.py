"""Compile pytest's rewritten plugins once per worker, so sandboxed test runs start fast.

pytest rewrites the asserts of every module of a distribution that registers a plugin
(hypothesis, schemathesis, anyio, ...: about 250 modules here) and caches the result next
to the source as `__pycache__/*-pytest-<version>.pyc`. In the sandbox it can never write
that cache (the interpreter is read-only there, and PYTHONDONTWRITEBYTECODE is set), so
every sandboxed pytest run rewrote and compiled them all again: about 2 s of CPU before
the first test, most of a generated project's test run.

Collecting nothing from an empty folder once, as the worker, outside the sandbox, writes
those caches where the worker may write (a read-only install: nothing, and nothing
breaks). pytest in the sandbox then reads them, as it reads the interpreter's own `.pyc`
files: the same rewritten code, only not compiled again. No generated code runs here.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from checks.sandbox import minimal_env

WARMUP_TIMEOUT_SECONDS = 120.0
WARMUP_NICENESS = 10

_lock = threading.Lock()
_done = False


def warm_in_background() -> None:
    """Start the warm-up on a worker that runs checks and commands, off every run's path:
    the first test run waits for it only if it comes before the warm-up is done."""
    threading.Thread(target=warm_pytest, name="pytest-warmup", daemon=True).start()


def warm_pytest() -> None:
    """Run once per process; later calls return at once. Blocks: call it from a thread."""
    global _done
    with _lock:
        if _done:
            return
        _done = True
        with tempfile.TemporaryDirectory(prefix="orch-pytest-warmup-") as folder:
            env = minimal_env(Path(folder))
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            try:
                # The empty folder is the root, and no conftest.py above it is read.
                process = subprocess.Popen(
                    [
                        *(sys.executable, "-m", "pytest", "--collect-only", "-q"),
                        *("-p", "no:cacheprovider", f"--rootdir={folder}"),
                        f"--confcutdir={folder}",
                    ],
                    cwd=folder,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                # Behind the runs the worker serves as it starts: they come first on a core.
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, process.pid, WARMUP_NICENESS)
                try:
                    process.wait(timeout=WARMUP_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            except (OSError, subprocess.SubprocessError):
                return  # the tests still run, only slower
