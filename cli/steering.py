"""Steering a running goal: gate and budget decisions, what it waits for, resets, dead
letters (`dlq`) and plan changes (`tasks`)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from temporalio.client import Client

from cli.runner import console, run_command
from core.contracts import (
    BUDGET_GATE,
    PLAN_APPROVAL_GATE,
    Decision,
    DecisionKind,
    NewTask,
    TaskModification,
    TaskRemoval,
    TaskState,
    WorkBreakdown,
)
from core.infrastructure.settings import get_settings
from core.infrastructure.temporal import connect
from core.services import steering as steer

app = typer.Typer()
dead_letters_app = typer.Typer(help="Dead-lettered tasks and failed runs.", no_args_is_help=True)
tasks_app = typer.Typer(help="Change the plan of a running goal.", no_args_is_help=True)

By = Annotated[str, typer.Option("--by", help="Who decides (recorded in the run).")]
Comment = Annotated[str, typer.Option("--comment", help="Why; reaches the implementers.")]


def _steer(work: Callable[[Client], Coroutine[Any, Any, int | None]]) -> None:
    async def connected() -> int | None:
        return await work(await connect(get_settings()))

    run_command(connected())


# --- decisions ---------------------------------------------------------------------------


def _decide(
    run_id: str,
    gate: str,
    kind: DecisionKind,
    comment: str,
    by: str,
    breakdown: Path | None = None,
) -> None:
    async def send() -> int:
        # The file first: a bad one is refused before anything is asked of Temporal.
        edited = read_breakdown(breakdown) if breakdown is not None else None
        decision = Decision(gate=gate, decision=kind, comment=comment, by=by, breakdown=edited)
        taken = await steer.decide(await connect(get_settings()), run_id, decision)
        console.print(f"{taken.decision.value} accepted by gate {gate} of run {run_id}")
        return 0

    run_command(send())


@app.command()
def approve(run_id: str, gate: str, comment: Comment = "", by: By = "cli") -> None:
    """Approve a gate that waits for a human decision."""
    _decide(run_id, gate, DecisionKind.APPROVE, comment, by)


@app.command()
def reject(run_id: str, gate: str, comment: Comment = "", by: By = "cli") -> None:
    """Reject a gate that waits for a human decision (its run fails)."""
    _decide(run_id, gate, DecisionKind.REJECT, comment, by)


@app.command("request-changes")
def request_changes(run_id: str, gate: str, comment: Comment = "", by: By = "cli") -> None:
    """Send a waiting gate's findings (and your comment) back to the implementers."""
    _decide(run_id, gate, DecisionKind.REQUEST_CHANGES, comment, by)


@app.command("edit-plan")
def edit_plan(
    run_id: str,
    breakdown: Annotated[
        Path, typer.Argument(help="The edited work breakdown: JSON with its `packages`.")
    ],
    comment: Comment = "",
    by: By = "cli",
) -> None:
    """Replace a waiting work breakdown (`plan_approval`) with yours; the run checks it by the
    same rules as the planner's and expands the stage with it. `orchestrator plan RUN_ID
    --json` prints the one to start from."""
    _decide(run_id, PLAN_APPROVAL_GATE, DecisionKind.EDIT, comment, by, breakdown)


def read_breakdown(path: Path) -> WorkBreakdown:
    """A breakdown file, or a ValueError that says in one line what is wrong with it."""
    try:
        return WorkBreakdown.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        raise ValueError(f"{path} is not a work breakdown: {first['msg']} at {where}") from None


class BudgetAnswer(StrEnum):
    RAISE = "raise"
    ABORT = "abort"


@app.command()
def budget(
    run_id: str,
    answer: Annotated[BudgetAnswer, typer.Argument(help="raise (go on spending) or abort.")],
    tokens: Annotated[
        int | None, typer.Option(min=0, help="With raise: the run's new token limit.")
    ] = None,
    usd: Annotated[
        float | None, typer.Option(min=0, help="With raise: the run's new cost limit.")
    ] = None,
    comment: Comment = "",
    by: By = "cli",
) -> None:
    """Answer a run paused because its budget (or its organization's month) is spent."""

    async def send(client: Client) -> int:
        decision = Decision(
            gate=BUDGET_GATE,
            decision=DecisionKind(answer.value),
            comment=comment,
            by=by,
            budget_tokens=tokens,
            budget_usd=usd,
        )
        taken = await steer.decide(client, run_id, decision)
        console.print(f"{taken.decision.value} accepted by the budget decision of run {run_id}")
        return 0

    _steer(send)


@app.command()
def pending(run_id: str) -> None:
    """What a run waits for: gate decisions and dead-lettered tasks."""

    async def show(client: Client) -> int:
        waiting = await steer.pending(client, run_id)
        for p in waiting:
            console.print(
                f"{p.kind:<12} {p.key:<18} tier {p.tier} since {p.since:%Y-%m-%d %H:%M:%S} "
                f"[dim]({' | '.join(p.options)})[/dim] {p.reason}",
                highlight=False,
            )
        if not waiting:
            console.print(f"run {run_id} waits for nothing")
        return 0

    _steer(show)


@app.command()
def reset(
    run_id: str,
    to: Annotated[str, typer.Option("--to", help="Re-run from just before this task.")],
) -> None:
    """Reset a run (Temporal workflow reset) to before TASK; earlier work is replayed, not redone."""

    async def send(client: Client) -> int:
        new_run = await steer.reset_to_task(client, run_id, to)
        console.print(f"run {run_id} reset to before task {to} (Temporal run {new_run})")
        return 0

    _steer(send)


# --- dead letters ------------------------------------------------------------------------


@dead_letters_app.command("list")
def dlq_list() -> None:
    """Dead-lettered tasks of running runs, and failed runs (from Temporal visibility)."""

    async def show(client: Client) -> int:
        rows = await steer.dead_letters(client)
        for run_id, task, why in rows:
            console.print(f"{run_id}  {task:<18} {why}", highlight=False)
        if not rows:
            console.print("no dead-lettered tasks or failed runs")
        return 0

    _steer(show)


def _resolve(run_id: str, task: str, action: str, comment: str, by: str) -> None:
    async def send(client: Client) -> int:
        taken = await steer.resolve(client, run_id, task, action, comment, by)
        console.print(f"{taken.action} accepted for task {task} of run {run_id}")
        return 0

    _steer(send)


@dead_letters_app.command("retry")
def dlq_retry(run_id: str, task: str, comment: Comment = "", by: By = "cli") -> None:
    """Run a dead-lettered task again from the turn that failed."""
    _resolve(run_id, task, "retry", comment, by)


@dead_letters_app.command("skip")
def dlq_skip(run_id: str, task: str, comment: Comment = "", by: By = "cli") -> None:
    """Skip a dead-lettered task; its dependants go on without it."""
    _resolve(run_id, task, "skip", comment, by)


@dead_letters_app.command("abort")
def dlq_abort(run_id: str, task: str, comment: Comment = "", by: By = "cli") -> None:
    """Give up on a dead-lettered task; its dependants cannot run and the run fails."""
    _resolve(run_id, task, "abort", comment, by)


# --- plan changes ------------------------------------------------------------------------


def _ids(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _change(name: str, apply: Callable[[Client], Coroutine[Any, Any, TaskState | None]]) -> None:
    async def send(client: Client) -> int:
        task = await apply(client)
        console.print(f"{name}: done" + (f" ({task.id}: {task.status.value})" if task else ""))
        return 0

    _steer(send)


@tasks_app.command("add")
def tasks_add(
    run_id: str,
    task_id: Annotated[str, typer.Option("--id", help="The new task's id.")],
    role: Annotated[str, typer.Option(help="Its agent role.")],
    after: Annotated[str | None, typer.Option(help="Tasks it waits for, comma-separated.")] = None,
    before: Annotated[str | None, typer.Option(help="Pending tasks that must wait for it.")] = None,
    description: Annotated[str, typer.Option(help="What the agent should do.")] = "",
    model: Annotated[str | None, typer.Option(help="Model for this task.")] = None,
) -> None:
    """Add a task to a running goal."""
    new = NewTask(
        id=task_id,
        role=role,
        depends_on=_ids(after),
        before=_ids(before),
        description=description,
        model=model,
    )
    _change("add_task", lambda client: steer.add_task(client, run_id, new))


@tasks_app.command("remove")
def tasks_remove(run_id: str, task: str) -> None:
    """Remove a pending task; its dependants inherit its dependencies."""
    removal = TaskRemoval(task=task)
    _change("remove_task", lambda client: steer.remove_task(client, run_id, removal))


@tasks_app.command("modify")
def tasks_modify(
    run_id: str,
    task: str,
    role: Annotated[str | None, typer.Option(help="New role.")] = None,
    after: Annotated[str | None, typer.Option(help="New dependencies, comma-separated.")] = None,
    model: Annotated[str | None, typer.Option(help="New model.")] = None,
    prompt: Annotated[str | None, typer.Option(help="Instructions added to its prompt.")] = None,
) -> None:
    """Change a pending task: role, dependencies, model, prompt additions."""
    change = TaskModification(
        task=task,
        role=role,
        depends_on=_ids(after) if after is not None else None,
        model=model,
        prompt_addition=prompt,
    )
    _change("modify_task", lambda client: steer.modify_task(client, run_id, change))
