"""Idempotent storage on both databases: retries never double-count or duplicate."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text

from core.contracts import RunPlan, RunState, RunStatus, TurnKey, Usage
from core.persistence import storage, tenancy
from core.persistence.db import Database
from core.persistence.schema import MIGRATIONS_DIR, head_revision
from tests.conftest import POSTGRES_ADMIN_DSN


def key(turn: int, task: str = "backend", run: str = "r1") -> TurnKey:
    return TurnKey(run_id=run, workflow_id=f"run-{run}", task_id=task, turn=turn)


async def test_ledger_row_is_written_once_per_turn(any_db: Database) -> None:
    usage = Usage(input_tokens=100, output_tokens=20, cache_read_input_tokens=5)
    for attempt_cost in (0.5, 0.9):  # a retry after the first write must not change anything
        entry = await storage.record_model_call(
            any_db,
            key(0),
            tenant="acme",
            role="backend_engineer",
            provider="offline",
            model="offline-sim-1",
            usage=usage,
            cost_usd=attempt_cost,
            stop_reason="tool_use",
            response_json="{}",
        )
        assert entry.cost_usd == 0.5
    await storage.record_model_call(
        any_db,
        key(1),
        tenant="acme",
        role="backend_engineer",
        provider="offline",
        model="offline-sim-1",
        usage=usage,
        cost_usd=0.25,
        stop_reason="end_turn",
        response_json="{}",
    )
    entries = await storage.ledger_entries(any_db, "run-r1")
    assert [(e.turn, e.cost_usd) for e in entries] == [(0, 0.5), (1, 0.25)]
    async with any_db.session() as session:
        totals, cost = await storage.ledger_totals(session, "run-r1")
    assert totals.input_tokens == 200 and totals.cache_read_input_tokens == 10
    assert cost == 0.75


async def test_artifact_writes_are_keyed_by_turn_and_versioned_by_path(any_db: Database) -> None:
    first = await storage.write_artifact(
        any_db, key(0), path="backend/app.py", content="v1", role="backend_engineer", model="m"
    )
    again = await storage.write_artifact(
        any_db, key(0), path="backend/app.py", content="v1", role="backend_engineer", model="m"
    )
    assert again == first and first.version == 1
    second = await storage.write_artifact(
        any_db, key(2), path="backend/app.py", content="v2!", role="backend_engineer", model="m"
    )
    assert second.version == 2 and second.size == 3
    assert second.sha256 == hashlib.sha256(b"v2!").hexdigest()
    await storage.write_artifact(
        any_db,
        key(0, task="frontend"),
        path="frontend/index.html",
        content="<html>",
        role="frontend_engineer",
        model="m",
    )
    latest = await storage.latest_artifacts(any_db, "r1")
    assert [(a.path, a.content) for a in latest] == [
        ("backend/app.py", "v2!"),
        ("frontend/index.html", "<html>"),
    ]
    assert [a.path for a in await storage.latest_artifacts(any_db, "r1", "frontend/")] == [
        "frontend/index.html"
    ]
    assert len(await storage.all_artifact_versions(any_db, "r1")) == 3
    loaded = await storage.artifacts_by_id(any_db, [second.id, first.id])
    assert [a.content for a in loaded] == ["v2!", "v1"]


async def test_run_row_from_start_to_finish(any_db: Database) -> None:
    plan = RunPlan(run_id="r9", goal="Build a todo API", template="sdlc", tasks=[], tenant="acme")
    await storage.record_run_started(any_db, plan, "run-r9")
    await storage.record_run_started(any_db, plan, "run-r9")  # retried activity
    run = await storage.get_run(any_db, "r9")
    assert run is not None and run.status == "running" and run.tenant == "acme"
    await storage.record_model_call(
        any_db,
        key(0, run="r9"),
        tenant="acme",
        role="tech_lead",
        provider="anthropic",
        model="claude",
        usage=Usage(input_tokens=7, output_tokens=3),
        cost_usd=0.01,
        stop_reason="end_turn",
        response_json="{}",
    )
    state = RunState(run_id="r9", goal=plan.goal, template="sdlc", status=RunStatus.COMPLETED)
    await storage.record_run_finished(any_db, state, "run-r9")
    run = await storage.get_run(any_db, "r9")
    assert run is not None
    assert (run.status, run.input_tokens, run.output_tokens, run.cost_usd) == (
        "completed",
        7,
        3,
        0.01,
    )
    assert run.completed_at is not None
    assert RunState.model_validate_json(run.final_state or "").status == RunStatus.COMPLETED
    assert [r.id for r in await storage.list_runs(any_db)] == ["r9"]


async def test_migrations_create_exactly_the_models_tables(any_db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    await any_db.ensure_schema()
    async with any_db.engine.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), SQLModel.metadata)
        )
    assert diff == []


async def test_a_database_from_the_first_release_upgrades_with_its_rows(tmp_path: Path) -> None:
    """Schema changes ship as new revisions: a 0001 database keeps its ledger when upgraded."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    from core.persistence.schema import MIGRATIONS_DIR

    path = tmp_path / "first-release.db"
    with create_engine(f"sqlite:///{path}").begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(
            text(
                "INSERT INTO ledger (workflow_id, task_id, attempt, turn, run_id, tenant, role,"
                " provider, model, input_tokens, output_tokens, cache_read_tokens,"
                " cache_write_tokens, cost_usd, stop_reason, response, created_at)"
                " VALUES ('run-old', 'backend', 0, 0, 'old', 'default', 'backend_engineer',"
                " 'offline', 'offline-sim-1', 10, 5, 0, 0, 0.5, 'end_turn', '{}',"
                " '2026-11-24 00:00:00')"
            )
        )

    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await db.ensure_schema()
        [entry] = await storage.ledger_entries(db, "run-old")
        assert (entry.execution_id, entry.input_tokens, entry.cost_usd) == ("", 10, 0.5)
    finally:
        await db.dispose()


def test_the_head_revision_without_alembic_is_alembics_head() -> None:
    """`ensure_schema` skips alembic when the database is at the newest file's number: each
    migration's revision is its file's number and follows the one before."""
    import re

    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    scripts = ScriptDirectory.from_config(config)
    assert scripts.get_heads() == [head_revision()]
    files = sorted((MIGRATIONS_DIR / "versions").glob("*.py"))
    for before, path in zip([None, *files], files, strict=False):
        source = path.read_text()
        assert re.search(rf"^revision = ['\"]{path.name[:4]}['\"]", source, re.M), path.name
        previous = before.name[:4] if before else None
        assert scripts.get_revision(path.name[:4]).down_revision == previous


BILLIONS = 3 * 10**9
"""Past 2**31: more than an INTEGER column holds."""


async def _record_big_run(db: Database, run_id: str) -> None:
    """A closed run whose calls, each within an INTEGER, add up to more than one holds."""
    for turn in range(3):
        await storage.record_model_call(
            db,
            key(turn, run=run_id),
            tenant="acme",
            role="backend_engineer",
            provider="anthropic",
            model="claude",
            usage=Usage(input_tokens=BILLIONS // 3, output_tokens=BILLIONS // 3),
            cost_usd=1.0,
            stop_reason="end_turn",
            response_json="{}",
        )
    state = RunState(run_id=run_id, goal="g", template="sdlc", status=RunStatus.COMPLETED)
    await storage.record_run_finished(db, state, f"run-{run_id}")


async def test_run_totals_and_monthly_limits_past_int32_are_stored(any_db: Database) -> None:
    await _record_big_run(any_db, "big")
    run = await storage.get_run(any_db, "big")
    assert run is not None and (run.input_tokens, run.output_tokens) == (BILLIONS, BILLIONS)
    org = await tenancy.create_org(any_db, "big-spender", monthly_token_limit=2**40)
    assert (await tenancy.get_org(any_db, org.id)).monthly_token_limit == 2**40
    await tenancy.update_org_limits(any_db, org.id, monthly_token_limit=2**62)
    assert (await tenancy.get_org(any_db, org.id)).monthly_token_limit == 2**62


async def test_a_postgresql_database_of_0004_upgrades_to_bigint_tokens_with_its_rows() -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy.ext.asyncio import create_async_engine

    name = f"orch_0004_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{url}/{name}"

    def upgrade_to_0004(conn: Any) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")

    engine = create_async_engine(url)
    db = Database(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade_to_0004)
            await conn.execute(
                text(
                    "INSERT INTO organizations (id, name, monthly_token_limit, created_at)"
                    " VALUES ('org_old', 'old', 1000, now())"
                )
            )
        await db.ensure_schema()
        org = await tenancy.get_org(db, "org_old")
        assert org.monthly_token_limit == 1000
        await tenancy.update_org_limits(db, "org_old", monthly_token_limit=2**40)
        assert (await tenancy.get_org(db, "org_old")).monthly_token_limit == 2**40
        await _record_big_run(db, "big")
        run = await storage.get_run(db, "big")
        assert run is not None and run.input_tokens == BILLIONS
    finally:
        await engine.dispose()
        await db.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_processes_starting_together_migrate_a_fresh_postgresql_once() -> None:
    """Workers and API replicas open the same new database at once: none fails."""

    name = f"orch_race_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    # One engine each, as separate processes would have: separate connections.
    databases = [Database(f"{base}/{name}") for _ in range(6)]
    try:
        await asyncio.gather(*(db.ensure_schema() for db in databases))
        async with databases[0].engine.connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert len(versions) == 1
        assert (
            versions[0][0]
            == sorted(p.name[:4] for p in (MIGRATIONS_DIR / "versions").glob("0*.py"))[-1]
        )
    finally:
        for db in databases:
            await db.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_after_a_reset_turns_replayed_from_history_find_their_earlier_rows(
    any_db: Database,
) -> None:
    """Turn 0 ran before a reset (execution A); turn 1 ran after it (execution B)."""

    async def record(turn: int, execution: str) -> None:
        await storage.record_model_call(
            any_db,
            key(turn).model_copy(update={"execution_id": execution}),
            tenant="acme",
            role="backend_engineer",
            provider="offline",
            model="offline-sim-1",
            usage=Usage(input_tokens=turn + 1),
            cost_usd=0.0,
            stop_reason="tool_use",
            response_json=f'{{"turn": {turn}, "execution": "{execution}"}}',
        )

    await record(0, "A")
    await record(1, "A")  # superseded: execution B made turn 1 again
    await record(1, "B")
    in_b = key(2).model_copy(update={"execution_id": "B"})

    context = await storage.turn_context(any_db, in_b, [])
    assert [(e.turn, e.execution_id) for e in context.earlier_calls] == [(0, "A"), (1, "B")]
    replayed = await storage.model_call_of_turn(
        any_db, key(0).model_copy(update={"execution_id": "B"})
    )
    assert replayed is not None and replayed.execution_id == "A"
    assert await storage.model_call_of_turn(any_db, in_b) is None
