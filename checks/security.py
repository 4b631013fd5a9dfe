"""Security (security_review): bandit's tests on the Python code, and a secret scan of every file.

bandit's tests run mostly as ruff's `S` rules and partly in-process (`checks.bandit_rules`
says which, and why); bandit itself runs only for the few tests ruff lacks, on the files
that need them. Findings keep bandit's test ids, severities and confidences. The rule
tables are module constants so they are easy to extend.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path

from checks.bandit_rules import (
    RUFF_SECURITY_RULES,
    bandit_version,
    inline_findings,
    residual_tests,
    ruff_bandit_finding,
    rules_fingerprint,
)
from checks.cache import CheckCache, NoCache
from checks.findings import line_number
from checks.lint import ruff_version
from checks.tools import FileChecker, FileResult, per_file, run_tool, write_files
from checks.workspace import Workspace, is_test_path, repository_path
from core.contracts import ChecksReport, Finding, Severity

# --- bandit ---------------------------------------------------------------------------

BANDIT_SEVERITY = {"HIGH": Severity.HIGH, "MEDIUM": Severity.MEDIUM, "LOW": Severity.LOW}
BANDIT_SKIPPED_IN_TESTS = frozenset({"B101"})
"""`assert` is how pytest tests check things; in application code B101 still counts."""
SYNTAX_ERRORS = (None, "", "invalid-syntax", "E999")
"""How ruff reports a file it cannot parse, across its versions."""
BANDIT_EXCLUDED = frozenset({".svn", "CVS", ".bzr", ".hg", ".git", "__pycache__", ".tox", ".eggs"})
"""Folders bandit skips by default (and `*.egg`)."""

# --- secrets --------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretPattern:
    rule: str
    label: str
    pattern: re.Pattern[str]
    anchors: tuple[str, ...]
    """Literal text every match contains: a file without any is not searched line by line."""


SECRET_PATTERNS: tuple[SecretPattern, ...] = (
    SecretPattern(
        "aws-access-key",
        "AWS access key id",
        re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
        ("AKIA", "ASIA"),
    ),
    SecretPattern(
        "private-key",
        "private key block",
        re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
        ("PRIVATE KEY",),
    ),
    SecretPattern(
        "anthropic-api-key",
        "Anthropic API key",
        re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}"),
        ("sk-ant-",),
    ),
    SecretPattern(
        "openai-api-key",
        "OpenAI-style API key",
        re.compile(r"\bsk-(?!ant-)(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,}"),
        ("sk-",),
    ),
    SecretPattern(
        "github-token",
        "GitHub token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    SecretPattern(
        "slack-token",
        "Slack token",
        re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
        ("xox",),
    ),
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
PASSWORD_WORDS = (
    "password", "passwd", "passphrase", "secret_key", "client_secret", "apikey", "api_key",
    "auth_token", "access_token",
)  # fmt: skip
"""What every `PASSWORD_ASSIGNMENT` name contains, lowercased."""

PLACEHOLDER_MARKS = (
    "example", "changeme", "change-me", "change_me", "placeholder", "your", "dummy", "xxxx",
    "****", "<", "{", "$", "://",
)  # fmt: skip
"""A literal containing one of these is a template or a URL, not a secret."""


# --- bandit's tests: ruff, in-process, and bandit for the rest ---------------------------


def security_targets(workspace: Workspace) -> list[str]:
    """The files bandit would scan: every `.py` file outside its default excluded folders."""
    return [
        path.as_posix()
        for path in workspace.written
        if path.suffix == ".py"
        and not any(p in BANDIT_EXCLUDED or p.endswith(".egg") for p in path.parts[:-1])
    ]


async def security_scan(
    workspace: Workspace,
    report: ChecksReport,
    timeout_seconds: float,
    cache: CheckCache | None = None,
) -> int:
    """bandit's tests on the Python files (`checks.bandit_rules`); how many files were reused.

    Per file: ruff's `S` rules plus the in-process checks, and bandit itself only where a
    remaining test's trigger appears. Unchanged files reuse their stored findings.
    """
    python = {path: workspace.contents[path] for path in security_targets(workspace)}
    if not python:
        return 0
    residual = {path: text for path, text in python.items() if residual_tests(text)}
    store = cache or NoCache()
    scanned, rest = await asyncio.gather(
        per_file(
            "security", python, _scan_version(), store, _scanner(workspace, report, timeout_seconds)
        ),
        per_file(
            "bandit",
            residual,
            _bandit_version(),
            store,
            _bandit(workspace, report, timeout_seconds),
        ),
    )
    unparsed = []
    for path in sorted(python):
        found = scanned.results.get(path)
        extra = rest.results.get(path)
        if found is None and extra is None:
            continue
        # where bandit ran a test on a file, its findings for that test are the ones kept
        covered = set(residual_tests(python[path])) if extra is not None else set()
        report.findings += [f for f in (found.findings if found else []) if f.rule not in covered]
        report.findings += extra.findings if extra else []
        if (found and found.unparsed) or (extra and extra.unparsed):
            unparsed.append(path)
    if unparsed:
        report.notes.append(
            f"the security scan could not parse {len(unparsed)} file(s): {', '.join(unparsed)}"
        )
    return scanned.reused


def _scan_version() -> str:
    skipped = sorted(BANDIT_SKIPPED_IN_TESTS)
    return f"ruff {ruff_version()} {RUFF_SECURITY_RULES} {rules_fingerprint()} {skipped}"


def _bandit_version() -> str:
    return f"bandit {bandit_version()} {rules_fingerprint()} {sorted(BANDIT_SKIPPED_IN_TESTS)}"


def _scanner(workspace: Workspace, report: ChecksReport, timeout_seconds: float) -> FileChecker:
    """ruff's `S` rules and the in-process checks on some files."""
    folder = workspace.scratch / "security"

    async def check(paths: list[str]) -> dict[str, FileResult] | None:
        written = write_files(folder, paths, workspace.contents)
        if not written:
            return {}
        argv = [
            *("check", "--isolated", "--no-cache", "--exit-zero", "--ignore-noqa"),
            *("--output-format", "json", "--select", ",".join(RUFF_SECURITY_RULES), "--", *written),
        ]
        output, inline = await asyncio.gather(
            run_tool("ruff", argv, workspace, report, timeout_seconds, cwd=folder),
            asyncio.to_thread(_inline, {p: workspace.contents[p] for p in written}),
        )
        if output is None:
            return None
        try:
            scanned = _ruff_security(json.loads(output or "[]"), folder, workspace.contents)
        except (ValueError, TypeError, KeyError) as exc:
            report.notes.append(
                f"ruff output could not be read ({exc}): the security scan did not count"
            )
            return None
        for path, found in inline.items():
            result = scanned.setdefault(path, FileResult())
            result.findings += found.findings
            result.unparsed = result.unparsed or found.unparsed
        return scanned

    return check


def _inline(files: dict[str, str]) -> dict[str, FileResult]:
    results = {}
    for path, text in files.items():
        found = inline_findings(path, text)
        results[path] = FileResult(
            [f for f in found or [] if not _skipped(f)], unparsed=found is None
        )
    return results


def _ruff_security(
    diagnostics: list[dict[str, object]], root: Path, files: dict[str, str]
) -> dict[str, FileResult]:
    results: dict[str, FileResult] = {}
    for item in diagnostics:
        file = repository_path(str(item["filename"]), root)
        result = results.setdefault(file, FileResult())
        if item.get("code") in SYNTAX_ERRORS:
            result.unparsed = True
            continue
        finding = ruff_bandit_finding(item, file, files.get(file, ""))
        if finding is not None and not _skipped(finding):
            result.findings.append(finding)
    return results


def _bandit(workspace: Workspace, report: ChecksReport, timeout_seconds: float) -> FileChecker:
    """bandit itself, with only the tests ruff lacks that the files need."""
    folder = workspace.scratch / "bandit"

    async def check(paths: list[str]) -> dict[str, FileResult] | None:
        written = write_files(folder, paths, workspace.contents)
        tests = sorted({t for p in written for t in residual_tests(workspace.contents[p])})
        if not tests:
            return {}
        # Our own (empty) ini: otherwise bandit obeys a `.bandit` file the generated code
        # ships, which could skip every test; --ignore-nosec for the same reason.
        ini = workspace.scratch / "bandit.ini"
        ini.write_text("[bandit]\n")
        argv = [
            *("-f", "json", "-q", "--ignore-nosec", "--ini", str(ini)),
            *("-t", ",".join(tests), "--", *written),
        ]
        output = await run_tool("bandit", argv, workspace, report, timeout_seconds, cwd=folder)
        if output is None:
            return None
        try:
            data = json.loads(output)
            findings = bandit_findings(data, folder)
        except (ValueError, TypeError, KeyError) as exc:
            report.notes.append(f"bandit output could not be read ({exc}): the scan did not count")
            return None
        results: dict[str, FileResult] = {}
        for finding in findings:
            results.setdefault(finding.file or "", FileResult()).findings.append(finding)
        for error in data.get("errors", []):
            results.setdefault(
                repository_path(error["filename"], folder), FileResult()
            ).unparsed = True
        return results

    return check


def _skipped(finding: Finding) -> bool:
    return finding.rule in BANDIT_SKIPPED_IN_TESTS and is_test_path(finding.file or "")


def bandit_findings(data: dict[str, list[dict[str, object]]], root: Path) -> list[Finding]:
    findings = []
    for item in data.get("results", []):
        file = repository_path(str(item["filename"]), root)
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
                line=line_number(str(item.get("line_number", ""))),
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
        tokens = [s for s in SECRET_PATTERNS if any(a in content for a in s.anchors)]
        lowered = "" if is_test_path(path) else content.lower()
        passwords = any(word in lowered for word in PASSWORD_WORDS)
        if not tokens and not passwords:
            continue
        for number, line in enumerate(content.splitlines(), start=1):
            for secret in tokens:
                match = secret.pattern.search(line)
                if match:
                    findings.append(_secret(path, number, secret.rule, secret.label, match[0]))
            if not passwords:
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
