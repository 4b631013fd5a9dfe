"""Lint (code_review): ruff on the Python files in scope, findings graded by how likely a bug.

Only files that changed since an earlier check of the run go to ruff (`checks.tools.per_file`);
the others' findings are the stored ones. ruff is given the files by name with
`--force-exclude`, so it skips what it would skip walking the workspace (`.venv/`, ...).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from checks.cache import CheckCache, NoCache
from checks.tools import FileResult, per_file, run_tool, write_files
from checks.workspace import Workspace, in_scope, repository_path
from core.contracts import ChecksReport, Finding, Severity

RUFF_SELECT = ("E", "F", "W", "B")
RUFF_IGNORE = ("E501",)
"""Line length is style the formatter owns, not a defect worth a finding."""
LINTED_SUFFIXES = (".py", ".pyi", ".ipynb")
"""What ruff lints when it walks a folder."""

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


def ruff_version() -> str:
    try:
        return version("ruff")
    except PackageNotFoundError:
        return "unknown"


async def lint(
    workspace: Workspace,
    report: ChecksReport,
    timeout_seconds: float,
    cache: CheckCache | None = None,
) -> int:
    """Add ruff's findings on the files in scope to `report`; how many files were reused."""
    if workspace.scope and not any(in_scope(p, workspace.scope) for p in workspace.written):
        report.notes.append("no files in the folders asked for: lint did not run")
        return 0
    targets = lint_targets(workspace)
    if not targets:
        return 0
    folder = workspace.scratch / "lint"

    async def check(paths: list[str]) -> dict[str, FileResult] | None:
        written = write_files(folder, paths, workspace.contents)
        if not written:
            return {}
        argv = [
            *("check", "--isolated", "--no-cache", "--exit-zero", "--force-exclude"),
            *("--output-format", "json", "--select", ",".join(RUFF_SELECT)),
            *("--ignore", ",".join(RUFF_IGNORE), "--", *written),
        ]
        output = await run_tool("ruff", argv, workspace, report, timeout_seconds, cwd=folder)
        if output is None:
            return None
        try:
            findings = ruff_findings(json.loads(output or "[]"), folder)
        except (ValueError, TypeError, KeyError) as exc:
            report.notes.append(f"ruff output could not be read ({exc}): lint did not count")
            return None
        return by_file(findings)

    python = {path: workspace.contents[path] for path in targets}
    tool = f"ruff {ruff_version()} {argv_rules()}"
    done = await per_file("lint", python, tool, cache or NoCache(), check)
    for path in sorted(done.results):
        report.findings += done.results[path].findings
    return done.reused


def argv_rules() -> str:
    return f"select={','.join(RUFF_SELECT)} ignore={','.join(RUFF_IGNORE)}"


def lint_targets(workspace: Workspace) -> list[str]:
    """The Python files ruff looks at: those in scope (all, without a scope)."""
    return [
        path.as_posix()
        for path in workspace.written
        if path.name.endswith(LINTED_SUFFIXES) and in_scope(path, workspace.scope)
    ]


def by_file(findings: Iterable[Finding]) -> dict[str, FileResult]:
    results: dict[str, FileResult] = {}
    for finding in findings:
        results.setdefault(finding.file or "", FileResult()).findings.append(finding)
    return results


def ruff_severity(code: str) -> Severity:
    for prefix, severity in RUFF_SEVERITY:
        if code.startswith(prefix):
            return severity
    return Severity.LOW


def ruff_findings(diagnostics: Iterable[dict[str, object]], root: Path) -> list[Finding]:
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
                file=repository_path(str(item["filename"]), root),
                line=int(location["row"]) if isinstance(location, dict) else None,
                rule=code,
                suggested_fix=str(fix["message"])
                if isinstance(fix, dict) and fix.get("message")
                else None,
            )
        )
    return findings
