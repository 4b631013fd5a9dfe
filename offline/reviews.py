"""The reviewers: a code review and a security review that scan the delivered sources with
fixed rules, each ending in a verdict that blocks on any high-severity finding."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from offline.blueprint import Blueprint
from offline.fragments import bullets, md_table_rows
from offline.job import Deliverable, Job
from offline.templates import render

Severity = Literal["high", "medium", "low", "info"]
_SEVERITIES: tuple[Severity, ...] = ("high", "medium", "low", "info")


@dataclass(frozen=True)
class Finding:
    severity: Severity
    where: str
    text: str


def findings_md(findings: list[Finding]) -> str:
    if not findings:
        return "None."
    ordered = sorted(findings, key=lambda f: _SEVERITIES.index(f.severity))
    return "\n".join(
        f"{n}. **{f.severity}** `{f.where}`: {f.text}" for n, f in enumerate(ordered, start=1)
    )


def verdict_input(reviewer: str, findings: list[Finding], summary: str) -> dict[str, Any]:
    """The structured verdict of a review: any high-severity finding blocks."""
    return {
        "verdict": "block" if any(f.severity == "high" for f in findings) else "pass",
        "summary": summary,
        "findings": [
            {
                "source": reviewer,
                "severity": f.severity if f.severity != "info" else "low",
                "file": f.where.split(":")[0] or None,
                "message": f.text,
            }
            for f in findings
        ],
    }


_SQL_TEXT = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP)\b")
_EXECUTE = frozenset({"execute", "executemany", "executescript"})


def _built_string(node: ast.expr) -> bool:
    """An f-string with values, `"..." % x`, `"..." + x` or `"...".format(x)`."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(part, ast.FormattedValue) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    )


def _sql_literal(node: ast.expr) -> bool:
    """Does the string part of a built string read like SQL?"""
    parts = [node] if isinstance(node, ast.Constant) else list(ast.walk(node))
    return any(
        isinstance(p, ast.Constant) and isinstance(p.value, str) and _SQL_TEXT.search(p.value)
        for p in parts
    )


def string_built_sql(source: str) -> list[int]:
    """Line numbers where SQL is assembled from strings (f-string, %, +, format) instead of
    bound parameters: the usual way SQL injection gets in."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    lines: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.expr):
            continue
        executes_built = (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _EXECUTE
            and any(_built_string(arg) for arg in node.args[:1])
        )
        if executes_built or (_built_string(node) and _sql_literal(node)):
            lines.add(node.lineno)
    return sorted(lines)


def _has(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    return lambda source: compiled.search(source) is not None


def _lacks(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    return lambda source: compiled.search(source) is None


def _is_code(path: str) -> bool:
    return path.startswith(("backend/", "frontend/"))


def _sources(upstream: Mapping[str, str]) -> dict[str, str]:
    """The texts the review rules look at; `backend/tests` joins every test file."""
    tests = [text for path, text in sorted(upstream.items()) if path.startswith("backend/tests/")]
    found = {p: upstream[p] for p in ("backend/app.py", "frontend/app.js") if p in upstream}
    if tests:
        found["backend/tests"] = "\n".join(tests)
    return found


def _count_tests(upstream: Mapping[str, str]) -> tuple[int, int]:
    """(test functions, test files) among the delivered Python tests."""
    files = [p for p in upstream if _is_code(p) and re.search(r"(^|/)test_[^/]*\.py$", p)]
    count = sum(len(re.findall(r"^\s*(?:async\s+)?def test_\w+", upstream[p], re.M)) for p in files)
    return count, len(files)


@dataclass(frozen=True)
class CodeRule:
    """A finding about `where` when `applies(source)`; `severity=None` marks a strength."""

    where: str
    severity: Severity | None
    text: str
    applies: Callable[[str], bool]


_CODE_RULES = (
    CodeRule("backend/app.py", None, "An app factory (`create_app`) gives each test its own "
             "database.", _has(r"def create_app\(")),
    CodeRule("backend/app.py", None, "Pydantic models validate every request body.",
             _has(r"\(BaseModel\)")),
    CodeRule("backend/app.py", "low", "The list endpoint returns every record; add "
             "limit/offset paging before the table grows.", _lacks(r"\bLIMIT\b")),
    CodeRule("backend/app.py", "low", "Schema DDL runs on every connection; switch to "
             "versioned migrations once the schema starts to change.",
             _has(r"executescript\(SCHEMA\)")),
    CodeRule("backend/app.py", "low", "No logging; add request and audit logs before running "
             "it in production.", _lacks(r"import logging")),
    CodeRule("frontend/app.js", None, "The frontend renders API data with `textContent` only.",
             _lacks(r"\.innerHTML")),
    CodeRule("frontend/app.js", "medium", "`innerHTML` with API data allows script injection; "
             "use `textContent`.", _has(r"\.innerHTML")),
    CodeRule("frontend/app.js", "low", "Failed requests are not handled.", _lacks(r"\bcatch\b")),
)  # fmt: skip


def review_code(upstream: Mapping[str, str]) -> tuple[list[str], list[Finding]]:
    """(strengths, findings) of the delivered backend and frontend sources."""
    sources = _sources(upstream)
    tests, _ = _count_tests(upstream)
    strengths: list[str] = []
    findings: list[Finding] = []
    if not any(_is_code(p) for p in upstream):
        text = "No backend or frontend files were delivered; re-run the review once they exist."
        findings.append(Finding("medium", "upstream", text))
    if "backend/app.py" in sources:
        if tests:
            strengths.append(f"{tests} backend test functions cover the endpoints.")
        else:
            findings.append(Finding("high", "backend/tests", "The backend has no tests."))
        if "backend/requirements.txt" not in upstream:
            text = "No requirements.txt: the dependencies are undeclared."
            findings.append(Finding("medium", "backend", text))
        findings += [
            Finding("high", f"backend/app.py:{line}", "SQL built from strings; bind parameters.")
            for line in string_built_sql(sources["backend/app.py"])
        ]
    for rule in _CODE_RULES:
        if rule.where in sources and rule.applies(sources[rule.where]):
            if rule.severity is None:
                strengths.append(rule.text)
            else:
                findings.append(Finding(rule.severity, rule.where, rule.text))
    findings += [
        Finding("low", path, "Unfinished work marked TODO/FIXME.")
        for path in sorted(p for p in upstream if _is_code(p))
        if re.search(r"\b(TODO|FIXME|XXX)\b", upstream[path])
    ]
    return strengths, findings


def code_reviewer(job: Job) -> Deliverable:
    upstream = job.upstream
    code_files = sorted(p for p in upstream if _is_code(p))
    tests, test_files = _count_tests(upstream)
    strengths, findings = review_code(upstream)
    high = sum(f.severity == "high" for f in findings)
    verdict = "pass" if high == 0 else "changes_requested"
    doc = render(
        "reviews/code_review.md",
        file_list=bullets(f"`{p}` ({len(upstream[p].splitlines())} lines)" for p in code_files)
        or "None.",
        test_count=str(tests),
        test_files=str(test_files),
        strengths=bullets(strengths) or "None noted.",
        findings=findings_md(findings),
        verdict=verdict,
        verdict_reason=(
            "no high-severity finding; the others are follow-ups"
            if high == 0
            else f"{high} high-severity finding(s) must be fixed first"
        ),
    )
    return Deliverable(
        {"reviews/code_review.md": doc},
        {"verdict": verdict, "findings": len(findings)},
        verdict_input("code_reviewer", findings, f"{tests} tests in {test_files} files reviewed"),
    )


@dataclass(frozen=True)
class SecurityCheck:
    name: str
    passes: Callable[[str], bool]
    evidence: str
    """What was found when the check passes."""
    severity: Severity
    problem: str
    """The finding when it fails."""
    where: str = "backend/app.py"
    accounts_only: bool = False
    """Only meaningful for a service with user accounts."""


_SECURITY_CHECKS = (
    SecurityCheck("SQL injection", lambda src: not string_built_sql(src),
                  "every `execute` binds its parameters", "high",
                  "SQL is assembled from strings; bind parameters instead."),
    SecurityCheck("Hard-coded secrets",
                  _lacks(r"(SECRET|API_KEY|PASSWORD|TOKEN)\w*\s*=\s*[\"'][^\"']{8,}[\"']"),
                  "none found", "high", "A secret is hard-coded in the source."),
    SecurityCheck("CORS", _lacks(r"allow_origins\s*=\s*\[\s*[\"']\*"), "explicit origin list",
                  "medium", "CORS allows every origin."),
    SecurityCheck("Password hashing", _has(r"pbkdf2_hmac|bcrypt|argon2|scrypt"),
                  "slow KDF (PBKDF2/bcrypt/argon2/scrypt)", "high",
                  "Passwords are not hashed with a slow, salted KDF.", accounts_only=True),
    SecurityCheck("Per-user salt", _has(r"token_bytes|urandom|gensalt"), "random salt per hash",
                  "medium", "Password hashes are not salted per user.", accounts_only=True),
    SecurityCheck("Constant-time comparison", _has(r"compare_digest"), "`hmac.compare_digest`",
                  "medium", "Secrets are compared with `==`, which leaks timing.",
                  accounts_only=True),
    SecurityCheck("Random bearer tokens", _has(r"secrets\.token_(urlsafe|hex)"),
                  "`secrets` CSPRNG tokens", "high", "Tokens are not generated with `secrets`.",
                  accounts_only=True),
    SecurityCheck("Tokens stored hashed", _has(r"token_hash"), "sessions keyed by a digest",
                  "low", "Tokens are stored in clear text.", accounts_only=True),
    SecurityCheck("Token expiry", _has(r"expires_at"), "`expires_at` checked on every request",
                  "medium", "Tokens never expire.", accounts_only=True),
    SecurityCheck("Per-user isolation", _has(r"owner_id = :owner_id"),
                  "record queries filter by `owner_id`", "high",
                  "Records are not scoped to their owner.", accounts_only=True),
    SecurityCheck("Login rate limiting", _has(r"(?i)rate.?limit|throttl|lockout"),
                  "limiter present", "medium", "`/auth/login` has no rate limiting or lockout; "
                  "put the API behind a rate-limiting proxy before going public.",
                  accounts_only=True),
    SecurityCheck("Unauthenticated access tested", _has(r"\b401\b"),
                  "tests assert 401 without a valid token", "medium",
                  "No test proves that requests without a token are rejected.",
                  where="backend/tests", accounts_only=True),
    SecurityCheck("Frontend XSS", _lacks(r"\.innerHTML"), "API data rendered with `textContent`",
                  "medium", "`innerHTML` with API data allows script injection.",
                  where="frontend/app.js"),
    SecurityCheck("Token storage", _lacks(r"localStorage\.setItem\(\"token\""),
                  "`sessionStorage`, cleared with the tab", "low",
                  "The token persists in `localStorage`.", where="frontend/app.js",
                  accounts_only=True),
)  # fmt: skip


def _security_checks(
    bp: Blueprint, upstream: Mapping[str, str]
) -> tuple[list[tuple[str, str, str]], list[Finding]]:
    """(check, result, evidence) rows and findings for the delivered backend and frontend."""
    sources = _sources(upstream)
    accounts = bp.auth or "/login" in sources.get("backend/app.py", "")
    rows: list[tuple[str, str, str]] = []
    findings: list[Finding] = []
    if "backend/app.py" not in sources:
        rows.append(("Backend source", "n/a", "no `backend/app.py` delivered"))
        text = "No backend to review; re-run the review once it is delivered."
        findings.append(Finding("medium", "upstream", text))
    elif not accounts:
        text = "No authentication, by design (the goal asks for no accounts): keep the service "
        text += "on a private network."
        findings.append(Finding("info", "backend/app.py", text))
    for check in _SECURITY_CHECKS:
        if check.where not in sources or (check.accounts_only and not accounts):
            continue
        if check.passes(sources[check.where]):
            rows.append((check.name, "pass", check.evidence))
        else:
            rows.append((check.name, "FAIL", check.problem))
            findings.append(Finding(check.severity, check.where, check.problem))
    return rows, findings


def security_reviewer(job: Job) -> Deliverable:
    rows, findings = _security_checks(job.blueprint, job.upstream)
    counts = {s: sum(f.severity == s for f in findings) for s in _SEVERITIES}
    verdict = "pass" if counts["high"] == 0 else "fail"
    reviewed = [p for p in ("backend/app.py", "frontend/app.js") if p in job.upstream]
    doc = render(
        "reviews/security_review.md",
        scope=", ".join(f"`{p}`" for p in reviewed) or "no source files were delivered",
        check_rows=md_table_rows(rows),
        findings=findings_md(findings),
        verdict=verdict,
        high=str(counts["high"]),
        medium=str(counts["medium"]),
        low=str(counts["low"]),
    )
    return Deliverable(
        {"reviews/security_review.md": doc},
        {"verdict": verdict, "high": counts["high"]},
        verdict_input("security_reviewer", findings, f"{len(rows)} security checks run"),
    )
