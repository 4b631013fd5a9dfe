"""Helpers shared by the tests that run whole goals on a real Temporal server."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from agents.protocol import LLMProvider
from agents.roles import ROLES
from core.contracts import RunPlan, RunState
from core.db import Database
from core.temporal import start_run
from workers.main import serving
from workflows.dsl import compile_plan, load_template

TASK_MANAGER_GOAL = "Build a task management API with user authentication"


def make_plan(goal: str = TASK_MANAGER_GOAL, template: str = "sdlc", **overrides: Any) -> RunPlan:
    plan = compile_plan(load_template(template, ROLES), goal=goal, run_id=uuid.uuid4().hex)
    return plan.model_copy(update=overrides)


@asynccontextmanager
async def started(
    client: Client, db: Database, provider: LLMProvider, plan: RunPlan
) -> AsyncIterator[WorkflowHandle[Any, RunState]]:
    async with serving(client, db=db, provider=provider):
        yield await start_run(client, plan)


async def run_to_end(
    client: Client, db: Database, provider: LLMProvider, plan: RunPlan
) -> RunState:
    async with started(client, db, provider, plan) as handle:
        return await handle.result()


def run_generated_tests(backend_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run a delivered backend's own pytest suite, as a user would, in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=backend_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
