"""Lint (code_review): ruff on the Python files in scope, findings graded by how likely a bug."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from checks.tools import run_tool
from checks.workspace import Workspace, in_scope, repository_path
from core.contracts import ChecksReport, Finding, Severity

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


async def lint(workspace: Workspace, report: ChecksReport, timeout_seconds: float) -> None:
    targets = lint_targets(workspace)
    if not targets:
        report.notes.append("no files in the folders asked for: lint did not run")
        return
    argv = [
        *("check", "--isolated", "--no-cache", "--exit-zero", "--output-format", "json"),
        *("--select", ",".join(RUFF_SELECT), "--ignore", ",".join(RUFF_IGNORE), *targets),
    ]
    output = await run_tool("ruff", argv, workspace, report, timeout_seconds)
    if output is not None:
        try:
            report.findings += ruff_findings(json.loads(output or "[]"), workspace.root)
        except (ValueError, TypeError, KeyError) as exc:
            report.notes.append(f"ruff output could not be read ({exc}): lint did not count")


def lint_targets(workspace: Workspace) -> list[str]:
    """What ruff is given: the workspace, or the scope's paths that hold files (ruff
    reports a path that does not exist as an E902 error, which would block)."""
    if not workspace.scope:
        return ["."]
    return [
        folder.as_posix()
        for folder in workspace.scope
        if any(in_scope(path, (folder,)) for path in workspace.written)
    ]


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
