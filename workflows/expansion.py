"""Work breakdowns as plain functions: read one, check it, expand a stage with it.

The checks are the plan-change rules (`workflows.changes`) for a whole stage at once:
known roles the stage allows, known dependencies, no cycle, a bounded package count, and
no path owned twice. Each problem is one sentence, so the planner (or the person editing
the plan) fixes all of them in one pass.
"""

from __future__ import annotations

import posixpath
from typing import Any

from pydantic import ValidationError

from core.contracts import (
    BUDGET_GATE,
    MAX_PLAN_TASKS,
    PLAN_APPROVAL_GATE,
    WORK_PACKAGES_OUTPUT,
    BreakdownRequest,
    StagePlan,
    TaskPlan,
    TaskState,
    WorkBreakdown,
    WorkPackage,
    package_description,
)
from workflows.dag import find_cycle, upstream_ids


def stage_planned_by(stages: list[StagePlan], task_id: str) -> StagePlan | None:
    return next((stage for stage in stages if stage.source_task == task_id), None)


def before_stage(tasks: list[TaskPlan], stage: StagePlan) -> list[str]:
    """Tasks every fixed task of the stage waits for: what a package may depend on."""
    fixed = [t for t in tasks if t.id in stage.tasks]
    seen = {dep for task in fixed for dep in upstream_ids(tasks, task.id)}
    return [t.id for t in tasks if t.id in seen and t.id not in stage.tasks]


def breakdown_request(tasks: list[TaskPlan], stage: StagePlan) -> BreakdownRequest:
    return BreakdownRequest(
        stage=stage.id,
        roles=list(stage.roles),
        max_packages=stage.max_packages,
        may_depend_on=before_stage(tasks, stage),
        fixed_tasks=list(stage.tasks),
    )


def read_breakdown(outputs: dict[str, Any]) -> tuple[WorkBreakdown | None, list[str]]:
    """The planner's submitted breakdown, or why there is none to use."""
    raw = outputs.get(WORK_PACKAGES_OUTPUT)
    if raw is None:
        return None, ["no work breakdown was submitted: call submit_work_breakdown"]
    try:
        return WorkBreakdown.model_validate(raw), []
    except ValidationError as exc:
        return None, [f"the work breakdown is malformed: {exc.errors()[0]['msg']}"]


def check_breakdown(breakdown: WorkBreakdown, stage: StagePlan, tasks: list[TaskPlan]) -> list[str]:
    """Every reason the breakdown cannot expand the stage; [] when it can."""
    packages = breakdown.packages
    if not any(t.id in stage.tasks for t in tasks):
        return [f"the tasks of stage {stage.id!r} were removed from the plan: nothing to expand"]
    problems: list[str] = []
    if len(packages) > stage.max_packages:
        problems.append(
            f"the breakdown has {len(packages)} packages; stage {stage.id!r} allows at most "
            f"{stage.max_packages}"
        )
    remaining = len(tasks) - len(stage.tasks)
    if remaining + len(packages) > MAX_PLAN_TASKS:
        problems.append(f"the plan would have more than {MAX_PLAN_TASKS} tasks")
    taken = {t.id for t in tasks if t.id not in stage.tasks} | {BUDGET_GATE, PLAN_APPROVAL_GATE}
    earlier = set(before_stage(tasks, stage))
    ids = [p.id for p in packages]
    for package in packages:
        problems += _package_problems(package, stage, taken, earlier, set(ids))
    problems += [f"package id {i!r} is used twice" for i in sorted(set(ids)) if ids.count(i) > 1]
    if not problems:
        cycle = find_cycle({p.id: [d for d in p.depends_on if d in ids] for p in packages})
        if cycle:
            problems.append("dependency cycle: " + " -> ".join(cycle))
    return problems + _ownership_problems(packages)


def _package_problems(
    package: WorkPackage, stage: StagePlan, taken: set[str], earlier: set[str], ids: set[str]
) -> list[str]:
    problems = []
    if package.id in taken:
        problems.append(f"package id {package.id!r} is already a task or a reserved name")
    if package.role not in stage.roles:
        problems.append(
            f"package {package.id!r} has role {package.role!r}; stage {stage.id!r} allows "
            + ", ".join(stage.roles)
        )
    for dep in package.depends_on:
        if dep == package.id:
            problems.append(f"package {package.id!r} depends on itself")
        elif dep not in ids and dep not in earlier:
            problems.append(
                f"package {package.id!r} depends on {dep!r}, which is neither a package nor "
                f"a task before the stage ({', '.join(sorted(earlier)) or 'none'})"
            )
    for path in package.owns:
        if clean_path(path) is None:
            problems.append(f"package {package.id!r} owns {path!r}, which is not a relative path")
    return problems


def clean_path(path: str) -> str | None:
    """A relative path as ownership compares it (a folder keeps its trailing /)."""
    stripped = path.strip().replace("\\", "/")
    folder = stripped.endswith("/")
    normal = posixpath.normpath(stripped).lstrip("/") if stripped else ""
    if normal in ("", ".") or normal == ".." or normal.startswith("../"):
        return None
    return normal + "/" if folder else normal


def owns(owned: list[str], path: str) -> bool:
    """Whether a file is one of `owned` or inside one of its folders."""
    target = clean_path(path)
    if target is None:
        return False
    for entry in owned:
        mine = clean_path(entry)
        if mine is not None and (
            target == mine or (mine.endswith("/") and target.startswith(mine))
        ):
            return True
    return False


def _ownership_problems(packages: list[WorkPackage]) -> list[str]:
    claims = [
        (path, package.id)
        for package in packages
        for path in (clean_path(p) for p in package.owns)
        if path is not None
    ]
    problems = []
    for index, (path, owner) in enumerate(claims):
        for other_path, other in claims[index + 1 :]:
            if _overlap(path, other_path):
                shown = path if len(path) >= len(other_path) else other_path
                problems.append(f"path {shown!r} is owned by both {owner!r} and {other!r}")
    return problems


def _overlap(a: str, b: str) -> bool:
    return a == b or (a.endswith("/") and b.startswith(a)) or (b.endswith("/") and a.startswith(b))


def expand_stage(
    tasks: list[TaskPlan], stage: StagePlan, breakdown: WorkBreakdown
) -> list[TaskPlan]:
    """The plan with the stage's fixed tasks replaced by one task per package.

    Every package waits for what the fixed tasks waited for outside the stage; whatever
    waited for a fixed task waits for every package; gates revise the packages.
    """
    fixed = [t for t in tasks if t.id in stage.tasks]
    outside = list(dict.fromkeys(d for t in fixed for d in t.depends_on if d not in stage.tasks))
    ids = [p.id for p in breakdown.packages]
    packages = [
        _package_task(package, stage, outside, _like(fixed, package.role))
        for package in breakdown.packages
    ]
    expanded: list[TaskPlan] = []
    for task in tasks:
        if task.id == fixed[0].id:
            expanded.extend(packages)
        if task.id in stage.tasks:
            continue
        expanded.append(
            task.model_copy(
                update={
                    "depends_on": _replace(task.depends_on, stage.tasks, ids),
                    "revises": _replace(task.revises, stage.tasks, ids),
                }
            )
        )
    return expanded


def expand_states(
    states: list[TaskState], stage: StagePlan, breakdown: WorkBreakdown
) -> list[TaskState]:
    """The run's task states with the packages where the stage's first fixed task was."""
    packages = [TaskState(id=p.id, role=p.role, stage=stage.id) for p in breakdown.packages]
    expanded: list[TaskState] = []
    for state in states:
        if state.id in stage.tasks:
            expanded.extend(packages)
            packages = []
        else:
            expanded.append(state)
    return expanded


def _like(fixed: list[TaskPlan], role: str) -> TaskPlan:
    """The fixed task a package takes its limits from: one of its role, else the first."""
    return next((t for t in fixed if t.role == role), fixed[0])


def _package_task(
    package: WorkPackage, stage: StagePlan, outside: list[str], like: TaskPlan
) -> TaskPlan:
    return like.model_copy(
        update={
            "id": package.id,
            "role": package.role,
            "depends_on": list(dict.fromkeys([*outside, *package.depends_on])),
            "description": package_description(package),
            "prompt_addition": "",
            "stage": stage.id,
            "owns": list(package.owns),
        }
    )


def _replace(ids: list[str], old: list[str], new: list[str]) -> list[str]:
    """`ids` with the first of `old` in it replaced by `new`, the rest of `old` dropped."""
    replaced: list[str] = []
    for i in ids:
        replaced.extend(new if i in old else [i])
    return list(dict.fromkeys(replaced))


def render_problems(problems: list[str], round_: int) -> str:
    """What a planner reads when its breakdown was refused."""
    lines = [f"Your work breakdown (round {round_}) was refused:"]
    lines += [f"- {problem}" for problem in problems]
    lines.append("Fix every problem and call submit_work_breakdown again.")
    return "\n".join(lines)


def plan_table(breakdown: WorkBreakdown) -> str:
    """The breakdown as a markdown table: what a person approves or edits."""
    rows = ["| package | role | depends on | owns |", "|---|---|---|---|"]
    rows += [
        f"| {p.id} | {p.role} | {', '.join(p.depends_on) or '-'} | {', '.join(p.owns)} |"
        for p in breakdown.packages
    ]
    return "\n".join(rows)


def plan_mermaid(breakdown: WorkBreakdown) -> str:
    """The packages and their dependencies as a mermaid graph."""
    ids = {p.id for p in breakdown.packages}
    lines = ["graph TD"]
    for package in breakdown.packages:
        lines.append(f'    {package.id}["{package.id} ({package.role})"]')
        lines += [f"    {dep} --> {package.id}" for dep in package.depends_on if dep in ids]
    return "\n".join(lines)
