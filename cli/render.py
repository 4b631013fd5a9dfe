"""How runs look in a terminal."""

from __future__ import annotations

from rich.table import Table

from core.contracts import AgentNote, RunState, TaskStatus

STATUS_STYLE = {
    TaskStatus.PENDING: "dim",
    TaskStatus.RUNNING: "yellow",
    TaskStatus.COMPLETED: "green",
    TaskStatus.SKIPPED: "cyan",
    TaskStatus.FAILED: "red",
}

OFFLINE_MODEL_NOTE = "offline model: deterministic templates, no LLM was called"


def model_label(model: str | None) -> str:
    if not model:
        return ""
    return f"{model} (offline)" if model.startswith("offline") else model


NOTES_SHOWN = 5
NOTE_PREVIEW_CHARS = 70


def run_table(state: RunState) -> Table:
    table = Table(
        title=f"Run {state.run_id} · {state.template} · {state.status.value}",
        caption=notes_caption(state.notes) or None,
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
    for task in state.tasks:
        style = STATUS_STYLE[task.status]
        table.add_row(
            task.id,
            task.role,
            f"[{style}]{task.status.value}[/{style}]",
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
        state.status.value,
        str(sum(t.turns for t in state.tasks)),
        f"{state.usage.total:,}",
        f"${state.cost_usd:.4f}",
        "",
        str(len(state.artifacts)),
    )
    return table


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
