"""How runs look in a terminal."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from core.contracts import AgentNote, RunState, RunStatus, TaskStatus
from core.persistence.db import Run
from core.services.breakdowns import StageView

STATUS_STYLE = {
    "pending": "dim",
    "running": "yellow",
    "waiting": "bold magenta",
    "dead_lettered": "bold red",
    "completed": "green",
    "skipped": "cyan",
    "failed": "red",
    "cancelled": "dim red",
}
"""Task and run states by value (`TaskStatus`, `RunStatus`): the two share their common ones."""


def styled(status: TaskStatus | RunStatus | str) -> Text:
    """A state as a table cell, in its colour; one this table does not know stays plain."""
    value = str(status)
    return Text(value, style=STATUS_STYLE.get(value, ""))


OFFLINE_MODEL_NOTE = "offline model: deterministic templates, no LLM was called"


def model_label(model: str | None) -> str:
    if not model:
        return ""
    return f"{model} (offline)" if model.startswith("offline") else model


NOTES_SHOWN = 5
NOTE_PREVIEW_CHARS = 70


def run_table(state: RunState) -> Table:
    caption = "\n".join(
        part for part in (waiting_caption(state), notes_caption(state.notes)) if part
    )
    table = Table(
        title=f"Run {state.run_id} · {state.template} · {state.status.value}",
        caption=caption or None,
        caption_justify="left",
    )
    for column in (
        "task",
        "role",
        "state",
        "turns",
        "tokens",
        "cost",
        "model",
        "files",
    ):
        table.add_column(
            column,
            justify="right" if column in ("turns", "tokens", "cost", "files") else "left",
        )
    shown: set[str] = set()
    for task in state.tasks:
        if task.stage and task.stage not in shown:
            shown.add(task.stage)
            table.add_row(Text(stage_heading(task.stage, state), style="bold"))
        table.add_row(
            f"  {task.id}" if task.stage else task.id,
            task.role,
            styled(task.status),
            str(task.turns),
            f"{task.usage.total:,}",
            f"${task.cost_usd:.4f}",
            model_label(task.model),
            str(len(task.artifacts)),
        )
    table.add_section()
    table.add_row(
        "total",
        "",
        styled(state.status),
        str(sum(t.turns for t in state.tasks)),
        f"{state.usage.total:,}",
        f"${state.cost_usd:.4f}",
        "",
        str(len(state.artifacts)),
    )
    return table


def stage_heading(stage: str, state: RunState) -> str:
    """The row above a stage's tasks: which planner shaped it, and how."""
    expansion = next((e for e in state.expansions if e.stage == stage), None)
    if expansion is None:
        return f"stage {stage}"
    return f"stage {stage} ({expansion.status.value}, planned by {expansion.source_task})"


def breakdown_text(stage: StageView) -> str:
    """`orchestrator plan`: a stage's breakdown as a table and a Mermaid graph."""
    lines = [
        f"stage {stage.stage}: {stage.status.value} (planned by {stage.source_task}, "
        f"{stage.rounds} breakdowns submitted"
        + (f", decided by {stage.decided_by}" if stage.decided_by else "")
        + ")",
        f"tasks: {', '.join(stage.tasks) or '-'}",
    ]
    lines += [f"refused: {problem}" for problem in stage.problems]
    if stage.breakdown is not None:
        lines += ["", stage.table, "", "```mermaid", stage.mermaid, "```"]
    return "\n".join(lines) + "\n"


def waiting_caption(state: RunState) -> str:
    """Under the table of a run that waits for a person: who waits, and where to answer."""
    waiting = [t.id for t in state.tasks if t.status == TaskStatus.WAITING]
    dead = [t.id for t in state.tasks if t.status == TaskStatus.DEAD_LETTERED]
    if not waiting and not dead:
        return ""
    said = []
    if waiting:
        said.append(f"waiting for a decision: {', '.join(waiting)}")
    if dead:
        said.append(f"dead-lettered: {', '.join(dead)}")
    return f"{'; '.join(said)}\nanswer: orchestrator pending {state.run_id}"


def runs_table(runs: Sequence[Run]) -> Table:
    """`orchestrator runs`: one row per run, newest first, with a header."""
    table = Table()
    table.add_column("run", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("template", no_wrap=True)
    table.add_column("cost", justify="right", no_wrap=True)
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("goal", overflow="ellipsis", no_wrap=True, max_width=60)
    for run in runs:
        table.add_row(
            run.id,
            styled(run.status),
            run.template,
            f"${run.cost_usd:.4f}",
            f"{run.created_at:%Y-%m-%d %H:%M}",
            " ".join(run.goal.split()),
        )
    return table


def tool_lines(state: RunState) -> list[str]:
    """Per task, the commands it ran and the tool calls it made, as its ledger recorded them,
    e.g. `backend: commands 2 (last exit 0); tool calls: str_replace_based_edit_tool 6, bash 2`."""
    lines = []
    for task in state.tasks:
        said = []
        if task.commands:
            last = task.commands[-1].exit_code
            ended = "stopped by a limit" if last is None else f"exit {last}"
            said.append(f"commands {len(task.commands)} (last {ended})")
        counts = sorted(task.tool_counts.items(), key=lambda item: (-item[1], item[0]))
        if counts:
            said.append("tool calls: " + ", ".join(f"{name} {count}" for name, count in counts))
        if said:
            lines.append(f"{task.id}: " + "; ".join(said))
    return lines


def failures(state: RunState) -> list[str]:
    return [f"{t.id}: {t.error}" for t in state.tasks if t.status == TaskStatus.FAILED and t.error]


def note_line(note: AgentNote) -> str:
    """One note in a line: who told whom what, the text cut short."""
    text = " ".join(note.text.split())
    if len(text) > NOTE_PREVIEW_CHARS:
        text = text[: NOTE_PREVIEW_CHARS - 1] + "…"
    return f"#{note.seq} {note.from_task} → {note.to}: {note.subject} — {text}"


def notes_caption(notes: list[AgentNote]) -> str:
    """The run's newest notes under its table; the API's status endpoint has them all."""
    if not notes:
        return ""
    shown = notes[-NOTES_SHOWN:]
    older = len(notes) - len(shown)
    heading = f"notes ({len(notes)}" + (f", {older} older not shown)" if older else ")")
    return "\n".join([heading, *(note_line(n) for n in shown)])
