"""Which checks each checked gate runs, and running them on a run's files.

`code_review`: ruff on every Python file, then each generated project's own tests in the
sandbox; narrowed to some folders, it is also a task's own fast check of its work.
`security_review`: bandit's tests (as ruff's `S` rules, in-process checks, and bandit for
the few ruff lacks), a secret scan of every file, the dependency pins, and requirements
the sandbox cannot satisfy.
A check that could not run is always a note on the report, never a silent pass; a checked
gate kind with no entry in `GATE_CHECKS` is an error, never a gate that passes unchecked.

The checks of one gate run concurrently: the static checkers read their own copies of the
files, outside the sandbox, so the tests cannot change what they read. Each unit of work
is done once per run and content (`checks/cache.py`): a later check of the same files
reuses it, and its report says so in a note.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from checks.cache import CheckCache, NoCache, workspace_digest
from checks.dependencies import dependency_findings, sandbox_findings
from checks.findings import cap_low_findings
from checks.lint import lint
from checks.security import secret_findings, security_scan
from checks.sessions import LazySession, OpenSandbox, Sessions
from checks.test_command import run_test_command
from checks.tests import TEST_TIMEOUT_SECONDS, run_tests
from checks.tools import TOOL_TIMEOUT_SECONDS
from checks.workspace import Scope, Workspace, in_scope, planned
from core.contracts import ChecksReport, GateKind


@dataclass(frozen=True)
class CheckTimeouts:
    tests_seconds: float = TEST_TIMEOUT_SECONDS
    tools_seconds: float = TOOL_TIMEOUT_SECONDS


@dataclass(frozen=True)
class GateRun:
    """One gate's checks on one run's files."""

    workspace: Workspace
    sessions: Sessions
    """The sandbox session, opened when code has to run (None inside: no sandbox here)."""
    report: ChecksReport
    timeouts: CheckTimeouts
    test_command: str | None = None
    """A change run's repository's own test command: both gates run it."""
    cache: CheckCache = field(default_factory=NoCache)
    reused: list[str] = field(default_factory=list)
    """What an earlier check of the same files in this run had done already."""


GateChecks = Callable[[GateRun], Awaitable[None]]


async def code_review(run: GateRun) -> None:
    lint_part = ChecksReport(gate=run.report.gate)
    tests_part = ChecksReport(gate=run.report.gate)
    linted, tested = await asyncio.gather(
        lint(run.workspace, lint_part, run.timeouts.tools_seconds, run.cache),
        _tests(run, tests_part),
    )
    _reused(run, "lint", linted)
    run.reused.extend(tested)
    merge(run.report, lint_part, tests_part)


async def _tests(run: GateRun, part: ChecksReport) -> list[str]:
    """Run the tests; what of them was reused."""
    if run.test_command:  # a change run: the repository knows how its tests run
        return await repository_tests(run, part)
    reused = await run_tests(
        run.workspace, run.sessions, part, run.timeouts.tests_seconds, run.cache
    )
    return [f"the tests of {project}" for project in reused]


async def security_review(run: GateRun) -> None:
    # Executes nothing but a change run's repository tests: else `network_isolated` stays False.
    scan_part = ChecksReport(gate=run.report.gate)
    tests_part = ChecksReport(gate=run.report.gate)
    scanned, tested = await asyncio.gather(
        security_scan(run.workspace, scan_part, run.timeouts.tools_seconds, run.cache),
        repository_tests(run, tests_part),
    )
    _reused(run, "the security scan", scanned)
    run.reused.extend(tested)
    files = run.workspace.files
    scan_part.findings += secret_findings(files) + dependency_findings(files)
    scan_part.findings += sandbox_findings(files)
    merge(run.report, scan_part, tests_part)


async def repository_tests(run: GateRun, part: ChecksReport) -> list[str]:
    """Run a change run's repository test command (if any); what of it was reused."""
    if run.test_command:
        reused = await run_test_command(
            run.test_command,
            run.sessions,
            part,
            run.timeouts.tests_seconds,
            cache=run.cache,
            workspace_key=workspace_digest(run.workspace.contents),
        )
        if reused:
            return [f"the repository's test command `{run.test_command}`"]
    return []


def _reused(run: GateRun, what: str, files: int) -> None:
    if files:
        run.reused.append(f"{what} of {files} unchanged file(s)")


def merge(report: ChecksReport, *parts: ChecksReport) -> None:
    """Add the parts in order: the report reads the same whichever finished first."""
    for part in parts:
        report.findings += part.findings
        report.notes += part.notes
        report.tests_passed += part.tests_passed
        report.tests_failed += part.tests_failed
        report.network_isolated = report.network_isolated or part.network_isolated


GATE_CHECKS: dict[GateKind, GateChecks] = {
    GateKind.CODE_REVIEW: code_review,
    GateKind.SECURITY_REVIEW: security_review,
}
"""One entry per checked gate kind (`GateKind.checked`)."""


class GateWithoutChecks(LookupError):
    """Checks were asked of a gate kind that has none."""


def checks_for(gate: GateKind) -> GateChecks:
    checks = GATE_CHECKS.get(gate)
    if checks is None:
        why = "is checked but has no entry in GATE_CHECKS" if gate.checked else "runs no checks"
        raise GateWithoutChecks(f"gate {gate.value!r} {why}")
    return checks


async def run_gate(
    gate: GateKind,
    files: dict[str, str],
    *,
    scratch: Path,
    sandbox: OpenSandbox | None = None,
    report: ChecksReport,
    timeouts: CheckTimeouts,
    scope: Scope = (),
    test_command: str | None = None,
    cache: CheckCache | None = None,
) -> None:
    """Check `files` and add the gate's findings and notes to `report`.

    `scratch` is the check run's private folder (outside any sandbox) where the static
    checkers get their copies of the files; `sandbox` opens a session, which gets every
    file checked out, when code has to run (without it, no code runs). A scope narrows
    what `code_review` lints and tests to those folders (one task's own checks); the
    security review always reads every file.
    """
    checks = checks_for(gate)
    workspace = planned(files, scratch / "workspace", scratch, report, scope)
    with LazySession(sandbox, workspace.contents, report) as sessions:
        run = GateRun(workspace, sessions, report, timeouts, test_command, cache or NoCache())
        await checks(run)
    if test_command and scope:
        keep_the_change(report, scope)
    cap_low_findings(report)
    if run.reused:
        report.notes.append(
            "reused from an earlier check of the same files in this run: " + "; ".join(run.reused)
        )


def keep_the_change(report: ChecksReport, changed: Scope) -> None:
    """A change run is judged on what it changed: findings in files it left alone are the
    repository's own, named in a note instead of blocking the gate."""
    theirs = [f for f in report.findings if f.file and not in_scope(PurePosixPath(f.file), changed)]
    if theirs:
        report.findings = [f for f in report.findings if f not in theirs]
        files = sorted({f.file for f in theirs if f.file})
        report.notes.append(
            f"{len(theirs)} finding(s) in files this run did not change were left out: "
            + ", ".join(files[:10])
            + (" ..." if len(files) > 10 else "")
        )
