"""Run a checker that reads the code and never runs it (ruff, bandit), outside the sandbox,
on the files that changed since an earlier check of the run.

A checker's findings on one file depend only on that file (its path and content) and the
checker's version and rules, so they are kept per file (`checks/cache.py`): a check run
writes only the files without a stored result to a folder of its own and gives just
those to the tool.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from checks.cache import CheckCache, content_digest, digest
from checks.findings import tail
from checks.sandbox import minimal_env
from checks.workspace import Workspace
from core.contracts import ChecksReport, Finding

TOOL_TIMEOUT_SECONDS = 120.0
"""Wall clock for ruff or bandit."""


def tool_path(name: str) -> Path:
    return Path(sys.executable).parent / name


async def run_tool(
    name: str,
    args: list[str],
    workspace: Workspace,
    report: ChecksReport,
    timeout_seconds: float,
    *,
    cwd: Path | None = None,
) -> str | None:
    """Run a checker next to this interpreter; its stdout, or None (and a note) on failure."""
    binary = tool_path(name)
    if not binary.exists():
        report.notes.append(f"{name} is not installed next to {sys.executable}: it did not run")
        return None
    proc = await asyncio.create_subprocess_exec(
        str(binary),
        *args,
        cwd=cwd or workspace.root,
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


@dataclass
class FileResult:
    """What a checker found in one file."""

    findings: list[Finding] = field(default_factory=list)
    unparsed: bool = False
    """The checker could not parse the file (a syntax error): said in a note."""

    def dumps(self) -> str:
        return json.dumps(
            {
                "findings": [f.model_dump(mode="json") for f in self.findings],
                "unparsed": self.unparsed,
            }
        )

    @classmethod
    def loads(cls, text: str) -> FileResult:
        data = json.loads(text)
        return cls([Finding.model_validate(f) for f in data["findings"]], bool(data["unparsed"]))


FileChecker = Callable[[list[str]], Awaitable[dict[str, FileResult] | None]]
"""Checks the files named (workspace paths); a result for each, or None if it could not run."""


@dataclass
class PerFile:
    """A checker's results on some files: stored ones, and fresh ones for the rest."""

    results: dict[str, FileResult]
    reused: int
    """Files whose result an earlier check of the run had stored."""


async def per_file(
    kind: str,
    files: Mapping[str, str],
    version: str,
    cache: CheckCache,
    check: FileChecker,
) -> PerFile:
    """Each file's result, from the cache, or from `check` on the files without one."""
    keys = {path: digest(kind, version, path, content_digest(text)) for path, text in files.items()}
    stored = await cache.get(kind, keys.values())
    results = {path: FileResult.loads(stored[key]) for path, key in keys.items() if key in stored}
    reused = len(results)
    missing = sorted(path for path in files if path not in results)
    if missing:
        fresh = await check(missing)
        if fresh is not None:
            results.update({path: fresh.get(path, FileResult()) for path in missing})
            await cache.put(kind, {keys[path]: results[path].dumps() for path in missing})
    return PerFile(results, reused)


def write_files(folder: Path, paths: Iterable[str], files: Mapping[str, str]) -> list[str]:
    """Write the files under `folder` (a tool's own, outside any sandbox); the paths written."""
    written = []
    for name in paths:
        target = folder / PurePosixPath(name)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(files[name], encoding="utf-8")
        except (OSError, UnicodeEncodeError):
            continue
        written.append(name)
    return written
