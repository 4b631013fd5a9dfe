"""Which checks each checked gate runs, and running them on a run's files.

`code_review`: ruff on every Python file, then each generated project's own tests in the
sandbox; narrowed to some folders, it is also a task's own fast check of its work.
`security_review`: bandit, a secret scan of every file, the dependency pins, and
requirements the sandbox cannot satisfy.
A check that could not run is always a note on the report, never a silent pass; a checked
gate kind with no entry in `GATE_CHECKS` is an error, never a gate that passes unchecked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from checks.dependencies import dependency_findings, sandbox_findings
from checks.findings import cap_low_findings
from checks.lint import lint
from checks.sandbox import SandboxSession
from checks.security import bandit, secret_findings
from checks.test_command import run_test_command
from checks.tests import TEST_TIMEOUT_SECONDS, run_tests
from checks.tools import TOOL_TIMEOUT_SECONDS
from checks.workspace import Scope, Workspace, checkout, in_scope
from core.contracts import ChecksReport, GateKind


@dataclass(frozen=True)
class CheckTimeouts:
    tests_seconds: float = TEST_TIMEOUT_SECONDS
    tools_seconds: float = TOOL_TIMEOUT_SECONDS


@dataclass(frozen=True)
class GateRun:
    """One gate's checks on one checkout of a run's files."""

    workspace: Workspace
    session: SandboxSession | None
    """None where no sandbox works here: generated code is then not run."""
    report: ChecksReport
    timeouts: CheckTimeouts
    test_command: str | None = None
    """A change run's repository's own test command: both gates run it."""


GateChecks = Callable[[GateRun], Awaitable[None]]


async def code_review(run: GateRun) -> None:
    # Lint before the tests run: the tests may rewrite the files they can reach.
    await lint(run.workspace, run.report, run.timeouts.tools_seconds)
    if run.test_command:  # a change run: the repository knows how its tests run
        await repository_tests(run)
    else:
        await run_tests(run.workspace, run.session, run.report, run.timeouts.tests_seconds)


async def security_review(run: GateRun) -> None:
    # Executes nothing but a change run's repository tests: else `network_isolated` stays False.
    await bandit(run.workspace, run.report, run.timeouts.tools_seconds)
    run.report.findings += secret_findings(run.workspace.files)
    run.report.findings += dependency_findings(run.workspace.files)
    run.report.findings += sandbox_findings(run.workspace.files)
    await repository_tests(run)


async def repository_tests(run: GateRun) -> None:
    if run.test_command:
        await run_test_command(
            run.test_command, run.session, run.report, run.timeouts.tests_seconds
        )


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
    root: Path,
    scratch: Path,
    session: SandboxSession | None,
    report: ChecksReport,
    timeouts: CheckTimeouts,
    scope: Scope = (),
    test_command: str | None = None,
) -> None:
    """Check out `files` under `root` and add the gate's findings and notes to `report`.

    A scope narrows what `code_review` lints and tests to those folders (one task's own
    checks); the security review always reads every file.
    """
    checks = checks_for(gate)
    workspace = checkout(files, root, scratch, report, scope)
    await checks(GateRun(workspace, session, report, timeouts, test_command))
    if test_command and scope:
        keep_the_change(report, scope)
    cap_low_findings(report)


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
