"""Every CLI view renders every task state and every run state: the status table (also the
live table of `run`), the `runs` list and the progress lines of a run followed in a pipe.
`test_progress.py` runs them on a real stack."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from cli.progress import event_line
from cli.render import STATUS_STYLE, run_table, runs_table, styled
from core.contracts import EventType, RunEvent, RunState, RunStatus, TaskState, TaskStatus
from core.persistence.db import Run

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def rendered(table: Table) -> str:
    console = Console(record=True, width=200, color_system="truecolor")
    console.print(table)
    return console.export_text()


def test_every_state_has_its_style() -> None:
    for status in [*TaskStatus, *RunStatus]:
        assert STATUS_STYLE[status.value], status
        assert styled(status).style == STATUS_STYLE[status.value]
    assert styled("an unknown state").plain == "an unknown state"


def test_the_status_table_shows_every_task_state_in_every_run_state() -> None:
    tasks = [TaskState(id=f"task_{s.value}", role="tech_lead", status=s) for s in TaskStatus]
    for run_status in RunStatus:
        state = RunState(run_id="r1", goal="g", template="t", status=run_status, tasks=tasks)
        text = rendered(run_table(state))
        assert f"Run r1 · t · {run_status.value}" in text
        for status in TaskStatus:
            row = next(line for line in text.splitlines() if f"task_{status.value} " in line)
            assert f" {status.value} " in row
        assert "waiting for a decision: task_waiting; dead-lettered: task_dead_lettered" in text
        assert "\nanswer: orchestrator pending r1" in text


def test_the_runs_list_has_a_header_and_a_row_per_run_in_any_state() -> None:
    runs = [
        Run(
            id=f"{i:032x}",
            workflow_id=f"run-{i:032x}",
            goal="Build a todo API\nwith auth " + "and more " * 20,
            template="a-long-template-name" if i % 2 else "sdlc",
            status=status.value,
            cost_usd=0.5,
            created_at=AT,
        )
        for i, status in enumerate(RunStatus)
    ]
    lines = rendered(runs_table(runs)).splitlines()
    header = next(line for line in lines if "run" in line and "status" in line)
    for column in ("template", "cost", "created (UTC)", "goal"):
        assert column in header
    rows = [line for line in lines if any(run.id in line for run in runs)]
    assert len(rows) == len(RunStatus)
    # One column per field: the template column starts at the same place in every row.
    starts = {row.index("sdlc") if "sdlc" in row else row.index("a-long") for row in rows}
    assert len(starts) == 1
    for row, status in zip(rows, RunStatus, strict=True):
        assert f" {status.value} " in row and "$0.5000" in row and "2026-01-02 03:04" in row
        assert "Build a todo API with auth" in row  # the goal on one line, cut short


def test_each_event_of_a_run_is_one_line_and_a_question_says_how_to_answer() -> None:
    for type_ in EventType:
        line = event_line(RunEvent(seq=1, type=type_, at=AT, task="code_review"), "r1")
        if type_ == EventType.COST_UPDATED:
            assert line is None  # every model call: the next line carries the totals
            continue
        assert line is not None and line.startswith("03:04:05 ") and "\n" not in line, type_
    asked = {
        "gate": "orchestrator approve|reject|request-changes r1 code_review",
        "dead_letter": "orchestrator dlq retry|skip|abort r1 code_review",
        "budget": "orchestrator budget r1 raise|abort",
    }
    for kind, answer in asked.items():
        event = RunEvent(
            seq=2,
            type=EventType.DECISION_REQUESTED,
            at=AT,
            task="code_review",
            data={"kind": kind, "reason": "human sign-off required", "options": ["approve"]},
        )
        line = event_line(event, "r1")
        assert line == (
            "03:04:05 code_review waits for a person: human sign-off required "
            f"(options: approve); answer with: {answer}"
        )
