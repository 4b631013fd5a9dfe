"""Tests (code_review): each generated project's own pytest suite, run in the sandbox.

pytest writes a JUnit report that names every failing test with its file and line; a run
killed by a sandbox limit, or one that fails without a failing test, is a finding too.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import os
import re
import stat
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pydantic import BaseModel

from checks.cache import CheckCache, NoCache, digest, workspace_digest
from checks.findings import clip, line_number, tail
from checks.sandbox import SandboxPathError, SandboxResult, SandboxSession
from checks.sessions import Sessions, as_sessions
from checks.warmup import warm_pytest
from checks.workspace import REQUIREMENTS_FILE, TEST_FILE, Scope, Workspace, in_scope
from core.contracts import ChecksReport, Finding, Severity

TEST_TIMEOUT_SECONDS = 120.0
"""Wall clock for one project's test run in the sandbox."""
MAX_JUNIT_BYTES = 16 * 1024 * 1024
PROJECT_MARKERS = ("pyproject.toml", "setup.cfg", "setup.py", "pytest.ini", "tox.ini")
PYTEST_NO_TESTS = 5


async def run_tests(
    workspace: Workspace,
    session: SandboxSession | Sessions | None,
    report: ChecksReport,
    timeout_seconds: float,
    cache: CheckCache | None = None,
) -> list[str]:
    """Run every project's tests in the session; without a session nothing runs.

    One project's outcome on the same files, folder and time limit is run once per run
    (`cache`): the projects reused are returned.
    """
    projects = find_test_projects(workspace.written, workspace.scope)
    if not projects:
        where = f" in {', '.join(f.as_posix() for f in workspace.scope)}" if workspace.scope else ""
        report.notes.append(f"no test files (test_*.py, *_test.py){where}: no tests were run")
        return []
    if importlib.util.find_spec("pytest") is None:
        report.notes.append(f"pytest is not installed for {sys.executable}: no tests were run")
        return []
    sessions = as_sessions(session)
    store = cache or NoCache()
    contents = workspace.contents or workspace.files
    whole = workspace_digest(contents)
    idle = idle_plugins(contents)
    outcomes: list[ProjectOutcome] = []
    reused = []
    for index, project in enumerate(projects):
        key = tests_unit_key(project, whole, timeout_seconds)

        async def run(index: int = index, project: PurePosixPath = project) -> tuple[str, bool]:
            outcome = await _run_project(
                sessions, index, project, report.gate, timeout_seconds, idle
            )
            return outcome.model_dump_json(), outcome.keep

        text, was_reused = await store.once("tests", key, run)
        outcome = ProjectOutcome.model_validate_json(text)
        if was_reused:
            reused.append(project.as_posix())
        outcome.add_to(report)
        if outcome.ran:
            outcomes.append(outcome)
    report.network_isolated = bool(outcomes) and all(o.network_isolated for o in outcomes)
    if outcomes and not report.network_isolated:
        report.notes.append(
            f"tests ran without network isolation: {outcomes[0].isolation} "
            "(unshare is missing or not permitted on this worker)"
        )
    return reused


def tests_unit_key(project: PurePosixPath, whole: str, timeout_seconds: float) -> str:
    """The `tests` unit of one project on one workspace (`whole`: its `workspace_digest`)."""
    return digest("tests", _pytest_version(), project.as_posix(), whole, f"{timeout_seconds:g}")


def _pytest_version() -> str:
    try:
        return importlib.metadata.version("pytest")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class ProjectOutcome(BaseModel):
    """What one project's test run added to the report, as it is stored for reuse."""

    part: ChecksReport
    ran: bool = False
    """pytest ran (to its end or to a limit); False: no sandbox, or the folder was gone."""
    network_isolated: bool = False
    isolation: str = ""
    keep: bool = False
    """It may be reused: it ran to its own end in its own folder (no limit, no tampering)."""

    def add_to(self, report: ChecksReport) -> None:
        report.findings += self.part.findings
        report.notes += self.part.notes
        report.tests_passed += self.part.tests_passed
        report.tests_failed += self.part.tests_failed


async def _run_project(
    sessions: Sessions,
    index: int,
    project: PurePosixPath,
    gate: str,
    timeout_seconds: float,
    idle: Sequence[str] = (),
) -> ProjectOutcome:
    part = ChecksReport(gate=gate)
    session = await sessions.get()
    if session is None:
        return ProjectOutcome(part=part)
    await asyncio.to_thread(warm_pytest)
    junit = session.output / f"junit-{index}.xml"
    try:
        # The whole workspace is the tests' to use: they may read sibling folders.
        # An earlier project's tests may have replaced this folder with a symlink:
        # `run` refuses a working directory that resolves outside the workspace.
        result = await asyncio.to_thread(
            session.run,
            _pytest_argv(junit, idle),
            cwd=session.workspace / project,
            timeout_seconds=timeout_seconds,
            purpose="tests",
        )
    except (SandboxPathError, FileNotFoundError) as exc:
        part.findings.append(_workspace_tampered(project, exc))
        return ProjectOutcome(part=part)
    return project_outcome(project, result, junit, part)


def project_outcome(
    project: PurePosixPath, result: SandboxResult, junit: Path, part: ChecksReport
) -> ProjectOutcome:
    """One sandboxed pytest run of `project` as its check stores it, recorded on `part`."""
    record_test_run(project, result, junit, part)
    return ProjectOutcome(
        part=part,
        ran=True,
        network_isolated=result.network_isolated,
        isolation=result.isolation,
        keep=result.limit_reason is None,
    )


def find_test_projects(paths: Sequence[PurePosixPath], scope: Scope = ()) -> list[PurePosixPath]:
    """The folders to run pytest in: one per project with tests, none nested in another.

    With a scope, only the projects of the test files inside it; a project whose root lies
    above the scope (a repository-wide pyproject.toml) runs from the scope's folder, so
    other folders' tests are not run, nor their failures blamed on the scope.
    """
    present = set(paths)
    roots = {
        _clamped(_project_root(p, present), p, scope)
        for p in paths
        if TEST_FILE.match(p.name) and in_scope(p, scope)
    }
    return sorted(r for r in roots if not any(o != r and _within(r, o) for o in roots))


def _clamped(root: PurePosixPath, test_file: PurePosixPath, scope: Scope) -> PurePosixPath:
    for folder in scope:
        if _within(test_file, folder) and not _within(root, folder) and root != folder:
            return folder
    return root


def _within(path: PurePosixPath, folder: PurePosixPath) -> bool:
    return folder == PurePosixPath(".") or folder in path.parents


def _project_root(test_file: PurePosixPath, present: set[PurePosixPath]) -> PurePosixPath:
    """The nearest folder with project metadata; else the one holding `tests/`; else its own."""
    for folder in test_file.parents:
        if any(folder / m in present for m in PROJECT_MARKERS) or any(
            p.parent == folder and REQUIREMENTS_FILE.match(p.name) for p in present
        ):
            return folder
    for folder in test_file.parents:
        if folder.name == "tests":
            return folder.parent
    return test_file.parent


def _pytest_argv(junit: Path, idle: Sequence[str] = ()) -> list[str]:
    # xunit1 keeps each test's file and line in the report; a module that fails to import
    # should not hide the results of the others.
    return [
        *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
        *(arg for plugin in idle for arg in ("-p", f"no:{plugin}")),
        *("--continue-on-collection-errors", "-o", "junit_family=xunit1", f"--junitxml={junit}"),
    ]


MENTIONED_PLUGINS: dict[str, tuple[str, ...]] = {
    "hypothesispytest": ("hypothesis",),
    "schemathesis": ("schemathesis",),
    "anyio": ("anyio",),
}
"""pytest plugins of the sandbox's stack that act only on tests that name them (a
`@given` test, a schemathesis schema, an `anyio` marker or fixture), by the words they
cannot be used without. Importing them is about a third of a small suite's run (0.5 s of
CPU), so a workspace that never names one runs without it. Other plugins always load:
one may act on every test (reordering, timeouts)."""


def idle_plugins(files: Mapping[str, str]) -> list[str]:
    """The plugins of `MENTIONED_PLUGINS` no file of the workspace names."""
    return [
        plugin
        for plugin, words in MENTIONED_PLUGINS.items()
        if not any(word in text for text in files.values() for word in words)
    ]


def record_test_run(
    project: PurePosixPath, result: SandboxResult, junit: Path, report: ChecksReport
) -> None:
    """Turn one sandboxed pytest run into counts and findings on `report`."""
    where = project.as_posix()
    if result.limit_reason is not None:
        # Output up to the kill says little (pytest -q prints dots): the limit says it all.
        report.findings.append(
            Finding(
                source="pytest",
                severity=Severity.HIGH,
                message=f"test run killed: {result.limit_reason} (tests in {where})",
                file=where,
                rule="test-run",
                suggested_fix="Find the test that hangs, spins or forks without end, and fix it.",
            )
        )
        return
    try:
        cases = parse_junit(junit)
    except (OSError, ET.ParseError, ValueError) as exc:
        report.findings.append(
            _pytest_problem(
                where,
                f"pytest produced no readable report (exit code {result.returncode}, {exc})",
                result,
            )
        )
        return
    failures = [c for c in cases if c.outcome == "failed"]
    report.tests_passed += sum(c.outcome == "passed" for c in cases)
    report.tests_failed += len(failures)
    report.findings += [c.finding(project) for c in failures]
    if result.returncode == PYTEST_NO_TESTS:
        report.notes.append(f"pytest collected no tests in {where}")
    elif result.returncode != 0 and not failures:
        report.findings.append(
            _pytest_problem(
                where, f"pytest failed (exit code {result.returncode}) with no failing test", result
            )
        )


def _workspace_tampered(project: PurePosixPath, exc: Exception) -> Finding:
    where = project.as_posix()
    return Finding(
        source="sandbox",
        severity=Severity.HIGH,
        message=f"tests in {where} were not run: the folder was removed or replaced ({exc})",
        file=where,
        rule="workspace-tampered",
        suggested_fix="Tests must not delete, move or replace folders of the repository.",
    )


def _pytest_problem(where: str, message: str, result: SandboxResult) -> Finding:
    output = tail(result.stdout + result.stderr)
    return Finding(
        source="pytest",
        severity=Severity.HIGH,
        message=f"{message} in {where}" + (f": {output}" if output else ""),
        file=where,
        rule="test-run",
    )


@dataclass(frozen=True)
class JUnitCase:
    test_id: str
    file: str | None
    line: int | None
    outcome: str
    """passed, failed or skipped."""
    message: str = ""

    def finding(self, project: PurePosixPath) -> Finding:
        prefix = "" if project == PurePosixPath(".") else f"{project.as_posix()}/"
        return Finding(
            source="pytest",
            severity=Severity.HIGH,
            message=f"test {prefix}{self.test_id} failed: {self.message}",
            file=f"{prefix}{self.file}" if self.file else project.as_posix(),
            line=self.line,
            rule="test-failure",
        )


def parse_junit(path: Path) -> list[JUnitCase]:
    """The tests of a pytest JUnit (xunit1) report, one entry per test id."""
    root = ET.fromstring(_read_regular_file(path, MAX_JUNIT_BYTES))
    by_id: dict[str, JUnitCase] = {}
    for element in root.iter("testcase"):
        case = _test_case(element)
        earlier = by_id.get(case.test_id)
        # A test that failed and then errored in teardown appears twice: the first
        # failure is the one to fix.
        if earlier is None or (earlier.outcome != "failed" and case.outcome == "failed"):
            by_id[case.test_id] = case
    return list(by_id.values())


def _test_case(element: ET.Element) -> JUnitCase:
    file = element.get("file")
    name = element.get("name", "?")
    classname = element.get("classname", "")
    test_id = _test_id(file, classname, name)
    problem = element.find("failure")
    if problem is None:
        problem = element.find("error")
    if problem is None:
        outcome = "skipped" if element.find("skipped") is not None else "passed"
        return JUnitCase(test_id, file, None, outcome)
    text = problem.text or ""
    return JUnitCase(
        test_id,
        file,
        _failing_line(text, file) or line_number(element.get("line"), offset=1),
        "failed",
        _failure_message(problem.get("message", ""), text),
    )


def _test_id(file: str | None, classname: str, name: str) -> str:
    if not file:
        return f"{classname}::{name}" if classname else name
    if not classname:  # a collection error names the module, not a test
        return file
    module = file.removesuffix(".py").replace("/", ".")
    inner = (
        classname[len(module) + 1 :].replace(".", "::")
        if classname.startswith(module + ".")
        else ""
    )
    return "::".join(part for part in (file, inner, name) if part)


def _failing_line(text: str, file: str | None) -> int | None:
    if not file:
        return None
    lines = re.findall(rf"^{re.escape(file)}:(\d+):", text, flags=re.M)
    return int(lines[-1]) if lines else None


def _failure_message(message: str, text: str) -> str:
    # pytest's "E   " lines carry the assertion or exception; its message attribute is
    # sometimes just "collection failure".
    explained = " ".join(
        m.strip() for m in re.findall(r"^E\s+(.*)$", text, flags=re.M) if m.strip()
    )
    best = message if message and message != "collection failure" else explained or message
    return clip(" ".join(best.split()))


def _read_regular_file(path: Path, limit: int) -> bytes:
    """Read a file the sandboxed code could have replaced: no symlinks, nothing huge."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path.name} is larger than {limit} bytes")
        return f.read(limit)
