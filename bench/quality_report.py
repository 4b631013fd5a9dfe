"""What `bench.quality` writes: the figures per goal, `quality.md`, `quality.png`, `quality.json`."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from bench import executability
from bench.executability import Executability
from checks.workspace import is_test_path
from core.contracts import Usage

LANGUAGES = {
    ".py": "Python",
    ".js": "JavaScript",
    ".mjs": "JavaScript",
    ".cjs": "JavaScript",
    ".jsx": "JavaScript",
    ".ts": "TypeScript",
    ".tsx": "TypeScript",
    ".html": "HTML",
    ".css": "CSS",
    ".sql": "SQL",
    ".sh": "Shell",
    ".yaml": "YAML",
    ".yml": "YAML",
    ".toml": "TOML",
    ".json": "JSON",
    ".ini": "INI",
    ".cfg": "INI",
    ".md": "Markdown",
    ".txt": "Text",
}
CODE_LANGUAGES = ("Python", "JavaScript", "TypeScript", "HTML", "CSS", "SQL", "Shell")
"""Counted as code lines; configuration and prose are listed by language but not counted."""

PUBLISHED = (
    # (system, benchmark, executability of 4, tokens per task, source)
    ("MetaGPT", "SoftwareDev", "3.75", 31_255, "MetaGPT paper (arXiv 2308.00352), Table 3"),
    (
        "ChatDev",
        "SoftwareDev",
        "2.25",
        19_292,
        "the same table (ChatDev as run by the MetaGPT authors)",
    ),
)
"""Published figures of multi-agent peers: quoted, not measured here."""


@dataclass(frozen=True)
class Goal:
    name: str
    kind: str
    text: str
    expects_api: bool
    """The goal asks for a service: the API check applies even if no app was delivered."""


@dataclass
class GoalResult:
    goal: Goal
    run_id: str
    status: str
    wall_seconds: float
    usage: Usage
    cost_usd: float
    model_calls: int
    models: list[str]
    lines: dict[str, int]
    """Non-blank lines by language, every delivered file."""
    test_lines: int
    """Non-blank code lines in test files."""
    gate_revisions: int
    """Gate rounds that blocked and sent the work back."""
    human_interventions: int
    """Decisions the run asked a human for (gate escalations, dead letters, budget)."""
    executability: Executability
    error: str | None = None

    @property
    def code_lines(self) -> int:
        return sum(self.lines.get(language, 0) for language in CODE_LANGUAGES)

    def as_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in asdict(self).items() if k not in ("usage", "executability")},
            "usage": self.usage.model_dump(),
            "tokens": self.usage.total,
            "code_lines": self.code_lines,
            "executability": self.executability.as_dict(),
        }


@dataclass
class QualityReport:
    date: str
    provider: str
    models: list[str]
    template: str
    concurrency: int
    wall_seconds: float
    results: list[GoalResult] = field(default_factory=list)

    @property
    def offline(self) -> bool:
        return self.provider == "offline"

    @property
    def usage(self) -> Usage:
        return sum((r.usage for r in self.results), Usage())

    @property
    def mean_score(self) -> float:
        return sum(r.executability.score for r in self.results) / max(len(self.results), 1)


def count_lines(files: dict[str, str]) -> tuple[dict[str, int], int]:
    """(non-blank lines by language, non-blank code lines in test files)."""
    by_language: dict[str, int] = {}
    test_lines = 0
    for path, content in files.items():
        suffix = PurePosixPath(path).suffix.lower()
        language = (
            "Dockerfile" if PurePosixPath(path).name == "Dockerfile" else LANGUAGES.get(suffix)
        )
        language = language or "other"
        lines = sum(1 for line in content.splitlines() if line.strip())
        by_language[language] = by_language.get(language, 0) + lines
        if language in CODE_LANGUAGES and is_test_path(path):
            test_lines += lines
    return dict(sorted(by_language.items(), key=lambda item: -item[1])), test_lines


def _mark(value: bool | None) -> str:
    return "n/a" if value is None else ("pass" if value else "FAIL")


def _passed(report: QualityReport, name: str) -> str:
    values = [getattr(r.executability, name) for r in report.results]
    applicable = [v for v in values if v is not None]
    return f"{sum(applicable)}/{len(applicable)}"


def provider_line(report: QualityReport) -> str:
    models = ", ".join(report.models) or "none called"
    if report.offline:
        return (
            f"Provider: offline (model {models}), the deterministic stand-in for an LLM. These "
            "figures prove the harness end to end (real runs, real sandbox, real ledger); they "
            "measure no model."
        )
    return f"Provider: {report.provider} (models {models}): figures of a real model."


def _amounts(code: float, tests: float, usage: Usage, cost: float, wall: float) -> list[str]:
    """The measured columns, from code lines to wall time."""
    return [
        f"{code:,.0f} ({tests:,.0f})",
        f"{usage.input_tokens:,}",
        f"{usage.output_tokens:,}",
        f"{usage.cache_read_input_tokens:,}",
        f"{cost:.4f}",
        f"{wall:.1f}",
    ]


def summary_rows(report: QualityReport) -> list[list[str]]:
    """One row per goal, the totals, and the mean per goal."""
    rows = []
    for r in report.results:
        e = r.executability
        rows.append(
            [
                *(r.goal.name, r.goal.kind, r.status, f"{e.score}/4"),
                *(_mark(e.tests_pass), _mark(e.entry_starts), _mark(e.api_answers)),
                *_amounts(r.code_lines, r.test_lines, r.usage, r.cost_usd, r.wall_seconds),
                *(str(r.gate_revisions), str(r.human_interventions)),
            ]
        )
    results = report.results
    n = max(len(results), 1)
    code = sum(r.code_lines for r in results)
    tests = sum(r.test_lines for r in results)
    cost = sum(r.cost_usd for r in results)
    usage = report.usage
    mean = Usage(
        input_tokens=round(usage.input_tokens / n),
        output_tokens=round(usage.output_tokens / n),
        cache_read_input_tokens=round(usage.cache_read_input_tokens / n),
    )
    completed = sum(r.status == "completed" for r in results)
    rows.append(
        [
            *("total", f"{len(results)} goals", f"{completed} completed"),
            f"mean {report.mean_score:.2f}",
            *(_passed(report, check) for check in ("tests_pass", "entry_starts", "api_answers")),
            *_amounts(code, tests, usage, cost, report.wall_seconds),
            str(sum(r.gate_revisions for r in results)),
            str(sum(r.human_interventions for r in results)),
        ]
    )
    wall = sum(r.wall_seconds for r in results)
    rows.append(
        ["per goal", *[""] * 6, *_amounts(code / n, tests / n, mean, cost / n, wall / n), "", ""]
    )
    return rows


HEADERS = [
    "goal",
    "kind",
    "status",
    "exec",
    "tests",
    "entry",
    "API",
    "code lines (tests)",
    "input tok",
    "output tok",
    "cache read",
    "cost USD",
    "wall s",
    "revisions",
    "humans",
]


def summary_lines(report: QualityReport) -> list[str]:
    """The table printed on stdout, aligned."""
    rows = [HEADERS, *summary_rows(report)]
    widths = [max(len(row[i]) if i < len(row) else 0 for row in rows) for i in range(len(HEADERS))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        for row in rows
    ]


def markdown(report: QualityReport) -> str:
    n = max(len(report.results), 1)
    tokens_per_goal = report.usage.total / n
    lines = [
        f"# Quality benchmark, {report.date}",
        "",
        f"**{provider_line(report)}**",
        "",
        f"Template `{report.template}`, {len(report.results)} goals, {report.concurrency} at "
        f"a time, {report.wall_seconds:.1f} s in all, on {os.cpu_count()} cores. Sandbox: "
        f"{_isolation(report)}.",
        "",
        "![chart](quality.png)",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
        *(
            "| " + " | ".join(row + [""] * (len(HEADERS) - len(row))) + " |"
            for row in summary_rows(report)
        ),
        "",
        "exec: executability score 0-4 (below). tests, entry, API: the three checks, pass or "
        "FAIL (n/a: no API asked for or delivered). code lines: non-blank lines of Python, "
        "JavaScript, TypeScript, HTML, CSS, SQL and shell, test files in brackets. Tokens and "
        "cost: the ledger's sums over the run's model calls. revisions: gate rounds that "
        "blocked and sent the work back. humans: decisions the run asked a human for; here "
        "the escalation policy answers them at once (approve), so the run goes on.",
        "",
        "## Executability",
        "",
        *_executability_definition(),
        "",
        "## Published figures of peers (not measured here)",
        "",
        "| system | benchmark | executability (of 4) | tokens per task | source |",
        "|---|---|---|---|---|",
        *(f"| {s} | {b} | {e} | {t:,} | {src} |" for s, b, e, t, src in PUBLISHED),
        f"| this run ({report.provider}) | these {len(report.results)} goals | "
        f"{report.mean_score:.2f} | {tokens_per_goal:,.0f} | measured above |",
        "",
        "Their scores were given by people on their SoftwareDev tasks; ours by the checks above "
        "on these goals. Tokens per goal here count input, output, cache read and cache write.",
        "",
        "## Per goal",
        "",
    ]
    for r in report.results:
        lines += _goal_section(r)
    return "\n".join(lines) + "\n"


def _isolation(report: QualityReport) -> str:
    # Each session runs as a uid of its own: the same isolation, told once.
    found = {
        re.sub(r", uid \d+$", "", r.executability.isolation)
        for r in report.results
        if r.executability.isolation
    }
    return "; ".join(sorted(found)) or "none ran"


def _executability_definition() -> list[str]:
    """The checks and the score as `bench.executability` defines them, as Markdown."""
    paragraphs = (executability.__doc__ or "").strip().split("\n\n")[1:]
    # Indented lines continue a bullet; the others start one or go on with a paragraph.
    return [re.sub(r"\n\s+", " ", paragraph) + "\n" for paragraph in paragraphs]


def _goal_section(r: GoalResult) -> list[str]:
    e = r.executability
    languages = ", ".join(f"{language} {count}" for language, count in r.lines.items())
    return [
        f"### {r.goal.name} ({r.goal.kind})",
        "",
        f"Goal: {r.goal.text}",
        "",
        f"- run `{r.run_id}`: {r.status}"
        + (f" ({r.error})" if r.error else "")
        + f", {r.model_calls} model calls, models {', '.join(r.models) or 'none'}",
        f"- score {e.score}/4; tests: {_mark(e.tests_pass)} ({e.tests_detail})",
        f"- entry points: {_mark(e.entry_starts)} ({e.entry_detail})",
        f"- API: {_mark(e.api_answers)} ({e.api_detail or 'none asked for or delivered'})",
        f"- ran in the sandbox: {'; '.join(e.commands) or 'nothing'}",
        f"- non-blank lines by language: {languages or 'no files'}",
        f"- tokens: {r.usage.input_tokens:,} input, {r.usage.output_tokens:,} output, "
        f"{r.usage.cache_read_input_tokens:,} cache read, "
        f"{r.usage.cache_creation_input_tokens:,} cache write; cost ${r.cost_usd:.4f}",
        "",
    ]


def chart(report: QualityReport, path: Path) -> None:
    """Four panels per goal: score, tokens, code lines by language, wall time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report.results
    names = [r.goal.name for r in results]
    rows = list(range(len(names)))
    figure, axes = plt.subplots(2, 2, figsize=(15, 3 + 0.5 * len(names)))
    score, tokens, loc, wall = axes.flat
    outside = {"loc": "upper left", "bbox_to_anchor": (1.0, 1.0), "fontsize": "small"}

    score.barh(rows, [r.executability.score for r in results], color="tab:green")
    score.axvline(3.75, color="tab:red", linestyle="--", label="MetaGPT 3.75\n(published)")
    score.axvline(2.25, color="tab:grey", linestyle=":", label="ChatDev 2.25\n(published)")
    score.set(xlim=(0, 4), title="executability score (0-4)")
    score.legend(**outside)

    _stacked(
        tokens,
        {
            "input": [r.usage.input_tokens for r in results],
            "output": [r.usage.output_tokens for r in results],
            "cache read": [r.usage.cache_read_input_tokens for r in results],
            "cache write": [r.usage.cache_creation_input_tokens for r in results],
        },
    )
    for (system, _, _, per_task, _), style in zip(PUBLISHED, ("--", ":"), strict=True):
        tokens.axvline(per_task, color="black", linestyle=style, label=f"{system} (published)")
    tokens.set(title="tokens per goal (published: per task)")
    tokens.legend(**outside)

    _stacked(loc, {lang: [r.lines.get(lang, 0) for r in results] for lang in CODE_LANGUAGES})
    loc.set(title="code lines (non-blank)")
    loc.legend(**outside)

    wall.barh(rows, [r.wall_seconds for r in results], color="tab:purple")
    wall.set(title="wall time per goal (s)")
    for axis in axes.flat:
        axis.set(yticks=rows, yticklabels=names)
        axis.invert_yaxis()  # the first goal on top, as in the table

    models = ", ".join(report.models)
    offline = ": the offline model, so this proves the harness only" if report.offline else ""
    figure.suptitle(f"bench.quality {report.date}, {report.provider} ({models}){offline}")
    figure.tight_layout()
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)


def _stacked(axis: Any, series: dict[str, list[int]]) -> None:
    """Horizontal bars stacked left to right, one colour per series that has any value."""
    left = [0] * len(next(iter(series.values()), []))
    for label, values in series.items():
        if any(values):
            axis.barh(range(len(values)), values, left=left, label=label)
            left = [a + b for a, b in zip(left, values, strict=True)]


def write_report(report: QualityReport, out: Path) -> list[Path]:
    """quality.md, quality.png and quality.json in `out`; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "quality.md", out / "quality.png", out / "quality.json"]
    paths[0].write_text(markdown(report), encoding="utf-8")
    chart(report, paths[1])
    data = {
        **{k: v for k, v in asdict(report).items() if k != "results"},
        "results": [r.as_dict() for r in report.results],
    }
    paths[2].write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return paths
