"""Scheduling decisions of `GoalWorkflow` as plain functions, unit-tested without Temporal."""

from __future__ import annotations

from collections import deque
from typing import Any

from core.contracts import TaskPlan, TaskState, TaskStatus
from workflows.conditions import parse_condition


def ready_tasks(tasks: list[TaskPlan], statuses: dict[str, TaskStatus]) -> list[TaskPlan]:
    """Pending tasks whose dependencies all completed or were skipped."""
    done = {TaskStatus.COMPLETED, TaskStatus.SKIPPED}
    return [
        task
        for task in tasks
        if statuses[task.id] == TaskStatus.PENDING
        and all(statuses[dep] in done for dep in task.depends_on)
    ]


def blocked_tasks(tasks: list[TaskPlan], statuses: dict[str, TaskStatus]) -> list[TaskPlan]:
    """Pending tasks that can never start because a dependency failed (directly or not)."""
    failed = {tid for tid, status in statuses.items() if status == TaskStatus.FAILED}
    blocked: list[TaskPlan] = []
    changed = True
    while changed:
        changed = False
        for task in tasks:
            if (
                statuses[task.id] == TaskStatus.PENDING
                and task not in blocked
                and any(dep in failed for dep in task.depends_on)
            ):
                blocked.append(task)
                failed.add(task.id)
                changed = True
    return blocked


def should_run(task: TaskPlan, outputs: dict[str, dict[str, Any]]) -> bool:
    if task.skip_reason is not None:
        return False
    return task.when is None or parse_condition(task.when).evaluate(outputs)


def skip_summary(task: TaskPlan) -> str:
    """Why a ready task that `should_run` refused is skipped."""
    return task.skip_reason or f"skipped: condition {task.when!r} is false"


def keep_shape(tasks: list[TaskPlan], states: list[TaskState]) -> None:
    """Each task's state takes its plan's dependencies and gate kind: what draws the run's
    graph from its state alone, even once only its recorded final state is left."""
    by_id = {task.id: task for task in tasks}
    for state in states:
        task = by_id.get(state.id)
        if task is not None:
            state.depends_on, state.gate = list(task.depends_on), task.gate
            state.stage = task.stage


def upstream_ids(tasks: list[TaskPlan], task_id: str) -> list[str]:
    """Every transitive dependency of a task, in plan order (so context reads top-down)."""
    by_id = {t.id: t for t in tasks}
    seen: set[str] = set()
    stack = list(by_id[task_id].depends_on)
    while stack:
        dep = stack.pop()
        if dep not in seen:
            seen.add(dep)
            stack.extend(by_id[dep].depends_on)
    return [t.id for t in tasks if t.id in seen]


def topological_order(tasks: list[TaskPlan]) -> list[TaskPlan]:
    """Every task after its dependencies, ties in plan order (Kahn's algorithm).

    Iterative, like every walk here: plans come from users, and a recursive walk of a long
    dependency chain would exhaust Python's stack. Raises ValueError on a cycle.
    """
    known = {t.id for t in tasks}
    waiting = {t.id: sum(1 for d in t.depends_on if d in known) for t in tasks}
    dependants: dict[str, list[TaskPlan]] = {t.id: [] for t in tasks}
    for task in tasks:
        for dep in task.depends_on:
            if dep in known:
                dependants[dep].append(task)
    ready = deque(t for t in tasks if waiting[t.id] == 0)
    order: list[TaskPlan] = []
    while ready:
        task = ready.popleft()
        order.append(task)
        for dependant in dependants[task.id]:
            waiting[dependant.id] -= 1
            if waiting[dependant.id] == 0:
                ready.append(dependant)
    if len(order) != len(tasks):
        raise ValueError("the plan has a dependency cycle")
    return order


def critical_path(tasks: list[TaskPlan], cost: dict[str, float]) -> float:
    """Longest weighted path through the DAG: the best makespan any scheduler could reach."""
    finish: dict[str, float] = {}
    for task in topological_order(tasks):
        finish[task.id] = cost.get(task.id, 0.0) + max(
            (finish[d] for d in task.depends_on if d in finish), default=0.0
        )
    return max(finish.values(), default=0.0)


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as a path that returns to its start, or None.

    A depth-first search with its own stack of iterators (see `topological_order`).
    """
    on_path, explored = 1, 2
    state: dict[str, int] = {}
    for root in edges:
        if root in state:
            continue
        state[root] = on_path
        path = [root]
        pending = [iter(edges[root])]
        while pending:
            for dep in pending[-1]:
                if state.get(dep) == on_path:
                    return [*path[path.index(dep) :], dep]
                if dep not in state and dep in edges:
                    state[dep] = on_path
                    path.append(dep)
                    pending.append(iter(edges[dep]))
                    break
            else:
                state[path.pop()] = explored
                pending.pop()
    return None
