"""A change run's repository's own test command, run in the sandbox at the workspace root.

The repository knows best how its tests run (`make test`, `npm test`, `python -m pytest`):
its exit code is the verdict, and a failure is a blocking finding with the output's tail.
Both gates run it; on the same files it runs once per run (`cache`), and the second gate
reuses the outcome.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from checks.cache import CheckCache, NoCache, digest
from checks.findings import tail
from checks.sandbox import SandboxPathError, SandboxSession
from checks.sessions import Sessions, as_sessions
from checks.warmup import warm_pytest
from core.contracts import ChecksReport, Finding, Severity


class CommandOutcome(BaseModel):
    """What the command added to the report, as stored for reuse."""

    part: ChecksReport
    network_isolated: bool = False
    keep: bool = False


async def run_test_command(
    command: str,
    session: SandboxSession | Sessions | None,
    report: ChecksReport,
    timeout_seconds: float,
    *,
    cache: CheckCache | None = None,
    workspace_key: str = "",
) -> bool:
    """Run `command` with `sh -c` in the session's workspace; without a session, a note.

    `workspace_key` names the files it runs on (`checks.cache.workspace_digest`); with a
    cache, the outcome on those files is reused. True when it was.
    """
    sessions = as_sessions(session)
    store = cache if cache is not None and workspace_key else NoCache()
    key = digest("test-command", command, workspace_key, f"{timeout_seconds:g}")

    async def run() -> tuple[str, bool]:
        outcome = await _run(command, sessions, report.gate, timeout_seconds)
        return outcome.model_dump_json(), outcome.keep

    text, reused = await store.once("test-command", key, run)
    outcome = CommandOutcome.model_validate_json(text)
    report.findings += outcome.part.findings
    report.notes += outcome.part.notes
    report.network_isolated = outcome.network_isolated
    return reused


async def _run(
    command: str, sessions: Sessions, gate: str, timeout_seconds: float
) -> CommandOutcome:
    part = ChecksReport(gate=gate)
    session = await sessions.get()
    if session is None:
        part.notes.append(f"the repository's test command `{command}` was not run: no sandbox")
        return CommandOutcome(part=part)
    await asyncio.to_thread(warm_pytest)  # the command may well be pytest
    try:
        result = await asyncio.to_thread(
            session.run,
            ["sh", "-c", command],
            timeout_seconds=timeout_seconds,
            purpose="test_command",
        )
    except (SandboxPathError, FileNotFoundError) as exc:
        part.findings.append(_failed(command, f"could not start ({exc})"))
        return CommandOutcome(part=part)
    if result.limit_reason is not None:
        part.findings.append(_failed(command, f"killed: {result.limit_reason}"))
    elif result.returncode != 0:
        output = tail(result.stdout + result.stderr)
        part.findings.append(
            _failed(command, f"exit code {result.returncode}" + (f": {output}" if output else ""))
        )
    else:
        part.notes.append(f"the repository's test command `{command}` passed")
    return CommandOutcome(
        part=part, network_isolated=result.network_isolated, keep=result.limit_reason is None
    )


def _failed(command: str, why: str) -> Finding:
    return Finding(
        source="tests",
        severity=Severity.HIGH,
        message=f"the repository's test command `{command}` failed: {why}",
        rule="repository-tests",
        suggested_fix="Make the repository's own tests pass again; run them with the bash tool.",
    )
