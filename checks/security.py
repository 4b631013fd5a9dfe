"""Security (security_review): bandit on the Python code, and a secret scan of every file.

The rule tables are module constants so they are easy to extend.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from checks.findings import line_number
from checks.tools import run_tool
from checks.workspace import Workspace, is_test_path, repository_path
from core.contracts import ChecksReport, Finding, Severity

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


# --- bandit ---------------------------------------------------------------------------


async def bandit(workspace: Workspace, report: ChecksReport, timeout_seconds: float) -> None:
    # Our own (empty) ini: otherwise bandit obeys a `.bandit` file the generated code
    # ships, which could skip every test; --ignore-nosec for the same reason.
    ini = workspace.scratch / "bandit.ini"
    ini.write_text("[bandit]\n")
    argv = ["-r", ".", "-f", "json", "-q", "--ignore-nosec", "--ini", str(ini)]
    output = await run_tool("bandit", argv, workspace, report, timeout_seconds)
    if output is None:
        return
    try:
        data = json.loads(output)
        report.findings += bandit_findings(data, workspace.root)
    except (ValueError, TypeError, KeyError) as exc:
        report.notes.append(f"bandit output could not be read ({exc}): the scan did not count")
        return
    unparsed = [repository_path(e["filename"], workspace.root) for e in data.get("errors", [])]
    if unparsed:
        report.notes.append(
            f"bandit could not parse {len(unparsed)} file(s): {', '.join(unparsed)}"
        )


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
