"""The deterministic checks of a quality gate, run on a copy of a run's current files.

`code_review`: ruff on every Python file, then each generated project's own tests, run in
the sandbox (`checks.sandbox`) with a JUnit report that names every failing test.

`security_review`: bandit, a secret scan of every file, and the dependency pins of every
requirements*.txt against a deny list and a table of advisories.

Findings are precise enough for an implementer to act on (file, line, rule, message); HIGH
findings block the gate. A check that could not run is always a note on the report, never
a silent pass. The rule tables below are module constants so they are easy to extend.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import stat
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.model_calls import heartbeat_interval
from checks.sandbox import (
    SandboxLimits,
    SandboxPathError,
    SandboxResult,
    SandboxSession,
    SandboxUnavailable,
    minimal_env,
    sandbox,
)
from core.contracts import RUN_CHECKS, ChecksInput, ChecksReport, Finding, Severity
from core.persistence import storage
from core.persistence.db import Database

T = TypeVar("T")

GATES = ("code_review", "security_review")

TEST_TIMEOUT_SECONDS = 120.0
"""Wall clock for one project's test run in the sandbox."""
TOOL_TIMEOUT_SECONDS = 120.0
"""Wall clock for ruff or bandit (they read the code; they never run it)."""
MAX_LOW_FINDINGS_PER_SOURCE = 50
"""Past this, a tool's low-severity findings are counted in a note instead of listed."""
MAX_MESSAGE_CHARS = 400
MAX_JUNIT_BYTES = 16 * 1024 * 1024

# --- ruff -----------------------------------------------------------------------------

RUFF_SELECT = ("E", "F", "W", "B")
RUFF_IGNORE = ("E501",)
"""Line length is style the formatter owns, not a defect worth a finding."""

RUFF_SEVERITY: tuple[tuple[str, Severity], ...] = (
    # Code that cannot run as written: syntax errors, undefined names, statements outside
    # their context (return/yield/break outside a function or loop), always-true asserts
    # and `is` comparisons with literals.
    ("invalid-syntax", Severity.HIGH),
    ("E9", Severity.HIGH),
    ("F821", Severity.HIGH),
    ("F822", Severity.HIGH),
    ("F823", Severity.HIGH),
    ("F7", Severity.HIGH),
    ("F63", Severity.HIGH),
    # Dead code: worth cleaning up, never a bug by itself.
    ("F401", Severity.LOW),
    ("F841", Severity.LOW),
    # Other pyflakes findings (redefinitions, format-string mistakes) and bugbear's likely
    # bugs (mutable defaults, loop-variable capture, ...).
    ("F", Severity.MEDIUM),
    ("B", Severity.MEDIUM),
)
"""First matching code prefix wins; anything else (pycodestyle E/W) is LOW."""

# --- pytest ---------------------------------------------------------------------------

TEST_FILE = re.compile(r"^(test_.*|.*_test)\.py$")
PROJECT_MARKERS = ("pyproject.toml", "setup.cfg", "setup.py", "pytest.ini", "tox.ini")
PROJECT_MARKER_PATTERN = re.compile(r"^requirements.*\.txt$")
PYTEST_NO_TESTS = 5

# --- bandit ---------------------------------------------------------------------------

BANDIT_SEVERITY = {"HIGH": Severity.HIGH, "MEDIUM": Severity.MEDIUM, "LOW": Severity.LOW}
BANDIT_SKIPPED_IN_TESTS = frozenset({"B101"})
"""`assert` is how pytest tests check things; in application code B101 still counts."""

# --- secrets --------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretPattern:
    rule: str
    label: str
    pattern: re.Pattern[str]


SECRET_PATTERNS: tuple[SecretPattern, ...] = (
    SecretPattern(
        "aws-access-key", "AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
    ),
    SecretPattern(
        "private-key",
        "private key block",
        re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    ),
    SecretPattern(
        "anthropic-api-key", "Anthropic API key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}")
    ),
    SecretPattern(
        "openai-api-key",
        "OpenAI-style API key",
        re.compile(r"\bsk-(?!ant-)(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,}"),
    ),
    SecretPattern(
        "github-token",
        "GitHub token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    ),
    SecretPattern("slack-token", "Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
)

PASSWORD_ASSIGNMENT = re.compile(
    r"""(?ix)
    \b(?P<name>[a-z0-9_]*(?:password|passwd|passphrase|secret_key|client_secret|api_?key
        |auth_token|access_token)[a-z0-9_]*)
    ["']?
    (?:\s*:\s*[a-z_][\w\[\]., |]*)?   # an optional type annotation
    \s*(?::=|=|:)\s*
    [rbu]?(?P<quote>["'])(?P<value>[^"'\s]{8,})(?P=quote)
    """
)
"""`password = "..."`, `"api_key": "..."`, `SECRET_KEY: str = "..."` with a literal value."""

PLACEHOLDER_MARKS = (
    "example", "changeme", "change-me", "change_me", "placeholder", "your", "dummy", "xxxx",
    "****", "<", "{", "$", "://",
)  # fmt: skip
"""A literal containing one of these is a template or a URL, not a secret."""

# --- dependencies ---------------------------------------------------------------------

DENYLIST: dict[str, str] = {
    # Malicious typosquats removed from PyPI (SK-CSIRT advisory, 2017-09-09) ...
    "acqusition": "malicious typosquat of `acquisition` (SK-CSIRT, 2017)",
    "apidev-coop": "malicious typosquat of `apidev-coop_cms` (SK-CSIRT, 2017)",
    "bzip": "malicious typosquat of `bzip2` (SK-CSIRT, 2017)",
    "crypt": "malicious typosquat of `crypto` (SK-CSIRT, 2017)",
    "django-server": "malicious typosquat of `django-server-guardian-api` (SK-CSIRT, 2017)",
    "pwd": "malicious typosquat of `pwdhash` (SK-CSIRT, 2017)",
    "setup-tools": "malicious typosquat of `setuptools` (SK-CSIRT, 2017)",
    "telnet": "malicious typosquat of `telnetsrvlib` (SK-CSIRT, 2017)",
    "urlib3": "malicious typosquat of `urllib3` (SK-CSIRT, 2017)",
    "urllib": "malicious typosquat of `urllib3` (SK-CSIRT, 2017)",
    # ... and later ones.
    "colourama": "malicious typosquat of `colorama` (clipboard hijacker, 2018)",
    "python3-dateutil": "malicious typosquat of `python-dateutil` (stole SSH and GPG keys, 2019)",
    "jeilyfish": "malicious typosquat of `jellyfish` (stole SSH and GPG keys, 2019)",
}
"""Normalized distribution names that must never be installed, with the reason."""


@dataclass(frozen=True)
class Advisory:
    fixed_in: str
    """The first release without the vulnerability."""
    summary: str


ADVISORIES: dict[str, tuple[Advisory, ...]] = {
    "pyyaml": (
        Advisory("5.4", "CVE-2020-14343: arbitrary code execution through full_load/FullLoader"),
    ),
    "jinja2": (
        Advisory("2.11.3", "CVE-2020-28493: regular-expression denial of service in urlize"),
    ),
    "requests": (
        Advisory(
            "2.20.0", "CVE-2018-18074: Authorization header sent on after an https->http redirect"
        ),
    ),
    "urllib3": (
        Advisory("1.24.2", "CVE-2019-11324: improper certificate validation with custom CAs"),
    ),
    "flask": (Advisory("0.12.3", "CVE-2018-1000656: denial of service through crafted JSON"),),
}
"""Normalized name -> advisories; a requirement that allows only older releases is HIGH."""

REQUIREMENTS_FILE = re.compile(r"^requirements.*\.txt$")
REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?P<spec>[^;@]*?)\s*(?P<url>@.*?)?\s*(?:;.*)?$"
)
SPECIFIER = re.compile(r"(?P<op>===|==|~=|!=|<=|>=|<|>)\s*(?P<version>[^\s,;]+)")
INDEX_OPTIONS = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links")
EDITABLE_OPTIONS = ("-e", "--editable")


# --- the activity ---------------------------------------------------------------------


class CheckActivities:
    def __init__(
        self,
        db: Database,
        *,
        limits: SandboxLimits | None = None,
        sandbox_backend: str = "auto",
        test_timeout_seconds: float = TEST_TIMEOUT_SECONDS,
        tool_timeout_seconds: float = TOOL_TIMEOUT_SECONDS,
    ) -> None:
        self.db = db
        self.limits = limits or SandboxLimits()
        self.sandbox_backend = sandbox_backend
        self.test_timeout_seconds = test_timeout_seconds
        self.tool_timeout_seconds = tool_timeout_seconds

    @activity.defn(name=RUN_CHECKS)
    async def run_checks(self, request: ChecksInput) -> ChecksReport:
        """Run the gate's checks on the run's current files.

        `network_isolated` is True only when generated tests ran and every run of them had
        no network; the security review executes nothing, so it stays False there.
        """
        if request.gate not in GATES:
            raise ApplicationError(
                f"unknown gate {request.gate!r}; known: {', '.join(GATES)}",
                type="UnknownGate",
                non_retryable=True,
            )
        files = {a.path: a.content for a in await storage.latest_artifacts(self.db, request.run_id)}
        report = ChecksReport(gate=request.gate)
        if not files:
            report.notes.append("the run has no files: nothing was checked")
            return report
        with contextlib.ExitStack() as stack:
            session = self._session(stack, report)
            if session is None:
                scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="orch-")))
                workspace = scratch / "workspace"
            else:
                scratch, workspace = session.home, session.workspace
            written = materialize(files, workspace, report)
            if request.gate == "code_review":
                await self._code_review(session, workspace, scratch, written, report)
            else:
                await self._security_review(workspace, scratch, files, report)
        _cap_low_findings(report)
        return report

    def _session(self, stack: contextlib.ExitStack, report: ChecksReport) -> SandboxSession | None:
        """A sandbox session for this check run, or None (with a note) when none works here."""
        try:
            return stack.enter_context(sandbox(self.limits, backend=self.sandbox_backend))
        except SandboxUnavailable as exc:
            report.notes.append(f"no usable sandbox on this worker: generated code not run ({exc})")
            return None

    async def _code_review(
        self,
        session: SandboxSession | None,
        workspace: Path,
        scratch: Path,
        written: list[PurePosixPath],
        report: ChecksReport,
    ) -> None:
        # Lint before the tests run: the tests may rewrite the files they can reach.
        await self._ruff(workspace, scratch, report)
        projects = find_test_projects(written)
        if not projects:
            report.notes.append("no test files (test_*.py, *_test.py): no tests were run")
        elif importlib.util.find_spec("pytest") is None:
            report.notes.append(f"pytest is not installed for {sys.executable}: no tests were run")
        elif session is not None:
            await self._run_tests(session, projects, report)

    async def _run_tests(
        self, session: SandboxSession, projects: list[PurePosixPath], report: ChecksReport
    ) -> None:
        results = []
        for index, project in enumerate(projects):
            junit = session.output / f"junit-{index}.xml"
            try:
                # The whole workspace is the tests' to use: they may read sibling folders.
                # An earlier project's tests may have replaced this folder with a symlink:
                # `run` refuses a working directory that resolves outside the workspace.
                result = await _heartbeating(
                    asyncio.to_thread(
                        session.run,
                        _pytest_argv(junit),
                        cwd=session.workspace / project,
                        timeout_seconds=self.test_timeout_seconds,
                    )
                )
            except (SandboxPathError, FileNotFoundError) as exc:
                report.findings.append(_workspace_tampered(project, exc))
                continue
            record_test_run(project, result, junit, report)
            results.append(result)
        report.network_isolated = bool(results) and all(r.network_isolated for r in results)
        if results and not report.network_isolated:
            report.notes.append(
                f"tests ran without network isolation: {results[0].isolation} "
                "(unshare is missing or not permitted on this worker)"
            )

    async def _ruff(self, workspace: Path, scratch: Path, report: ChecksReport) -> None:
        argv = [
            *("check", "--isolated", "--no-cache", "--exit-zero", "--output-format", "json"),
            *("--select", ",".join(RUFF_SELECT), "--ignore", ",".join(RUFF_IGNORE), "."),
        ]
        output = await self._tool("ruff", argv, workspace, scratch, report)
        if output is not None:
            try:
                report.findings += ruff_findings(json.loads(output or "[]"), workspace)
            except (ValueError, TypeError, KeyError) as exc:
                report.notes.append(f"ruff output could not be read ({exc}): lint did not count")

    async def _security_review(
        self, workspace: Path, scratch: Path, files: dict[str, str], report: ChecksReport
    ) -> None:
        await self._bandit(workspace, scratch, report)
        report.findings += secret_findings(files)
        report.findings += dependency_findings(files)

    async def _bandit(self, workspace: Path, scratch: Path, report: ChecksReport) -> None:
        # Our own (empty) ini: otherwise bandit obeys a `.bandit` file the generated code
        # ships, which could skip every test; --ignore-nosec for the same reason.
        ini = scratch / "bandit.ini"
        ini.write_text("[bandit]\n")
        argv = ["-r", ".", "-f", "json", "-q", "--ignore-nosec", "--ini", str(ini)]
        output = await self._tool("bandit", argv, workspace, scratch, report)
        if output is None:
            return
        try:
            data = json.loads(output)
            report.findings += bandit_findings(data, workspace)
        except (ValueError, TypeError, KeyError) as exc:
            report.notes.append(f"bandit output could not be read ({exc}): the scan did not count")
            return
        unparsed = [_relative(e["filename"], workspace) for e in data.get("errors", [])]
        if unparsed:
            report.notes.append(
                f"bandit could not parse {len(unparsed)} file(s): {', '.join(unparsed)}"
            )

    async def _tool(
        self, name: str, args: list[str], cwd: Path, scratch: Path, report: ChecksReport
    ) -> str | None:
        """Run a checker next to this interpreter; its stdout, or None (and a note) on failure."""
        binary = Path(sys.executable).parent / name
        if not binary.exists():
            report.notes.append(f"{name} is not installed next to {sys.executable}: it did not run")
            return None
        proc = await asyncio.create_subprocess_exec(
            str(binary),
            *args,
            cwd=cwd,
            env=minimal_env(scratch),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await _heartbeating(
                asyncio.wait_for(proc.communicate(), self.tool_timeout_seconds)
            )
        except TimeoutError:
            report.notes.append(f"{name} did not finish within {self.tool_timeout_seconds:g} s")
            return None
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if not stdout.strip() and proc.returncode not in (0, None):
            report.notes.append(
                f"{name} failed (exit code {proc.returncode}): {_tail(stderr.decode(errors='replace'))}"
            )
            return None
        return stdout.decode("utf-8", errors="replace")


async def _heartbeating(work: Awaitable[T]) -> T:
    """Await `work`, heartbeating meanwhile when inside an activity."""
    task = asyncio.ensure_future(work)
    if not activity.in_activity():
        return await task
    interval = heartbeat_interval()
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=interval)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        task.cancel()


# --- the workspace --------------------------------------------------------------------


def materialize(files: dict[str, str], root: Path, report: ChecksReport) -> list[PurePosixPath]:
    """Write the files under `root`; a path that would leave it is refused, as a HIGH finding."""
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in sorted(files.items()):
        path = safe_relative_path(name)
        if path is None:
            report.findings.append(
                Finding(
                    source="sandbox",
                    severity=Severity.HIGH,
                    message=f"refused to check out {name!r}: the path leaves the workspace",
                    file=name,
                    suggested_fix="Use a relative path inside the repository.",
                )
            )
            continue
        target = root / path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        except OSError as exc:
            report.notes.append(f"could not check out {name!r} ({exc.strerror}): not checked")
            continue
        written.append(path)
    return written


def safe_relative_path(name: str) -> PurePosixPath | None:
    """`name` as a relative path that stays inside the workspace, or None."""
    if not name or "\x00" in name or "\\" in name:
        return None
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or path == PurePosixPath("."):
        return None
    return path


def _relative(filename: str, workspace: Path) -> str:
    """A tool's file name (absolute, or relative to the workspace) as a repository path."""
    path = Path(filename)
    if path.is_absolute():
        try:
            return path.resolve().relative_to(workspace.resolve()).as_posix()
        except ValueError:
            return filename
    return PurePosixPath(filename).as_posix()


def is_test_path(path: str) -> bool:
    parts = PurePosixPath(path).parts
    name = parts[-1] if parts else ""
    return (
        bool(TEST_FILE.match(name))
        or name == "conftest.py"
        or any(p in ("tests", "test") for p in parts[:-1])
    )


# --- ruff -----------------------------------------------------------------------------


def ruff_severity(code: str) -> Severity:
    for prefix, severity in RUFF_SEVERITY:
        if code.startswith(prefix):
            return severity
    return Severity.LOW


def ruff_findings(diagnostics: Iterable[dict[str, object]], workspace: Path) -> list[Finding]:
    findings = []
    for item in diagnostics:
        code = str(item.get("code") or "invalid-syntax")
        location = item.get("location")
        fix = item.get("fix")
        findings.append(
            Finding(
                source="ruff",
                severity=ruff_severity(code),
                message=str(item["message"]),
                file=_relative(str(item["filename"]), workspace),
                line=int(location["row"]) if isinstance(location, dict) else None,
                rule=code,
                suggested_fix=str(fix["message"])
                if isinstance(fix, dict) and fix.get("message")
                else None,
            )
        )
    return findings


# --- pytest ---------------------------------------------------------------------------


def find_test_projects(paths: Sequence[PurePosixPath]) -> list[PurePosixPath]:
    """The folders to run pytest in: one per project with tests, none nested in another."""
    present = set(paths)
    roots = {_project_root(p, present) for p in paths if TEST_FILE.match(p.name)}
    return sorted(r for r in roots if not any(o != r and _within(r, o) for o in roots))


def _within(path: PurePosixPath, folder: PurePosixPath) -> bool:
    return folder == PurePosixPath(".") or folder in path.parents


def _project_root(test_file: PurePosixPath, present: set[PurePosixPath]) -> PurePosixPath:
    """The nearest folder with project metadata; else the one holding `tests/`; else its own."""
    for folder in test_file.parents:
        if any(folder / m in present for m in PROJECT_MARKERS) or any(
            p.parent == folder and PROJECT_MARKER_PATTERN.match(p.name) for p in present
        ):
            return folder
    for folder in test_file.parents:
        if folder.name == "tests":
            return folder.parent
    return test_file.parent


def _pytest_argv(junit: Path) -> list[str]:
    # xunit1 keeps each test's file and line in the report; a module that fails to import
    # should not hide the results of the others.
    return [
        *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
        *("--continue-on-collection-errors", "-o", "junit_family=xunit1", f"--junitxml={junit}"),
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
    output = _tail(result.stdout + result.stderr)
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
        _failing_line(text, file) or _int(element.get("line"), offset=1),
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
    return _clip(" ".join(best.split()))


def _int(value: str | None, *, offset: int = 0) -> int | None:
    return int(value) + offset if value and value.isdigit() else None


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


# --- bandit ---------------------------------------------------------------------------


def bandit_findings(data: dict[str, list[dict[str, object]]], workspace: Path) -> list[Finding]:
    findings = []
    for item in data.get("results", []):
        file = _relative(str(item["filename"]), workspace)
        rule = str(item["test_id"])
        if rule in BANDIT_SKIPPED_IN_TESTS and is_test_path(file):
            continue
        confidence = str(item.get("issue_confidence", "UNDEFINED")).lower()
        findings.append(
            Finding(
                source="bandit",
                severity=BANDIT_SEVERITY.get(str(item["issue_severity"]), Severity.LOW),
                message=f"{item['issue_text']} ({item.get('test_name', rule)}, {confidence} confidence)",
                file=file,
                line=_int(str(item.get("line_number", ""))),
                rule=rule,
                suggested_fix=f"See {item['more_info']}" if item.get("more_info") else None,
            )
        )
    return findings


# --- secrets --------------------------------------------------------------------------


def secret_findings(files: dict[str, str]) -> list[Finding]:
    """Credentials written into any file.

    Token formats count everywhere, tests included. Hard-coded password assignments are
    skipped in test files (under tests/, test_*.py, conftest.py): tests register users
    with made-up passwords all the time, and those are not credentials.
    """
    findings = []
    for path, content in sorted(files.items()):
        in_tests = is_test_path(path)
        for number, line in enumerate(content.splitlines(), start=1):
            for secret in SECRET_PATTERNS:
                match = secret.pattern.search(line)
                if match:
                    findings.append(_secret(path, number, secret.rule, secret.label, match[0]))
            if in_tests:
                continue
            for match in PASSWORD_ASSIGNMENT.finditer(line):
                if not _placeholder(match["value"]):
                    label = f"hard-coded `{match['name']}`"
                    findings.append(
                        _secret(path, number, "hardcoded-password", label, match["value"])
                    )
    return findings


def _secret(path: str, line: int, rule: str, label: str, value: str) -> Finding:
    shown = value if rule == "private-key" else f"{value[:4]}… ({len(value)} characters)"
    return Finding(
        source="secrets",
        severity=Severity.HIGH,
        message=f"{label} in the code: {shown}",
        file=path,
        line=line,
        rule=rule,
        suggested_fix="Remove it, rotate it, and read it from the environment or a secret store.",
    )


def _placeholder(value: str) -> bool:
    lowered = value.lower()
    return (
        any(mark in lowered for mark in PLACEHOLDER_MARKS)
        or re.fullmatch(r"[A-Z][A-Z0-9_]*", value) is not None  # names an environment variable
        or len(set(value)) == 1
        or value.startswith("/")
    )


# --- dependencies ---------------------------------------------------------------------


def normalize_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_findings(files: dict[str, str]) -> list[Finding]:
    findings = []
    for path, content in sorted(files.items()):
        if REQUIREMENTS_FILE.match(PurePosixPath(path).name):
            for number, line in _requirement_lines(content):
                findings += _requirement_findings(path, number, line)
    return findings


def _requirement_lines(content: str) -> Iterable[tuple[int, str]]:
    """(line number, requirement) with comments dropped and continuation lines joined."""
    pending, start = "", 0
    for number, raw in enumerate(content.splitlines(), start=1):
        line = re.split(r"(?:^|\s)#", raw, maxsplit=1)[0].strip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        if line:
            yield start, line


def _requirement_findings(path: str, number: int, line: str) -> list[Finding]:
    def finding(severity: Severity, rule: str, message: str, fix: str | None = None) -> Finding:
        return Finding(
            source="dependencies",
            severity=severity,
            message=message,
            file=path,
            line=number,
            rule=rule,
            suggested_fix=fix,
        )

    from_url = finding(
        Severity.MEDIUM,
        "unpinned-source",
        f"`{line}` is installed from a URL or a checkout, not a pinned release",
        "Depend on a released version pinned with ==.",
    )
    if line.startswith("-"):
        option = line.split()[0].split("=")[0]
        if option in INDEX_OPTIONS:
            return [
                finding(
                    Severity.MEDIUM,
                    "custom-index",
                    f"`{line}` installs from another package index (dependency-confusion risk)",
                    "Install from PyPI or a vetted mirror configured outside the repository.",
                )
            ]
        return [from_url] if option in EDITABLE_OPTIONS and "://" in line else []
    # Hash options follow the requirement on the same line.
    match = REQUIREMENT.match(re.sub(r"\s--\S.*$", "", line))
    if match is None or match["url"] or "://" in line:
        return [from_url]
    name = normalize_name(match["name"])
    if name in DENYLIST:
        return [
            finding(
                Severity.HIGH,
                "denied-package",
                f"`{match['name']}` is on the deny list: {DENYLIST[name]}",
                "Remove it; depend on the package it imitates if that was meant.",
            )
        ]
    upper = upper_bound(match["spec"])
    if upper is None:
        return [
            finding(
                Severity.LOW,
                "not-pinned",
                f"`{match['name']}{match['spec']}` is not pinned: any future release gets installed",
                f"Pin it, e.g. `{match['name']}==<tested version>`.",
            )
        ]
    return [
        finding(
            Severity.HIGH,
            "vulnerable-pin",
            f"`{match['name']}{match['spec']}` allows only releases affected by {advisory.summary}",
            f"Require {match['name']}>={advisory.fixed_in}.",
        )
        for advisory in ADVISORIES.get(name, ())
        if _below(upper, release(advisory.fixed_in))
    ]


Release = tuple[int, ...]


@dataclass(frozen=True)
class UpperBound:
    release: Release
    inclusive: bool


def release(version: str) -> Release:
    """The numeric release of a version: "2.11.3rc1" -> (2, 11, 3)."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip().lstrip("vV"))
    return tuple(int(p) for p in match[0].split(".")) if match else ()


def _padded(parts: Release) -> Release:
    """Comparable across lengths: (5, 4) and (5, 4, 0) are the same release."""
    return parts + (0,) * (8 - len(parts))


def _bump(parts: Release) -> Release:
    return (*parts[:-1], parts[-1] + 1) if parts else parts


def upper_bound(spec: str) -> UpperBound | None:
    """The highest release a specifier set allows, if it has a bound (==, <, <=, ~=)."""
    bounds = []
    for match in SPECIFIER.finditer(spec):
        op, version = match["op"], match["version"]
        parts = release(version)
        if not parts:
            continue
        if op in ("==", "===") and version.endswith(".*"):
            bounds.append(UpperBound(_bump(parts), inclusive=False))
        elif op in ("==", "==="):
            bounds.append(UpperBound(parts, inclusive=True))
        elif op == "<":
            bounds.append(UpperBound(parts, inclusive=False))
        elif op == "<=":
            bounds.append(UpperBound(parts, inclusive=True))
        elif op == "~=" and len(parts) >= 2:
            bounds.append(UpperBound(_bump(parts[:-1]), inclusive=False))
    if not bounds:
        return None
    # The tightest bound wins; at the same release "<" is tighter than "<=".
    return min(bounds, key=lambda b: (_padded(b.release), b.inclusive))


def _below(bound: UpperBound, fixed: Release) -> bool:
    """True when every release the bound allows is older than `fixed`."""
    limit, first_fixed = _padded(bound.release), _padded(fixed)
    return limit < first_fixed if bound.inclusive else limit <= first_fixed


# --- report helpers -------------------------------------------------------------------


def _cap_low_findings(report: ChecksReport) -> None:
    kept: list[Finding] = []
    counts: dict[str, int] = {}
    dropped: dict[str, int] = {}
    for finding in report.findings:
        if finding.severity == Severity.LOW:
            counts[finding.source] = counts.get(finding.source, 0) + 1
            if counts[finding.source] > MAX_LOW_FINDINGS_PER_SOURCE:
                dropped[finding.source] = dropped.get(finding.source, 0) + 1
                continue
        kept.append(finding)
    report.findings = kept
    for source, count in dropped.items():
        report.notes.append(f"{count} more low-severity {source} findings are not listed")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def _tail(text: str) -> str:
    """The end of some output, on one line: where the error usually is."""
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_MESSAGE_CHARS else "…" + flat[-(MAX_MESSAGE_CHARS - 1) :]
