"""What the benchmarks share: a dev server, a database, and one offline `sdlc` run."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from agents.protocol import LLMProvider
from agents.roles import ROLES
from core.contracts import RunState
from core.db import Database
from core.local_stack import temporal_binary
from core.settings import Settings
from core.temporal import data_converter, ensure_search_attributes, start_run
from workers.main import serving
from workflows.dsl import compile_plan, load_template

GOAL = "Build a task management API with user authentication"


@asynccontextmanager
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=data_converter(Settings()),
        dev_server_extra_args=[
            "--dynamic-config-value",
            "matching.numTaskqueueReadPartitions=1",
            "--dynamic-config-value",
            "matching.numTaskqueueWritePartitions=1",
        ],
    )
    try:
        await ensure_search_attributes(env.client)
        yield env
    finally:
        await env.shutdown()


async def timed_sdlc_run(
    env: WorkflowEnvironment, db: Database, provider: LLMProvider
) -> tuple[float, RunState]:
    plan = compile_plan(
        load_template("sdlc", ROLES), goal=GOAL, run_id=uuid.uuid4().hex, roles=ROLES
    )
    async with serving(env.client, db=db, provider=provider, settings=Settings()):
        started = time.perf_counter()
        handle = await start_run(env.client, plan)
        state = await handle.result()
        return time.perf_counter() - started, state


def sqlite_database(directory: Path) -> Database:
    return Database(f"sqlite+aiosqlite:///{directory / 'bench.db'}")
