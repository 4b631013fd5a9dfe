"""Following a run in the foreground: the live table on a terminal, one line per event when
the output goes to a file, a pipe or a CI log (where a redrawn table would print nothing
until the end)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from rich.live import Live
from temporalio.client import Client

from cli.render import run_table
from cli.runner import console
from core.contracts import PLAN_APPROVAL_GATE, EventType, RunEvent, RunState
from core.persistence.db import Database
from core.services.runs import events_after, final_state, goal_handle, query_state

POLL_SECONDS = 0.5

Data = dict[str, Any]


async def follow(client: Client, db: Database, run_id: str) -> RunState:
    """Show the run until it closes; return its final state (a failed run's as it recorded it)."""
    result = asyncio.create_task(final_state(db, goal_handle(client, run_id)))
    if console.is_terminal:
        return await _live_table(client, run_id, result)
    return await _event_lines(client, db, run_id, result)


async def _live_table(client: Client, run_id: str, result: asyncio.Task[RunState]) -> RunState:
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while not result.done():
            # None until the first workflow task has run.
            state = await query_state(client, run_id)
            if state is not None:
                live.update(run_table(state))
            await asyncio.wait({result}, timeout=POLL_SECONDS)
        final = result.result()
        live.update(run_table(final))
    console.print()
    return final


async def _event_lines(
    client: Client, db: Database, run_id: str, result: asyncio.Task[RunState]
) -> RunState:
    """Each event once, as it happens: the `events` query after the last seq printed, then
    (once the run closes) the rest from its recorded final state."""
    seq = 0
    while True:
        closed = result.done()
        page = await events_after(db, client, run_id, seq)
        for event in page.events:
            if event.seq <= seq:
                continue  # a reset can replay seqs already printed
            line = event_line(event, run_id)
            if line is not None:
                console.print(line, markup=False, highlight=False)
            seq = event.seq
        if closed:
            return result.result()
        await asyncio.wait({result}, timeout=POLL_SECONDS)


def event_line(event: RunEvent, run_id: str) -> str | None:
    """One event as one line, with the time it happened (UTC); None for the cost updates of
    every model call, which the totals of the next line carry anyway."""
    if event.type == EventType.COST_UPDATED:
        return None
    describe = _DESCRIBE.get(event.type)
    task = event.task or ""
    text = describe(task, event.data, run_id) if describe else f"{event.type.value} {task}"
    return f"{event.at:%H:%M:%S} {text}".rstrip()


def _cut(text: object, limit: int = 200) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _decision_requested(task: str, data: Data, run_id: str) -> str:
    kind = data.get("kind", "gate")
    options = ", ".join(data.get("options", []))
    if kind == "dead_letter":
        answer = f"orchestrator dlq retry|skip|abort {run_id} {task}"
    elif kind == "budget":
        answer = f"orchestrator budget {run_id} raise|abort"
    elif task == PLAN_APPROVAL_GATE:
        answer = (
            f"orchestrator approve|reject|request-changes {run_id} {task}, or "
            f"orchestrator edit-plan {run_id} breakdown.json (see orchestrator plan {run_id})"
        )
    else:
        answer = f"orchestrator approve|reject|request-changes {run_id} {task}"
    return (
        f"{task} waits for a person: {_cut(data.get('reason'))} (options: {options}); "
        f"answer with: {answer}"
    )


def _gate_blocked(task: str, data: Data, _run: str) -> str:
    blocking = "; ".join(_cut(b, 120) for b in data.get("blocking", [])[:3])
    return f"{task} blocked in round {data.get('round')}" + (f": {blocking}" if blocking else "")


def _decided(task: str, data: Data, _run: str) -> str:
    comment = f": {_cut(data.get('comment'))}" if data.get("comment") else ""
    return f"{task}: {data.get('decision')} by {data.get('by')}{comment}"


def _run_ended(word: str) -> Callable[[str, Data, str], str]:
    def describe(_task: str, data: Data, _run: str) -> str:
        error = f": {_cut(data.get('error'))}" if data.get("error") else ""
        return (
            f"run {word}{error} ({data.get('tokens', 0):,} tokens, "
            f"${data.get('cost_usd', 0.0):.4f})"
        )

    return describe


_DESCRIBE: dict[EventType, Callable[[str, Data, str], str]] = {
    EventType.PLAN_REFUSED: lambda t, d, _r: (
        f"{t}: work breakdown refused in round {d.get('round')}"
        + (", back to the planner" if d.get("retry") else "")
        + f": {_cut('; '.join(d.get('problems', [])))}"
    ),
    EventType.STAGE_EXPANDED: lambda t, d, _r: (
        f"stage {d.get('stage')} expanded by {t} into {', '.join(d.get('packages', []))}"
    ),
    EventType.STAGE_FALLBACK: lambda t, d, _r: (
        f"stage {d.get('stage')} keeps the template's tasks {', '.join(d.get('tasks', []))}: "
        + (_cut("; ".join(d.get("problems", []))) or f"{t} submitted no work breakdown")
    ),
    EventType.RUN_STARTED: lambda _t, d, _r: (
        f"run started: {_cut(d.get('goal'))} (template {d.get('template')})"
    ),
    EventType.TASK_STARTED: lambda t, d, _r: f"{t} started ({d.get('role')})",
    EventType.TASK_COMPLETED: lambda t, d, _r: (
        f"{t} completed: {d.get('turns')} turns, "
        f"{_count(len(d.get('artifacts', [])), 'file')}, ${d.get('task_cost_usd', 0.0):.4f}"
    ),
    EventType.TASK_FAILED: lambda t, d, _r: f"{t} failed: {_cut(d.get('error'))}",
    EventType.TASK_SKIPPED: lambda t, d, _r: f"{t} {_cut(d.get('reason')) or 'skipped'}",
    EventType.TASK_DEAD_LETTERED: lambda t, d, _r: f"{t} dead-lettered: {_cut(d.get('error'))}",
    EventType.TASK_VALIDATION_FAILED: lambda t, d, _r: (
        f"{t} failed validation in round "
        f"{d.get('round')}" + (", runs again" if d.get("rerun") else ", kept with its issues")
    ),
    EventType.TASK_CHECKS_FAILED: lambda t, d, _r: (
        f"{t} completed with {d.get('failures')} "
        f"failures of its own checks after {d.get('rounds')} rounds"
    ),
    EventType.GATE_PASSED: lambda t, d, _r: f"{t} passed in round {d.get('round')}",
    EventType.GATE_BLOCKED: _gate_blocked,
    EventType.DECISION_REQUESTED: _decision_requested,
    EventType.DECISION_MADE: _decided,
    EventType.BUDGET_EXCEEDED: lambda _t, d, _r: f"budget spent: {_cut(d.get('reason'))}",
    EventType.NOTE_POSTED: lambda t, d, _r: (
        f"{t} → {d.get('to')}: note #{d.get('seq')} {_cut(d.get('subject'), 80)}"
    ),
    EventType.RUN_COMPLETED: _run_ended("completed"),
    EventType.RUN_FAILED: _run_ended("failed"),
    EventType.RUN_CANCELLED: _run_ended("cancelled"),
}
