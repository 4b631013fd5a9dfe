"""Scheduling decisions of `GoalWorkflow` as plain functions, unit-tested without Temporal."""

from __future__ import annotations

from typing import Any

from core.contracts import TaskPlan, TaskStatus
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
    return task.when is None or parse_condition(task.when).evaluate(outputs)


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


def critical_path(tasks: list[TaskPlan], cost: dict[str, float]) -> float:
    """Longest weighted path through the DAG: the best makespan any scheduler could reach."""
    finish: dict[str, float] = {}
    by_id = {t.id: t for t in tasks}

    def finish_of(task_id: str) -> float:
        if task_id not in finish:
            deps = by_id[task_id].depends_on
            finish[task_id] = cost.get(task_id, 0.0) + max(
                (finish_of(d) for d in deps), default=0.0
            )
        return finish[task_id]

    return max((finish_of(t.id) for t in tasks), default=0.0)


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = fully explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in edges.get(node, []):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and dep in edges:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in edges:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None
