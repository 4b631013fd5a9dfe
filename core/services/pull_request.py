"""The pull-request description of a run's branch, in markdown a reviewer reads first."""

from __future__ import annotations

from core.contracts import Finding, RunState, Severity, TaskState
from core.persistence.db import Run
from core.services.git_history import RunHistory, TaskCommit, TaskSpend

_SEVERITY_ORDER = {Severity.HIGH: 0, Severity.MEDIUM: 1, Severity.LOW: 2}


def pull_request(run: Run, state: RunState | None, history: RunHistory) -> str:
    """Goal, what changed commit by commit, gate verdicts, open findings, tokens and cost."""
    title = _first_line(run.goal) or f"Run {run.id}"
    start = f"base commit `{history.base[:12]}`" if history.base else "an empty repository"
    lines = [
        f"# {_cut(title, 72)}",
        "",
        f"Run `{run.id}` ({run.template}, {state.status.value if state else run.status}): "
        f"branch `{history.branch}` from {start}, {len(history.commits)} commit(s).",
        "",
        "## Goal",
        "",
        run.goal.strip(),
    ]
    lines += _changes(state, history.commits)
    lines += _reviews(state)
    lines += _findings(state)
    lines += _cost(state, history.spend)
    return "\n".join(lines) + "\n"


def _changes(state: RunState | None, commits: tuple[TaskCommit, ...]) -> list[str]:
    lines = ["", "## What changed", ""]
    if not commits:
        return [*lines, "No task changed a file."]
    for commit in commits:
        summary = _first_line(_task(state, commit.task_id).summary if state else "")
        lines.append(
            f"- `{commit.sha[:12]}` **{commit.task_id}** ({commit.role})"
            + (f": {summary}" if summary else "")
        )
        for path in commit.paths:
            lines.append(f"  - {'added' if path in commit.added else 'changed'} `{path}`")
    return lines


def _reviews(state: RunState | None) -> list[str]:
    gates = [t for t in state.tasks if t.gate is not None] if state else []
    lines = ["", "## Reviews", ""]
    if not gates:
        return [*lines, "No review gate ran in this run."]
    lines += [
        "| gate | task | verdict | decided by | rounds | summary |",
        "|---|---|---|---|---|---|",
    ]
    for task in gates:
        assert task.gate is not None
        last = task.verdicts[-1] if task.verdicts else None
        verdict = ("passed" if last.passed else "blocked") if last else task.status.value
        lines.append(
            f"| {task.gate.value} | {task.id} | **{verdict}** "
            f"| {last.decided_by if last else '-'} | {len(task.verdicts)} "
            f"| {_cell(last.summary if last else task.summary) or '-'} |"
        )
    return lines


def _findings(state: RunState | None) -> list[str]:
    """Findings of each gate's last verdict and checks still failing: nothing fixed later."""
    found: list[tuple[str, Finding]] = []
    for task in state.tasks if state else []:
        if task.verdicts:
            found += [(task.id, f) for f in task.verdicts[-1].findings]
        found += [(task.id, f) for f in task.check_failures]
    lines = ["", "## Open findings", ""]
    if not found:
        return [*lines, "None."]
    for task_id, finding in sorted(found, key=lambda tf: _SEVERITY_ORDER[tf[1].severity]):
        where = (
            f" `{finding.file}{f':{finding.line}' if finding.line else ''}`" if finding.file else ""
        )
        rule = f", {finding.rule}" if finding.rule else ""
        fix = f" Suggested fix: {_cell(finding.suggested_fix)}" if finding.suggested_fix else ""
        lines.append(
            f"- **{finding.severity.value}**{where}: {_cell(finding.message)} "
            f"({finding.source}{rule}; {task_id}){fix}"
        )
    return lines


def _cost(state: RunState | None, spend: dict[str, TaskSpend]) -> list[str]:
    order = [t.id for t in state.tasks] if state else []
    task_ids = [t for t in order if t in spend] + sorted(t for t in spend if t not in order)
    lines = ["", "## Cost", ""]
    if not task_ids:
        return [*lines, "No model calls were recorded."]
    lines += ["| task | role | model | tokens | cost (USD) |", "|---|---|---|---:|---:|"]
    models: list[str] = []
    for task_id in task_ids:
        paid = spend[task_id]
        role = _task(state, task_id).role if state else ""
        models += [m for m in paid.models if m not in models]
        lines.append(
            f"| {task_id} | {role or '-'} | {', '.join(paid.models) or '-'} "
            f"| {paid.tokens} | {paid.cost_usd:.4f} |"
        )
    tokens = sum(p.tokens for p in spend.values())
    cost = sum(p.cost_usd for p in spend.values())
    lines.append(f"| **total** | | | **{tokens}** | **{cost:.4f}** |")
    return [*lines, "", f"Model(s): {', '.join(f'`{m}`' for m in models)}."]


def _task(state: RunState | None, task_id: str) -> TaskState:
    try:
        return state.task(task_id) if state else TaskState(id=task_id, role="")
    except KeyError:
        return TaskState(id=task_id, role="")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _cell(text: str) -> str:
    """One line, pipes escaped: safe inside a markdown table row or list item."""
    return " ".join(text.split()).replace("|", "\\|")
