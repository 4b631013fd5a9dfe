"""Changes to a running plan (the `add_task`, `remove_task`, `modify_task` updates).

Each `check_*` returns the problems with a change, so the update's validator can
reject it with a clear message before anything is written to history; each `apply_*`
makes the change to the plan's task list.
"""

from __future__ import annotations

from core.contracts import (
    BUDGET_GATE,
    MAX_PLAN_TASKS,
    NewTask,
    TaskModification,
    TaskPlan,
    TaskRemoval,
    TaskStatus,
)
from workflows.dag import find_cycle


def _cycle_problem(tasks: list[TaskPlan]) -> list[str]:
    cycle = find_cycle({t.id: list(t.depends_on) for t in tasks})
    return [f"the change creates a dependency cycle: {' -> '.join(cycle)}"] if cycle else []


def _not_pending(task_id: str, statuses: dict[str, TaskStatus]) -> list[str]:
    status = statuses.get(task_id)
    if status is None:
        return [f"no task {task_id!r} in this run"]
    if status != TaskStatus.PENDING:
        return [f"task {task_id!r} is {status.value}; only pending tasks can change"]
    return []


def check_add(
    tasks: list[TaskPlan], statuses: dict[str, TaskStatus], roles: list[str], new: NewTask
) -> list[str]:
    problems: list[str] = []
    if len(tasks) >= MAX_PLAN_TASKS:
        problems.append(f"the plan already has {len(tasks)} tasks, the most a run may have")
    if new.id in statuses:
        problems.append(f"a task {new.id!r} already exists")
    if new.id == BUDGET_GATE:
        problems.append(f"task id {BUDGET_GATE!r} is reserved for the budget decision")
    if roles and new.role not in roles:
        problems.append(f"unknown role {new.role!r} (known: {', '.join(sorted(roles))})")
    problems += [f"unknown dependency {d!r}" for d in new.depends_on if d not in statuses]
    for later in new.before:
        problems += _not_pending(later, statuses)
    return problems or _cycle_problem(apply_add(tasks, new))


def apply_add(tasks: list[TaskPlan], new: NewTask) -> list[TaskPlan]:
    added = TaskPlan(
        id=new.id,
        role=new.role,
        depends_on=list(new.depends_on),
        description=new.description,
        model=new.model,
        max_turns=new.max_turns,
    )
    return [
        t.model_copy(update={"depends_on": [*t.depends_on, new.id]}) if t.id in new.before else t
        for t in tasks
    ] + [added]


def check_remove(statuses: dict[str, TaskStatus], removal: TaskRemoval) -> list[str]:
    return _not_pending(removal.task, statuses)


def apply_remove(tasks: list[TaskPlan], removal: TaskRemoval) -> list[TaskPlan]:
    """Drop the task; its dependants inherit its dependencies, so the order still holds."""
    gone = next(t for t in tasks if t.id == removal.task)
    result = []
    for t in tasks:
        if t.id == gone.id:
            continue
        if gone.id in t.depends_on:
            deps = [d for d in t.depends_on if d != gone.id]
            deps += [d for d in gone.depends_on if d not in deps]
            t = t.model_copy(update={"depends_on": deps})
        result.append(t)
    return result


def check_modify(
    tasks: list[TaskPlan],
    statuses: dict[str, TaskStatus],
    roles: list[str],
    change: TaskModification,
) -> list[str]:
    problems = _not_pending(change.task, statuses)
    if problems:
        return problems
    if change.role is not None and roles and change.role not in roles:
        problems.append(f"unknown role {change.role!r} (known: {', '.join(sorted(roles))})")
    for dep in change.depends_on or []:
        if dep not in statuses:
            problems.append(f"unknown dependency {dep!r}")
        if dep == change.task:
            problems.append(f"task {change.task!r} cannot depend on itself")
    return problems or _cycle_problem(apply_modify(tasks, change))


def apply_modify(tasks: list[TaskPlan], change: TaskModification) -> list[TaskPlan]:
    updates = {
        key: value
        for key, value in (
            ("role", change.role),
            ("depends_on", change.depends_on),
            ("model", change.model),
            ("prompt_addition", change.prompt_addition),
        )
        if value is not None
    }
    return [t.model_copy(update=updates) if t.id == change.task else t for t in tasks]
