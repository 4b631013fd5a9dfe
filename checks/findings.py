"""How findings are worded and how many a report lists.

Findings are precise enough for an implementer to act on (file, line, rule, message);
HIGH findings block the gate. Messages are clipped so one noisy tool cannot flood a
report, and low-severity findings past a limit per tool are counted, not listed.
"""

from __future__ import annotations

from core.contracts import ChecksReport, Finding, Severity

MAX_LOW_FINDINGS_PER_SOURCE = 50
"""Past this, a tool's low-severity findings are counted in a note instead of listed."""
MAX_MESSAGE_CHARS = 400


def cap_low_findings(report: ChecksReport) -> None:
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


def clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def tail(text: str) -> str:
    """The end of some output, on one line: where the error usually is."""
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_MESSAGE_CHARS else "…" + flat[-(MAX_MESSAGE_CHARS - 1) :]


def line_number(value: str | None, *, offset: int = 0) -> int | None:
    """A tool's line attribute as a number, if it is one."""
    return int(value) + offset if value and value.isdigit() else None
