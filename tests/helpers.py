"""Helpers shared across the suite: whole goals on a real Temporal server, the test data
folders (templates, recorded histories), a charge on a tenant's ledger, metric samples."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from agents.protocol import LLMProvider
from agents.roles import ROLES
from agents.tool_kit import ToolOutcome, Workspace
from agents.tools import run_tool
from core.contracts import RunPlan, RunState, TurnKey, Usage
from core.infrastructure.settings import Settings
from core.infrastructure.temporal import start_run
from core.persistence import storage
from core.persistence.db import Database
from core.services.runs import final_state
from core.services.templates import load_template
from workers.main import serving
from workflows.dsl import compile_plan

TASK_MANAGER_GOAL = "Build a task management API with user authentication"
TESTS = Path(__file__).parent
TEMPLATES = TESTS / "templates"
HISTORIES = sorted((TESTS / "histories").glob("*.json"))
"""The recorded workflow histories that every change must keep replaying."""


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    """Poll an async condition (a query, a table) until it holds; fail after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def agent_tools(workspace: Workspace, role: str) -> Callable[..., Awaitable[ToolOutcome]]:
    """`run_tool` as an agent of `role` calls it: with only the tools that role was given."""
    return functools.partial(run_tool, workspace, role=role, allowed=ROLES[role].tools)


def make_plan(goal: str = TASK_MANAGER_GOAL, template: str = "sdlc", **overrides: Any) -> RunPlan:
    plan = compile_plan(
        load_template(template, ROLES), goal=goal, run_id=uuid.uuid4().hex, roles=ROLES
    )
    return plan.model_copy(update=overrides)


@asynccontextmanager
async def started(
    client: Client,
    db: Database,
    provider: LLMProvider,
    plan: RunPlan,
    settings: Settings | None = None,
) -> AsyncIterator[WorkflowHandle[Any, RunState]]:
    async with serving(client, db=db, provider=provider, settings=settings or Settings()):
        handle = await start_run(client, plan)
        try:
            yield handle
        finally:
            # A test that fails mid-run must not leave its workflow on the shared server,
            # where the next test's workers would pick up its tasks.
            with contextlib.suppress(Exception):
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    await handle.terminate("the test that started it has ended")


async def run_to_end(
    client: Client, db: Database, provider: LLMProvider, plan: RunPlan
) -> RunState:
    """The run's final state; a failed run's (its execution failed) as it recorded it."""
    async with started(client, db, provider, plan) as handle:
        return await final_state(db, handle)


def row_says(db: Database, run_id: str, status: str) -> Callable[[], Awaitable[bool]]:
    """A condition for `wait_until`: the run's database row has `status`."""

    async def check() -> bool:
        run = await storage.get_run(db, run_id)
        return run is not None and run.status == status

    return check


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    """The run's User Metadata current details, as the Web UI and `temporal workflow metadata`
    read them (the built-in `__temporal_workflow_metadata` query)."""
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(metadata.current_details)


def command_lines(details: str, program: str) -> list[str]:
    """The lines of `details` that run `program` (`orchestrator`, `temporal`, `curl`)."""
    return [line for line in details.splitlines() if line.startswith(f"{program} ")]


async def timer_summaries(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The summary of every timer the run started, from its history's user metadata."""
    history = await handle.fetch_history()
    return [
        json.loads(event.user_metadata.summary.data)
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]


def run_generated_tests(backend_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run a delivered backend's own pytest suite, as a user would, in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=backend_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )


def environment_names(section: type[BaseSettings]) -> set[str]:
    """The environment variables a settings section reads: each field's alias(es), else its name."""
    names = set()
    for field_name, field in section.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif alias is not None and hasattr(alias, "choices"):
            names.update(c for c in alias.choices if isinstance(c, str))
        else:
            names.add(field_name.upper())
    return names


async def spend(db: Database, tenant: str, run: str, turn: int, tokens: int, cost: float) -> None:
    """`tokens` and `cost` charged to `tenant`'s month, as one model call of `run` records it."""
    await storage.record_model_call(
        db,
        TurnKey(run_id=run, workflow_id=f"run-{run}", task_id="backend", turn=turn),
        tenant=tenant,
        role="backend_engineer",
        provider="offline",
        model="offline-sim-1",
        usage=Usage(input_tokens=tokens, output_tokens=0),
        cost_usd=cost,
        stop_reason="end_turn",
        response_json="{}",
    )


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` in a Prometheus exposition whose labels include `labels`."""
    total = 0.0
    for line in exposition.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{(.*)\}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match[2] or "") for k, v in labels.items()):
            total += float(match[3])
    return total
