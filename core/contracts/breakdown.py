"""Work packages: the planner's breakdown of a stage, and what the run made of it.

A template marks a stage (`stages:` with `expand: <task>.work_packages`); the task named
there gets the `submit_work_breakdown` tool, and the workflow replaces the stage's fixed
tasks with one task per package once the breakdown is valid (and approved, where the
stage asks a person first).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field

from core.contracts.changes import MAX_DESCRIPTION_CHARS, MAX_PLAN_TASKS, MAX_TASK_ID_CHARS

WORK_PACKAGES_OUTPUT = "work_packages"
"""The output a planner's `submit_work_breakdown` sets; a stage expands from `<task>.work_packages`."""
BREAKDOWN_TOOL = "submit_work_breakdown"
PLAN_APPROVAL_GATE = "plan_approval"
"""The key a stage's approval waits under (`decide plan_approval ...`)."""
DEFAULT_MAX_PACKAGES = 12
MAX_OWNED_PATHS = 100
MAX_CRITERIA = 50

TaskId = Annotated[str, Field(pattern=r"^[A-Za-z_][\w-]*$", max_length=MAX_TASK_ID_CHARS)]


class WorkPackage(BaseModel):
    """One package of the breakdown: it becomes one task of the run."""

    id: TaskId
    role: str = Field(max_length=100)
    """One of the implementing roles the stage allows."""
    depends_on: list[str] = Field(default_factory=list, max_length=MAX_PLAN_TASKS)
    """Other packages, or tasks of the template that come before the stage."""
    description: str = Field(min_length=1, max_length=MAX_DESCRIPTION_CHARS)
    acceptance_criteria: list[str] = Field(default_factory=list, max_length=MAX_CRITERIA)
    owns: list[str] = Field(min_length=1, max_length=MAX_OWNED_PATHS)
    """Files or folders (ending in /) only this package writes; gate findings on them come back here."""


class WorkBreakdown(BaseModel):
    """The `submit_work_breakdown` tool's input, and an `edit` decision's new plan."""

    packages: list[WorkPackage] = Field(min_length=1, max_length=MAX_PLAN_TASKS)
    rationale: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)


class StagePlan(BaseModel):
    """A stage of the compiled plan that a planner's breakdown may expand."""

    id: str
    source_task: str
    """The planning task whose `work_packages` output expands the stage."""
    tasks: list[str]
    """The template's fixed tasks of the stage: what runs when the breakdown never passes."""
    roles: list[str]
    """The implementing roles a package may take."""
    max_packages: int = DEFAULT_MAX_PACKAGES
    max_plan_rounds: int = 2
    """Times a breakdown that failed validation goes back to the planner before the fallback."""
    approval: bool = False
    """A person approves, rejects or edits the breakdown before the stage expands."""


class BreakdownRequest(BaseModel):
    """What a planning task's agent is told about the breakdown it may submit."""

    stage: str
    roles: list[str]
    max_packages: int
    may_depend_on: list[str]
    """Tasks of the template a package may wait for (the ones before the stage)."""
    fixed_tasks: list[str]
    """The stage's template tasks, which the packages replace."""


class ExpansionStatus(StrEnum):
    PLANNING = "planning"
    AWAITING_APPROVAL = "awaiting_approval"
    EXPANDED = "expanded"
    FALLBACK = "fallback"
    """The breakdown never passed validation: the stage runs its template tasks."""
    REJECTED = "rejected"


class StageExpansion(BaseModel):
    """What became of a stage, on the run's state: the status views and the API show it."""

    stage: str
    source_task: str
    status: ExpansionStatus = ExpansionStatus.PLANNING
    breakdown: WorkBreakdown | None = None
    rounds: int = 0
    """Breakdowns the planner submitted."""
    problems: list[str] = Field(default_factory=list)
    """Why the last breakdown was refused."""
    decided_by: str | None = None
    """Who approved, edited or rejected it (`policy` when the escalation policy did)."""
    tasks: list[str] = Field(default_factory=list)
    """The tasks the stage became: the packages, or the template's tasks after a fallback."""


OWNS_TAG = "owns"
"""The block of a package's task description naming its files, one per line."""
BREAKDOWN_TAG = "work-breakdown"
"""The block of a planning task's message that asks for a breakdown, with its limits."""


def package_description(package: WorkPackage) -> str:
    """The task description a package's agent reads: what, when it is done, what it owns."""
    parts = [package.description.strip()]
    if package.acceptance_criteria:
        parts.append(
            "Acceptance criteria:\n" + "\n".join(f"- {c}" for c in package.acceptance_criteria)
        )
    parts.append(f"<{OWNS_TAG}>\n" + "\n".join(package.owns) + f"\n</{OWNS_TAG}>")
    parts.append("Write only the files you own; the other packages write theirs.")
    return "\n\n".join(parts)


def owned_paths(description: str) -> list[str]:
    """The paths a package's task description says it owns; [] for any other task."""
    start, end = f"<{OWNS_TAG}>\n", f"\n</{OWNS_TAG}>"
    if start not in description or end not in description:
        return []
    body = description.split(start, 1)[1].split(end, 1)[0]
    return [line.strip() for line in body.splitlines() if line.strip()]


def breakdown_block(request: BreakdownRequest) -> str:
    """What a stage's planner is asked for, with the limits its breakdown is checked by."""
    return (
        f'<{BREAKDOWN_TAG} stage="{request.stage}" roles="{",".join(request.roles)}" '
        f'max-packages="{request.max_packages}" '
        f'may-depend-on="{",".join(request.may_depend_on)}">\n'
        f"Plan the {request.stage} stage: call {BREAKDOWN_TOOL} with its work packages. They "
        f"replace the template's tasks {', '.join(request.fixed_tasks)}. Roles: "
        f"{', '.join(request.roles)}; at most {request.max_packages} packages; a package may "
        "depend on other packages and on the tasks before the stage "
        f"({', '.join(request.may_depend_on) or 'none'}). Every package owns its files or "
        "folders (a folder ends in /) and no path is owned twice. Keep a small goal in one "
        "package; split a larger one where the parts can be built side by side.\n"
        f"</{BREAKDOWN_TAG}>"
    )
