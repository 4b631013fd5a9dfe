"""Changes to a running plan: the `add_task`, `remove_task` and `modify_task` updates."""

from __future__ import annotations

from pydantic import BaseModel, Field

MAX_PLAN_TASKS = 200
"""Tasks in one run's plan, from its template and `add_task` alike: each is a coroutine of
`GoalWorkflow` and dozens of events in its history."""


MAX_TASK_ID_CHARS = 80
"""Room for derived ids (`<task>.validate`) within the ledger's 100-character task column."""


MAX_DESCRIPTION_CHARS = 20_000
"""A task's description or prompt addition, which every model call of the task sends."""


MAX_MODEL_NAME_CHARS = 200
"""The width of the ledger's `model` column."""


class NewTask(BaseModel):
    """The `add_task` update."""

    id: str = Field(pattern=r"^[A-Za-z_][\w-]*$", max_length=MAX_TASK_ID_CHARS)
    role: str
    depends_on: list[str] = Field(default_factory=list, max_length=MAX_PLAN_TASKS)
    before: list[str] = Field(default_factory=list, max_length=MAX_PLAN_TASKS)
    """Pending tasks that must now wait for this one (inserts it into the DAG)."""
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    model: str | None = Field(default=None, max_length=MAX_MODEL_NAME_CHARS)
    max_turns: int = Field(default=12, ge=1, le=100)


class TaskRemoval(BaseModel):
    """The `remove_task` update."""

    task: str


class TaskChanges(BaseModel):
    """What a change to a pending task may set: only the fields given change."""

    role: str | None = None
    depends_on: list[str] | None = Field(default=None, max_length=MAX_PLAN_TASKS)
    model: str | None = Field(default=None, max_length=MAX_MODEL_NAME_CHARS)
    prompt_addition: str | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)


class TaskModification(TaskChanges):
    """The `modify_task` update: the task, and the fields that change."""

    task: str
