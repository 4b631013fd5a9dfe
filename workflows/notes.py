"""Notes between agents (`post_note`, `wait_for_note`) as plain decisions of `GoalWorkflow`.

Who may be addressed, who runs alongside whom, which notes a model call carries and at
which turn, and whether a waiting agent may go on: deterministic functions of the run's
state, unit-tested without Temporal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from datetime import datetime

from core.contracts import (
    NOTE_TO_ALL,
    AgentNote,
    DeliveredNote,
    NoteDraft,
    TaskPlan,
    TaskState,
    TaskStatus,
)


def recipients(tasks: list[TaskPlan]) -> list[str]:
    """What `post_note` may address in this plan: `all`, every task id, every role in it."""
    roles = {t.role for t in tasks} | {r for t in tasks for r in t.review_by}
    return [NOTE_TO_ALL, *(t.id for t in tasks), *sorted(roles - {t.id for t in tasks})]


def peers(tasks: list[TaskPlan], task_id: str) -> dict[str, str]:
    """Tasks that may run at the same time as `task_id` (id -> role), in plan order.

    Those neither upstream nor downstream of it in the DAG: the ones worth a note, since
    an upstream task is done and a downstream one reads its artifacts anyway. It depends
    on the plan only, so a task's conversation names the same peers at every turn.
    """
    by_id = {t.id: t for t in tasks}
    if task_id not in by_id:
        return {}  # a reviewer's scratch task: it reviews, it has no peers
    related = _closure(by_id, task_id, lambda t: t.depends_on)
    dependents = {t.id: [d.id for d in tasks if t.id in d.depends_on] for t in tasks}
    related |= _closure(by_id, task_id, lambda t: dependents[t.id])
    return {t.id: t.role for t in tasks if t.id != task_id and t.id not in related}


def _closure(
    by_id: dict[str, TaskPlan], start: str, step: Callable[[TaskPlan], list[str]]
) -> set[str]:
    """Every task reachable from `start` by `step` (its dependencies, or its dependents)."""
    seen: set[str] = set()
    stack = list(step(by_id[start]))
    while stack:
        tid = stack.pop()
        if tid not in seen and tid in by_id:
            seen.add(tid)
            stack.extend(step(by_id[tid]))
    return seen


def addressed_to(note: AgentNote, task_id: str, role: str) -> bool:
    """Whether a note is for this task: by id, by role or to all, and not its own."""
    return note.from_task != task_id and note.to in (task_id, role, NOTE_TO_ALL)


def from_sender(note: AgentNote, sender: str | None) -> bool:
    return sender is None or sender in (note.from_task, note.from_role)


def deliver(
    notes: Iterable[AgentNote],
    *,
    task_id: str,
    role: str,
    turn: int,
    delivered: MutableMapping[int, int],
) -> list[DeliveredNote]:
    """The notes a task's model call at `turn` carries, oldest first.

    A note is stamped with the turn it is first delivered at, recorded in `delivered`
    (the task's `delivered_notes`), and keeps that stamp at every later turn: the rebuilt
    conversation shows it at the same place each time, so earlier turns never change.
    """
    found = []
    for note in notes:
        if addressed_to(note, task_id, role):
            found.append(DeliveredNote(note=note, turn=delivered.setdefault(note.seq, turn)))
    return found


def posted(
    drafts: Iterable[NoteDraft],
    *,
    after: list[AgentNote],
    from_task: str,
    from_role: str,
    turn: int,
    at: datetime,
) -> list[AgentNote]:
    """Drafts from one turn's tool calls as numbered notes, continuing the run's sequence."""
    seq = after[-1].seq if after else 0
    return [
        AgentNote(
            **draft.model_dump(),
            seq=seq + n,
            from_task=from_task,
            from_role=from_role,
            turn=turn,
            at=at,
        )
        for n, draft in enumerate(drafts, start=1)
    ]


def may_go_on(
    notes: Iterable[AgentNote],
    tasks: Iterable[TaskState],
    *,
    task_id: str,
    role: str,
    delivered: MutableMapping[int, int],
    sender: str | None,
) -> bool:
    """Whether an agent waiting for a note from `sender` may take its next turn.

    Yes once such a note is there and not yet delivered, or when no task that could send
    it is running: a finished or absent sender would keep it waiting for nothing.
    """
    if any(
        addressed_to(n, task_id, role) and from_sender(n, sender) and n.seq not in delivered
        for n in notes
    ):
        return True
    return not any(
        t.id != task_id
        and t.status == TaskStatus.RUNNING
        and (sender is None or sender in (t.id, t.role))
        for t in tasks
    )
