"""Does a delivered repository run? Judged by running it in the sandbox the checks use.

Three checks, each pass or fail, all in one sandbox session (no network, bounded):

- tests pass: the deliverable's own pytest suites, run exactly as the `code_review` gate
  runs them (`checks.tests.run_tests`: one pytest per project, JUnit report). Pass means at
  least one test ran and none failed.
- entry points start: every non-test Python module and package at the top of a project
  folder (the repository root, a top-level folder, a folder with tests) imports; a
  command-line script (a `__main__` guard and argparse, click or typer) answers `--help`;
  a JavaScript file parses (`node --check`, when node is installed). Pass means at least
  one was found and all of them started.
- API answers: each ASGI app found (`x = FastAPI(...)`, `Starlette(...)` or a
  `create_app()` factory) is served by uvicorn on loopback inside the sandbox's own network
  namespace, and a command in the same sandbox requests `/docs` and the first GET route of
  its OpenAPI schema without path parameters. Pass means every request got an HTTP answer
  below 500 (a 401 is a running service that wants a login). It applies when the goal asks
  for a service or the deliverable holds an app; otherwise it is not applicable.

The score, 0 to 4, follows the steps of MetaGPT's executability scale (1 failure,
2 runnable, 3 nearly right, 4 flawless), judged by these checks instead of by a person:
0 no code delivered; 1 code delivered but an entry point does not start; 2 it starts, but
its tests fail or there are none; 3 it starts and its tests pass, but the API does not
answer; 4 every check that applies passes.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from checks.sandbox import SandboxLimits, SandboxUnavailable, sandbox
from checks.tests import TEST_TIMEOUT_SECONDS, find_test_projects, run_tests
from checks.workspace import checkout, is_test_path
from core.contracts import ChecksReport

PROBE = Path(__file__).with_name("sandbox_probe.py")
ENTRY_TIMEOUT_SECONDS = 30.0
"""Per entry point, and per API for starting and answering."""
MAX_ENTRIES = 12
MAX_APIS = 3
NOT_ENTRY_POINTS = frozenset({"setup.py", "conftest.py", "__init__.py", "__main__.py"})
DOC_SUFFIXES = frozenset({".md", ".txt", ".rst", ""})

MAIN_GUARD = re.compile(r"""^if __name__ == ['"]__main__['"]""", re.M)
CLI_LIBRARY = re.compile(r"^\s*(?:import|from)\s+(?:argparse|click|typer)\b", re.M)
ASGI_APP = re.compile(
    r"^(?P<name>[A-Za-z_]\w*)\s*(?::[^=\n]+)?=\s*(?:[\w.]+\.)?(?:FastAPI|Starlette)\(", re.M
)
APP_FACTORY = re.compile(r"^def (?P<name>create_app|make_app|build_app|get_app)\(", re.M)


@dataclass(frozen=True)
class EntryPoint:
    folder: str
    """Where it runs, relative to the workspace ("." for the root)."""
    argv: list[str]
    program: str = "python"
    """`python` (this interpreter) or `node`."""

    @property
    def label(self) -> str:
        where = "" if self.folder == "." else f" (in {self.folder}/)"
        return f"{shlex.join([self.program, *self.argv])}{where}"


@dataclass(frozen=True)
class AsgiApp:
    folder: str
    module: str
    attr: str
    factory: bool

    @property
    def label(self) -> str:
        call = "()" if self.factory else ""
        where = "" if self.folder == "." else f" (in {self.folder}/)"
        return f"{self.module}:{self.attr}{call}{where}"


@dataclass
class Executability:
    """The checks' outcomes for one deliverable; `detail` strings say why."""

    delivered: bool = False
    tests_pass: bool = False
    tests_passed: int = 0
    tests_failed: int = 0
    tests_detail: str = ""
    entry_starts: bool = False
    entry_detail: str = ""
    api_answers: bool | None = None
    """None: no API was asked for and none was delivered."""
    api_detail: str = ""
    isolation: str = ""
    commands: list[str] = field(default_factory=list)
    """What ran in the sandbox, for the report."""

    @property
    def score(self) -> int:
        if not self.delivered:
            return 0
        if not self.entry_starts:
            return 1
        if not self.tests_pass:
            return 2
        return 3 if self.api_answers is False else 4

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "score": self.score}


async def assess(
    files: dict[str, str],
    *,
    expects_api: bool,
    limits: SandboxLimits | None = None,
    backend: str = "auto",
) -> Executability:
    """Run the deliverable's checks in a fresh sandbox session."""
    result = Executability(
        delivered=any(PurePosixPath(p).suffix not in DOC_SUFFIXES for p in files)
    )
    if not result.delivered:
        result.tests_detail = result.entry_detail = "no code delivered"
        result.api_answers = False if expects_api else None
        result.api_detail = "no code delivered" if expects_api else ""
        return result
    try:
        with sandbox(limits, backend=backend) as session:
            report = ChecksReport(gate="quality")
            workspace = checkout(files, session.workspace, session.home, report)
            # Keyed as the checkout spelt the paths, which the detection walks.
            sources = {PurePosixPath(name).as_posix(): text for name, text in files.items()}
            entries = entry_points(workspace.written, sources)
            apis = asgi_apps(workspace.written, sources)
            spec = {
                "workspace": str(session.workspace),
                "timeout_seconds": ENTRY_TIMEOUT_SECONDS,
                "entries": [asdict(e) for e in entries],
                "apis": [asdict(a) for a in apis],
            }
            # Written before anything runs: the session hands its folders to the sandbox's
            # uid once, at the first command.
            (session.output / "probe.py").write_text(PROBE.read_text(encoding="utf-8"))
            (session.output / "spec.json").write_text(json.dumps(spec))
            argv = [sys.executable, str(session.output / "probe.py")]
            argv += [str(session.output / "spec.json")]
            budget = ENTRY_TIMEOUT_SECONDS * (len(entries) + 2 * len(apis)) + 30
            probe = await asyncio.to_thread(session.run, argv, timeout_seconds=budget)
            result.isolation = probe.isolation
            outcome = _probe_outcome(probe.stdout, probe.limit_reason or probe.stderr)
            error = {"passed": False, "detail": outcome.get("error", "no result")}
            _record_entries(result, entries, outcome.get("entries", []), error)
            _record_apis(result, apis, outcome.get("apis", []), error, expects_api)
            await run_tests(workspace, session, report, TEST_TIMEOUT_SECONDS)
            _record_tests(
                result, report, [p.as_posix() for p in find_test_projects(workspace.written)]
            )
    except SandboxUnavailable as exc:
        why = f"not run: no usable sandbox here ({exc})"
        result.tests_detail = result.entry_detail = why
        result.api_answers = False if expects_api else None
        result.api_detail = why
    return result


def entry_points(paths: list[PurePosixPath], files: dict[str, str]) -> list[EntryPoint]:
    """The deliverable's top-level modules, packages, command-line scripts and scripts."""
    present = set(paths)
    roots = {PurePosixPath("."), *find_test_projects(paths)}
    roots |= {PurePosixPath(p.parts[0]) for p in paths if len(p.parts) > 1}
    node = shutil.which("node")
    found: list[EntryPoint] = []
    for path in sorted(paths):
        if is_test_path(path.as_posix()) or path.parent not in roots:
            continue
        folder = path.parent.as_posix()
        if path.name == "__init__.py":
            found += _package_entries(path.parent, present, files, roots)
        elif path.suffix == ".py" and path.name not in NOT_ENTRY_POINTS:
            if path.parent / "__init__.py" in present:
                continue  # imported with its package, where its relative imports work
            if _is_cli(files[path.as_posix()]):
                found.append(EntryPoint(folder, [path.name, "--help"]))
            elif path.stem.isidentifier():
                found.append(EntryPoint(folder, ["-c", f"import {path.stem}"]))
        elif path.suffix in (".js", ".mjs", ".cjs") and node is not None:
            found.append(EntryPoint(folder, ["--check", path.name], program="node"))
    return found[:MAX_ENTRIES]


def _package_entries(
    package: PurePosixPath,
    present: set[PurePosixPath],
    files: dict[str, str],
    roots: set[PurePosixPath],
) -> list[EntryPoint]:
    """A top-level package imports; with a command-line `__main__`, `-m` answers --help."""
    parent = package.parent
    if parent not in roots or parent / "__init__.py" in present or not package.name.isidentifier():
        return []
    folder = parent.as_posix()
    found = [EntryPoint(folder, ["-c", f"import {package.name}"])]
    main = package / "__main__.py"
    if main in present and CLI_LIBRARY.search(files[main.as_posix()]):
        found.append(EntryPoint(folder, ["-m", package.name, "--help"]))
    return found


def _is_cli(source: str) -> bool:
    return bool(MAIN_GUARD.search(source) and CLI_LIBRARY.search(source))


def asgi_apps(paths: list[PurePosixPath], files: dict[str, str]) -> list[AsgiApp]:
    """ASGI apps defined at module level, importable from the folder above their package."""
    present = set(paths)
    found = []
    for path in sorted(paths):
        if path.suffix != ".py" or is_test_path(path.as_posix()):
            continue
        source = files[path.as_posix()]
        match = ASGI_APP.search(source) or APP_FACTORY.search(source)
        if match is None:
            continue
        folder, module = _module_of(path, present)
        factory = match.re is APP_FACTORY
        found.append(AsgiApp(folder, module, match.group("name"), factory))
    return found[:MAX_APIS]


def _module_of(path: PurePosixPath, present: set[PurePosixPath]) -> tuple[str, str]:
    """(folder to import from, dotted module name): above the outermost package."""
    parts = [] if path.name == "__init__.py" else [path.stem]
    folder = path.parent
    while folder != PurePosixPath(".") and folder / "__init__.py" in present:
        parts.insert(0, folder.name)
        folder = folder.parent
    return folder.as_posix(), ".".join(parts)


def _probe_outcome(stdout: str, failure: str) -> dict[str, Any]:
    lines = stdout.strip().splitlines()
    try:
        outcome = json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"error": failure.strip()[-600:] or "the probe printed no result"}
    return outcome if isinstance(outcome, dict) else {"error": "the probe printed no result"}


def _padded(
    outcomes: list[dict[str, Any]], size: int, error: dict[str, Any]
) -> list[dict[str, Any]]:
    """One outcome per check; a probe that died early leaves the rest with its error."""
    return (outcomes + [error] * size)[:size]


def _record_entries(
    result: Executability,
    entries: list[EntryPoint],
    outcomes: list[dict[str, Any]],
    error: dict[str, Any],
) -> None:
    result.commands += [e.label for e in entries]
    if not entries:
        result.entry_detail = "no entry point found (Python module, package, script or JS file)"
        return
    failed = [
        f"{entry.label}: {outcome.get('detail') or 'failed'}"
        for entry, outcome in zip(entries, _padded(outcomes, len(entries), error), strict=True)
        if not outcome.get("passed")
    ]
    result.entry_starts = not failed
    started = len(entries) - len(failed)
    result.entry_detail = f"{started}/{len(entries)} started" + "".join(f"; {f}" for f in failed)


def _record_apis(
    result: Executability,
    apis: list[AsgiApp],
    outcomes: list[dict[str, Any]],
    error: dict[str, Any],
    expects: bool,
) -> None:
    result.commands += [f"uvicorn {api.label} + GET /docs, first GET route" for api in apis]
    if not apis:
        result.api_answers = False if expects else None
        result.api_detail = "no ASGI app found (FastAPI, Starlette, create_app)" if expects else ""
        return
    details = []
    answered = 0
    for api, outcome in zip(apis, _padded(outcomes, len(apis), error), strict=True):
        answered += bool(outcome.get("passed"))
        details.append(f"{api.label}: {outcome.get('detail') or 'no answer'}")
    result.api_answers = answered == len(apis)
    result.api_detail = "; ".join(details)


def _record_tests(result: Executability, report: ChecksReport, projects: list[str]) -> None:
    result.commands += [f"pytest in {project}/" for project in projects]
    result.tests_passed, result.tests_failed = report.tests_passed, report.tests_failed
    problems = [f.message for f in report.findings if f.source in ("pytest", "sandbox")]
    result.tests_pass = report.tests_passed > 0 and report.tests_failed == 0 and not problems
    counts = f"{report.tests_passed} passed, {report.tests_failed} failed"
    result.tests_detail = "; ".join([counts, *problems[:3], *report.notes[:2]])
