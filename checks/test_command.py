"""A change run's repository's own test command, run in the sandbox at the workspace root.

The repository knows best how its tests run (`make test`, `npm test`, `python -m pytest`):
its exit code is the verdict, and a failure is a blocking finding with the output's tail.
"""

from __future__ import annotations

import asyncio

from checks.findings import tail
from checks.sandbox import SandboxPathError, SandboxSession
from core.contracts import ChecksReport, Finding, Severity


async def run_test_command(
    command: str, session: SandboxSession | None, report: ChecksReport, timeout_seconds: float
) -> None:
    """Run `command` with `sh -c` in the session's workspace; without a session, a note."""
    if session is None:
        report.notes.append(f"the repository's test command `{command}` was not run: no sandbox")
        return
    try:
        result = await asyncio.to_thread(
            session.run, ["sh", "-c", command], timeout_seconds=timeout_seconds
        )
    except (SandboxPathError, FileNotFoundError) as exc:
        report.findings.append(_failed(command, f"could not start ({exc})"))
        return
    report.network_isolated = result.network_isolated
    if result.limit_reason is not None:
        report.findings.append(_failed(command, f"killed: {result.limit_reason}"))
    elif result.returncode != 0:
        output = tail(result.stdout + result.stderr)
        report.findings.append(
            _failed(command, f"exit code {result.returncode}" + (f": {output}" if output else ""))
        )
    else:
        report.notes.append(f"the repository's test command `{command}` passed")


def _failed(command: str, why: str) -> Finding:
    return Finding(
        source="tests",
        severity=Severity.HIGH,
        message=f"the repository's test command `{command}` failed: {why}",
        rule="repository-tests",
        suggested_fix="Make the repository's own tests pass again; run them with the bash tool.",
    )
