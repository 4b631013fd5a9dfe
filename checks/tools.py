"""Run a checker that reads the code and never runs it (ruff, bandit), outside the sandbox."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from checks.findings import tail
from checks.sandbox import minimal_env
from checks.workspace import Workspace
from core.contracts import ChecksReport

TOOL_TIMEOUT_SECONDS = 120.0
"""Wall clock for ruff or bandit."""


async def run_tool(
    name: str, args: list[str], workspace: Workspace, report: ChecksReport, timeout_seconds: float
) -> str | None:
    """Run a checker next to this interpreter; its stdout, or None (and a note) on failure."""
    binary = Path(sys.executable).parent / name
    if not binary.exists():
        report.notes.append(f"{name} is not installed next to {sys.executable}: it did not run")
        return None
    proc = await asyncio.create_subprocess_exec(
        str(binary),
        *args,
        cwd=workspace.root,
        env=minimal_env(workspace.scratch),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout_seconds)
    except TimeoutError:
        report.notes.append(f"{name} did not finish within {timeout_seconds:g} s")
        return None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if not stdout.strip() and proc.returncode not in (0, None):
        report.notes.append(
            f"{name} failed (exit code {proc.returncode}): {tail(stderr.decode(errors='replace'))}"
        )
        return None
    return stdout.decode("utf-8", errors="replace")
