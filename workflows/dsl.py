"""The Task DSL: a template's model, its validation, and compilation into a `RunPlan`.

Reading templates (files, YAML) is the services' job: core/services/templates.py.

Validation collects every problem and names each exactly (unknown role, unknown
dependency, duplicate id, the path of a cycle, a gate with nothing to revise), so
a user fixes a template in one pass.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from core.contracts import (
    BUDGET_GATE,
    DEFAULT_MAX_PACKAGES,
    MAX_DESCRIPTION_CHARS,
    MAX_MODEL_NAME_CHARS,
    MAX_PLAN_TASKS,
    MAX_TASK_ID_CHARS,
    WORK_PACKAGES_OUTPUT,
    EscalationPolicy,
    GateKind,
    RunPlan,
    StagePlan,
    TaskPlan,
)
from workflows.conditions import ConditionError, parse_condition
from workflows.dag import find_cycle

MAX_CONDITION_CHARS = 500
"""A `when` clause; its literal is read as JSON, whose parser recurses per bracket."""


TaskIds = Annotated[list[str], Field(max_length=MAX_PLAN_TASKS)]
ModelName = Annotated[str, Field(max_length=MAX_MODEL_NAME_CHARS)]


class TemplateError(ValueError):
    """A template that cannot run; `problems` lists every reason, each one sentence."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"invalid template {source}: " + "; ".join(problems))


CommandSeconds = Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)]
CheckRounds = Annotated[int, Field(ge=0, le=10)]


class TaskSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z_][\w-]*$", max_length=MAX_TASK_ID_CHARS)
    role: str = Field(max_length=100)
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    depends_on: TaskIds = Field(default_factory=list)
    gate: GateKind | None = None
    revises: TaskIds | None = None
    review_by: TaskIds = Field(default_factory=list)
    when: str | None = Field(default=None, max_length=MAX_CONDITION_CHARS)
    max_revisions: int = Field(default=2, ge=0, le=10)
    model: ModelName | None = None
    max_turns: int | None = Field(default=None, ge=1, le=100)
    command_timeout_seconds: CommandSeconds | None = None
    command_budget_seconds: CommandSeconds | None = None
    max_check_rounds: CheckRounds | None = None


class TemplateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_turns: int = Field(default=12, ge=1, le=100)
    model: ModelName | None = None
    validate_tasks: bool = Field(default=True, alias="validate")
    """`validate: false` turns off the validator's check after each task."""
    max_validation_rounds: int = Field(default=1, ge=0, le=5)
    """Reruns of a task whose work failed validation before it completes with the issues."""
    response_cache: bool = True
    """`response_cache: false` makes every model call of the run, even a repeated one."""
    command_timeout_seconds: CommandSeconds = 120.0
    """Wall clock of one command an agent runs in the sandbox (a task may set its own)."""
    command_budget_seconds: CommandSeconds = 900.0
    """Wall clock all commands of one task may use together (a task may set its own)."""
    max_check_rounds: CheckRounds = 2
    """Times a task's own checks may send failures back to its agent before it completes
    with them recorded for the gates (a task may set its own)."""
    escalation: EscalationPolicy | None = None
    """Who is told, and what happens, when a run of the template waits for a human; a
    policy given for the run (`--escalation`, `escalation` in POST /runs) replaces it."""
    test_command: str | None = Field(default=None, min_length=1, max_length=500)
    """A change run's test command; None: the one detected in its repository."""


class StageSpec(BaseModel):
    """A stage a planner's work breakdown expands: `expand: architecture.work_packages`."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z_][\w-]*$", max_length=MAX_TASK_ID_CHARS)
    expand: str = Field(pattern=r"^[A-Za-z_][\w-]*\.[A-Za-z_]\w*$", max_length=200)
    """`<planning task>.work_packages`: whose breakdown replaces the stage's tasks."""
    tasks: TaskIds = Field(min_length=1)
    """The stage's fixed tasks: they run when no valid breakdown comes."""
    roles: list[str] | None = None
    """The roles a package may take; default: the roles of the stage's tasks."""
    max_packages: int = Field(default=DEFAULT_MAX_PACKAGES, ge=1, le=MAX_PLAN_TASKS)
    max_plan_rounds: int = Field(default=2, ge=0, le=5)
    """Times a refused breakdown goes back to the planner before the fixed tasks run."""
    approval: bool = False
    """Wait for a person to approve, edit or reject the breakdown (`plan_approval`)."""


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    settings: TemplateSettings = Field(default_factory=TemplateSettings)
    tasks: list[TaskSpec] = Field(min_length=1, max_length=MAX_PLAN_TASKS)
    stages: list[StageSpec] = Field(default_factory=list, max_length=1)
    """At most one: its approval waits under the one key `plan_approval`."""


def ancestors(edges: dict[str, list[str]], task_id: str) -> set[str]:
    seen: set[str] = set()
    stack = list(edges.get(task_id, []))
    while stack:
        dep = stack.pop()
        if dep not in seen:
            seen.add(dep)
            stack.extend(edges.get(dep, []))
    return seen


def validate(template: Template, roles: Collection[str], source: str = "template") -> None:
    problems: list[str] = []
    by_id: dict[str, TaskSpec] = {}
    for task in template.tasks:
        if task.id in by_id:
            problems.append(f"duplicate task id {task.id!r}")
        if task.id == BUDGET_GATE:
            problems.append(f"task id {BUDGET_GATE!r} is reserved for the budget decision")
        by_id[task.id] = task
        if task.role not in roles:
            problems.append(
                f"task {task.id!r} has unknown role {task.role!r} (known: {', '.join(sorted(roles))})"
            )
        for reviewer in task.review_by:
            if reviewer not in roles:
                problems.append(f"task {task.id!r} has unknown reviewer role {reviewer!r}")
        for dep in task.depends_on:
            if dep == task.id:
                problems.append(f"task {task.id!r} depends on itself")
    for task in template.tasks:
        for dep in task.depends_on:
            if dep not in by_id:
                problems.append(f"task {task.id!r} depends on unknown task {dep!r}")

    edges = {t.id: [d for d in t.depends_on if d in by_id and d != t.id] for t in template.tasks}
    cycle = find_cycle(edges)
    if cycle:
        problems.append("dependency cycle: " + " -> ".join(cycle))
    else:
        for task in template.tasks:
            problems.extend(_check_task_references(task, by_id, ancestors(edges, task.id)))
        for stage in template.stages:
            problems.extend(_check_stage(stage, template.tasks, edges, roles))
    if problems:
        raise TemplateError(source, problems)


def _check_task_references(
    task: TaskSpec, by_id: dict[str, TaskSpec], upstream: set[str]
) -> list[str]:
    problems: list[str] = []
    if task.when:
        try:
            condition = parse_condition(task.when)
        except ConditionError as exc:
            problems.append(f"task {task.id!r}: {exc}")
        else:
            if condition.task not in upstream:
                problems.append(
                    f"task {task.id!r} has condition on {condition.task!r}, "
                    "which is not one of its (transitive) dependencies"
                )
    if task.gate:
        revisable = revisable_tasks(task, by_id, upstream)
        if task.revises:
            for target in task.revises:
                if target not in upstream or by_id[target].gate:
                    problems.append(
                        f"gate {task.id!r} revises {target!r}, which is not an upstream non-gate task"
                    )
        elif not revisable:
            problems.append(
                f"gate {task.id!r} has no task to revise: it must depend on a task that is not a gate"
            )
    elif task.revises:
        problems.append(f"task {task.id!r} has 'revises' but is not a gate")
    return problems


def _check_stage(
    stage: StageSpec, tasks: list[TaskSpec], edges: dict[str, list[str]], roles: Collection[str]
) -> list[str]:
    """A stage expands from an upstream planner's `work_packages` into unconditional tasks."""
    by_id = {t.id: t for t in tasks}
    source, _, output = stage.expand.partition(".")
    problems = []
    if output != WORK_PACKAGES_OUTPUT:
        problems.append(
            f"stage {stage.id!r} expands from {stage.expand!r}: use {source}.{WORK_PACKAGES_OUTPUT}"
        )
    if stage.id in by_id:
        problems.append(f"stage {stage.id!r} has the id of a task")
    if source not in by_id:
        return [*problems, f"stage {stage.id!r} expands from unknown task {source!r}"]
    for task_id in stage.tasks:
        task = by_id.get(task_id)
        if task is None:
            problems.append(f"stage {stage.id!r} names unknown task {task_id!r}")
        elif task.gate or task.when:
            problems.append(f"stage {stage.id!r}: task {task_id!r} is a gate or conditional")
        elif source not in ancestors(edges, task_id):
            problems.append(f"stage {stage.id!r}: task {task_id!r} does not come after {source!r}")
    for task in tasks:
        if task.when and task.when.split(".", 1)[0].strip() in stage.tasks:
            problems.append(
                f"task {task.id!r} has a condition on stage {stage.id!r}, which may expand"
            )
    for role in stage.roles or []:
        if role not in roles:
            problems.append(f"stage {stage.id!r} has unknown role {role!r}")
    return problems


IMPLEMENTER_ROLES = ("backend_engineer", "frontend_engineer", "database_engineer", "data_scientist")


def revisable_tasks(task: TaskSpec, by_id: dict[str, TaskSpec], upstream: set[str]) -> list[str]:
    """Which tasks a blocking verdict of this gate sends back: explicit, else implementers upstream."""
    if task.revises:
        return list(task.revises)
    candidates = [t for t in sorted(upstream) if t in by_id and not by_id[t].gate]
    implementers = [t for t in candidates if by_id[t].role in IMPLEMENTER_ROLES]
    return implementers or candidates


def compile_plan(
    template: Template,
    *,
    goal: str,
    run_id: str,
    roles: Collection[str] = (),
    tenant: str = "default",
    model: str | None = None,
    heartbeat_timeout_seconds: float = 60.0,
    validate: bool | None = None,
    validation_model: str | None = None,
    response_cache: bool | None = None,
    approve_plan: bool | None = None,
) -> RunPlan:
    """`validate` None follows the template's setting; True or False is the run's own choice
    (so is `approve_plan`, for the approval of a stage's work breakdown)."""
    goal = goal.strip()
    if not goal:
        raise ValueError("the goal is empty: say what to build, e.g. 'Build a todo API'")
    by_id = {t.id: t for t in template.tasks}
    edges = {t.id: list(t.depends_on) for t in template.tasks}
    stages = [_stage_plan(stage, by_id, approve_plan) for stage in template.stages]
    stage_of = {task_id: stage.id for stage in stages for task_id in stage.tasks}
    return RunPlan(
        run_id=run_id,
        goal=goal,
        template=template.name,
        tenant=tenant,
        model=model or template.settings.model,
        model_heartbeat_timeout_seconds=heartbeat_timeout_seconds,
        roles=sorted(roles),
        validate_tasks=template.settings.validate_tasks if validate is None else validate,
        max_validation_rounds=template.settings.max_validation_rounds,
        validation_model=validation_model,
        escalation=(template.settings.escalation or EscalationPolicy()).model_copy(),
        response_cache=template.settings.response_cache
        if response_cache is None
        else response_cache,
        stages=stages,
        tasks=[
            _task_plan(
                t,
                template.settings,
                revisable_tasks(t, by_id, ancestors(edges, t.id)) if t.gate else [],
                stage_of.get(t.id),
            )
            for t in template.tasks
        ],
    )


def _task_plan(
    t: TaskSpec, settings: TemplateSettings, revises: list[str], stage: str | None
) -> TaskPlan:
    """One task as the workflow runs it: the template's settings fill what it leaves out."""
    return TaskPlan(
        id=t.id,
        role=t.role,
        depends_on=list(t.depends_on),
        gate=t.gate,
        revises=revises,
        when=t.when,
        review_by=list(t.review_by),
        max_revisions=t.max_revisions,
        model=t.model,
        max_turns=t.max_turns or settings.max_turns,
        description=t.description,
        stage=stage,
        command_timeout_seconds=t.command_timeout_seconds or settings.command_timeout_seconds,
        command_budget_seconds=t.command_budget_seconds or settings.command_budget_seconds,
        max_check_rounds=settings.max_check_rounds
        if t.max_check_rounds is None
        else t.max_check_rounds,
    )


def _stage_plan(stage: StageSpec, by_id: dict[str, TaskSpec], approve: bool | None) -> StagePlan:
    roles = stage.roles or list(dict.fromkeys(by_id[t].role for t in stage.tasks))
    return StagePlan(
        id=stage.id,
        source_task=stage.expand.partition(".")[0],
        tasks=list(stage.tasks),
        roles=roles,
        max_packages=stage.max_packages,
        max_plan_rounds=stage.max_plan_rounds,
        approval=stage.approval if approve is None else approve,
    )
