"""Database tables (SQLModel), the async engine, and schema-on-first-use via Alembic."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    LargeBinary,
    Text,
    UniqueConstraint,
    event,
    false,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel import Field, SQLModel

from core.persistence.check_results import CheckResult as CheckResult  # registers check_results
from core.persistence.grouped import GroupedInserts
from core.persistence.schema import migration_turn, sqlite_file, upgrade_to_head
from core.persistence.sqlite_driver import one_trip_dbapi


def utcnow() -> datetime:
    return datetime.now(UTC)


class Run(SQLModel, table=True):
    __tablename__ = "runs"

    id: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(index=True, max_length=80)
    tenant: str = Field(default="default", index=True, max_length=64)
    goal: str = Field(sa_column=Column(Text, nullable=False))
    template: str = Field(max_length=200)
    status: str = Field(default="running", index=True, max_length=20)
    # A run's totals, unlike one call's, can pass 2**31 (migration 0005).
    input_tokens: int = Field(default=0, sa_type=BigInteger)
    output_tokens: int = Field(default=0, sa_type=BigInteger)
    cache_read_tokens: int = Field(default=0, sa_type=BigInteger)
    cache_write_tokens: int = Field(default=0, sa_type=BigInteger)
    cost_usd: float = 0.0
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    final_state: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    """The workflow's last `RunState` as JSON, so closed runs answer without Temporal."""
    repository_snapshot: str | None = Field(default=None, max_length=64)
    """The `RepositorySnapshot` a change run started from; None for a greenfield run."""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None


class Artifact(SQLModel, table=True):
    """One version of one file of a run's workspace.

    Keyed by the tool call that wrote it (task, attempt, turn, path), so a retried
    tool activity finds its row instead of adding a version.
    """

    __tablename__ = "artifacts"
    __table_args__ = (
        UniqueConstraint(
            "run_id", "execution_id", "task_id", "attempt", "turn", "path", name="uq_artifact_write"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True, max_length=64)
    execution_id: str = Field(default="", max_length=64)
    task_id: str = Field(max_length=100)
    attempt: int = 0
    turn: int = 0
    path: str = Field(max_length=500)
    version: int = 1
    sha256: str = Field(max_length=64)
    size: int
    content: str = Field(sa_column=Column(Text, nullable=False))
    role: str = Field(max_length=64)
    model: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class TurnKeyed(SQLModel):
    """Columns of the idempotency key of one agent turn: workflow, task, attempt, turn."""

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: str = Field(index=True, max_length=80)
    execution_id: str = Field(default="", max_length=64)
    task_id: str = Field(max_length=100)
    attempt: int = 0
    turn: int = 0


class LedgerEntry(TurnKeyed, table=True):
    """One model call: tokens, cost and the response, keyed so a retry never counts twice."""

    __tablename__ = "ledger"
    __table_args__ = (
        UniqueConstraint(
            "workflow_id", "execution_id", "task_id", "attempt", "turn", name="uq_ledger_turn"
        ),
    )

    run_id: str = Field(index=True, max_length=64)
    tenant: str = Field(default="default", index=True, max_length=64)
    """Organization id: a tenant's monthly spending is a sum over its rows."""
    role: str = Field(max_length=64)
    provider: str = Field(max_length=40)
    model: str = Field(max_length=200)
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    response_cache_hit: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    """Answered from the tenant's response cache: no provider call, no tokens, no cost."""
    stop_reason: str = Field(max_length=40)
    response: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class ToolResultsEntry(TurnKeyed, table=True):
    """The tool results of one turn, so the next model call can rebuild the conversation."""

    __tablename__ = "tool_results"
    __table_args__ = (
        UniqueConstraint(
            "workflow_id",
            "execution_id",
            "task_id",
            "attempt",
            "turn",
            name="uq_tool_results_turn",
        ),
    )

    results: str = Field(sa_column=Column(Text, nullable=False))
    outcome: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    """The turn's `ToolCallsResult` (JSON): a retry after the commit returns it as it was,
    instead of running the calls again (0006)."""
    created_at: datetime = Field(default_factory=utcnow)


class CommandResult(TurnKeyed, table=True):
    """One command an agent ran in the sandbox, kept as soon as it finished (0006).

    A retried turn finds it by its tool-use id and applies the recorded output and file
    changes instead of running the command again.
    """

    __tablename__ = "command_results"
    __table_args__ = (
        UniqueConstraint(
            "workflow_id",
            "execution_id",
            "task_id",
            "attempt",
            "turn",
            "tool_use_id",
            name="uq_command_results_call",
        ),
    )

    tool_use_id: str = Field(max_length=100)
    command: str = Field(sa_column=Column(Text, nullable=False))
    exit_code: int | None = None
    output: str = Field(sa_column=Column(Text, nullable=False))
    """What the agent reads: the exit code, stdout and stderr within the output budget."""
    changes: str = Field(sa_column=Column(Text, nullable=False))
    """JSON list of the files it created or changed: path, content (None for binary), size."""
    duration_seconds: float = 0.0
    created_at: datetime = Field(default_factory=utcnow)


class CachedResponse(SQLModel, table=True):
    """A provider's answer to one exact request, reused for identical requests of the tenant."""

    __tablename__ = "response_cache"
    __table_args__ = (UniqueConstraint("tenant", "fingerprint", name="uq_response_cache"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(max_length=64)
    fingerprint: str = Field(max_length=64)
    """`ModelRequest.fingerprint`: provider, model, system, messages, tools, limits."""
    ledger_id: int
    """The ledger row of the call that produced the response (its tokens and cost)."""
    created_at: datetime = Field(default_factory=utcnow)


class ArtifactSummary(SQLModel, table=True):
    """The summary of one artifact's content, written once and reused by every later agent.

    The row is claimed before the summarizer runs (`summary` still None), so agents that
    need the same summary at the same time wait for the first instead of paying twice.
    """

    __tablename__ = "artifact_summaries"
    __table_args__ = (
        UniqueConstraint("tenant", "sha256", "model", "max_tokens", name="uq_artifact_summary"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(max_length=64)
    sha256: str = Field(max_length=64)
    model: str = Field(max_length=200)
    max_tokens: int
    summary: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    claim: str = Field(max_length=64)
    """Who is writing it; a claim not renewed for a while is taken over."""
    claimed_at: datetime = Field(default_factory=utcnow)
    created_at: datetime = Field(default_factory=utcnow)


# --- repositories: what change runs start from -------------------------------------------


class RepositorySnapshot(SQLModel, table=True):
    """One repository at one commit, stored once per tenant (`id` is its content address)."""

    __tablename__ = "repository_snapshots"
    __table_args__ = (UniqueConstraint("tenant", "commit", name="uq_repository_snapshot"),)

    id: str = Field(primary_key=True, max_length=64)
    tenant: str = Field(index=True, max_length=64)
    commit: str = Field(max_length=64)
    tree: str = Field(max_length=64)
    commit_object: str = Field(sa_column=Column(Text, nullable=False))
    """The raw commit object (`git cat-file commit`), so the base commit can be rebuilt."""
    ref: str = Field(max_length=200)
    source: str = Field(max_length=500)
    test_command: str | None = Field(default=None, max_length=500)
    files: int = 0
    bytes: int = Field(default=0, sa_type=BigInteger)
    binaries: int = 0
    outline: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    """The repository map's outline (JSON), parsed once at import."""
    created_at: datetime = Field(default_factory=utcnow)


class RepositoryFile(SQLModel, table=True):
    """One tracked file of a snapshot: its git mode and blob id, and its bytes."""

    __tablename__ = "repository_files"
    __table_args__ = (UniqueConstraint("snapshot_id", "path", name="uq_repository_file"),)

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: str = Field(index=True, max_length=64)
    path: str = Field(sa_column=Column(Text, nullable=False))
    mode: str = Field(max_length=6)
    """100644, 100755, 120000 (a link: data is its target) or 160000 (a submodule: no data)."""
    blob: str = Field(max_length=64)
    size: int = 0
    binary: bool = False
    """Kept as a reference: the run's workspace does not get its content."""
    data: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


# --- tenancy: organizations, teams, users, API keys ------------------------------------


class Organization(SQLModel, table=True):
    """A tenant. Every run, key, user and webhook belongs to exactly one."""

    __tablename__ = "organizations"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(unique=True, max_length=200)
    monthly_token_limit: int | None = Field(default=None, sa_type=BigInteger)
    """Input + output tokens per calendar month (UTC); None: no limit. A BIGINT (0005)."""
    monthly_cost_limit_usd: float | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Team(SQLModel, table=True):
    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_team_name"),)

    id: str = Field(primary_key=True, max_length=64)
    org_id: str = Field(index=True, foreign_key="organizations.id", max_length=64)
    name: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class User(SQLModel, table=True):
    """A person of an organization; `subject` is the JWT `sub` that identifies them."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("org_id", "subject", name="uq_user_subject"),)

    id: str = Field(primary_key=True, max_length=64)
    org_id: str = Field(index=True, foreign_key="organizations.id", max_length=64)
    team_id: str | None = Field(default=None, foreign_key="teams.id", max_length=64)
    subject: str = Field(max_length=200)
    role: str = Field(max_length=20)
    """admin, member or viewer."""
    created_at: datetime = Field(default_factory=utcnow)


class ApiKey(SQLModel, table=True):
    """An API key: only its SHA-256 is stored; `prefix` finds the row without the secret."""

    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=64)
    org_id: str = Field(index=True, foreign_key="organizations.id", max_length=64)
    name: str = Field(max_length=200)
    role: str = Field(max_length=20)
    prefix: str = Field(unique=True, max_length=32)
    key_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


# --- webhooks -------------------------------------------------------------------------


class WebhookSubscription(SQLModel, table=True):
    __tablename__ = "webhook_subscriptions"

    id: str = Field(primary_key=True, max_length=64)
    org_id: str = Field(index=True, foreign_key="organizations.id", max_length=64)
    url: str = Field(max_length=2000)
    secret: str = Field(max_length=200)
    event_types: str = Field(sa_column=Column(Text, nullable=False))
    """JSON list of event types (`run.started`, ...)."""
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class WebhookDelivery(SQLModel, table=True):
    """One attempt to deliver one event to one subscription, with its outcome."""

    __tablename__ = "webhook_deliveries"

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: str = Field(index=True, max_length=64)
    org_id: str = Field(index=True, max_length=64)
    run_id: str = Field(index=True, max_length=64)
    event_seq: int
    event_type: str = Field(max_length=40)
    attempt: int = 1
    status_code: int | None = None
    ok: bool = False
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)


class DatabaseUnavailable(ConnectionError):
    pass


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Database:
    """One engine per process and URL; the schema is brought to head on first use."""

    def __init__(self, url: str) -> None:
        self.url = url
        is_sqlite = url.startswith("sqlite")
        options: dict[str, Any] = {}
        if is_sqlite:
            _ensure_sqlite_dir(url)
            options["connect_args"] = {"timeout": 30}
            options.update(_sqlite_engine_options(url))
        else:
            # A ping per checkout guards against dropped server connections; a file has none.
            options["pool_pre_ping"] = True
        self.engine: AsyncEngine = create_async_engine(url, **options)
        if is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _tune_sqlite)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._ready = False
        self._lock = asyncio.Lock()
        self._writers = asyncio.Lock() if is_sqlite else None
        self.grouped = GroupedInserts(self.write_session)
        """Inserts from concurrent callers that may share one commit (`record_run_started`)."""

    async def ensure_schema(self) -> None:
        if self._ready:
            return
        async with self._lock:
            if not self._ready:
                try:
                    async with migration_turn(self.url), self.engine.begin() as conn:
                        await conn.run_sync(upgrade_to_head)
                except (OSError, SQLAlchemyError) as exc:
                    raise DatabaseUnavailable(
                        f"cannot use database {self.engine.url.render_as_string(hide_password=True)}:"
                        f" {_first_line(exc)}"
                    ) from exc
                self._ready = True

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        await self.ensure_schema()
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def write_session(self) -> AsyncIterator[AsyncSession]:
        """A session for a short write transaction. On SQLite this process's writers take
        turns: many writers at once on one file wait in SQLite's busy handler, whose growing
        sleeps let some of them starve for a second or more."""
        if self._writers is None:
            async with self.session() as session:
                yield session
            return
        async with self._writers, self.session() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_engine_options(url: str) -> dict[str, Any]:
    """One trip to aiosqlite's thread per statement (`sqlite_driver`), and no rollback when
    a connection goes back to the pool: SQLAlchemy ends a connection's open transaction
    itself when it is closed, so on SQLite that rollback is a no-op that costs a trip."""
    if make_url(url).get_driver_name() != "aiosqlite":
        return {}
    options: dict[str, Any] = {"pool_reset_on_return": None}
    dbapi = one_trip_dbapi()
    if dbapi is not None:
        options["module"] = dbapi
    return options


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the CLI read while a worker writes; NORMAL sync is still crash-safe in WAL
    # mode and makes each small commit (one per tool call) far cheaper than a full fsync.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _ensure_sqlite_dir(url: str) -> None:
    """Create the database file readable by its owner only: it holds every tenant's data.

    SQLite gives its -wal and -shm files the main file's mode, so they follow.
    """
    file = sqlite_file(url)
    if file is None:
        return
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(file, os.O_CREAT | os.O_WRONLY, 0o600))
    for owned in (file, Path(f"{file}-wal"), Path(f"{file}-shm")):
        if owned.exists():
            owned.chmod(0o600)


_databases: dict[str, Database] = {}


def get_database(url: str) -> Database:
    if url not in _databases:
        _databases[url] = Database(url)
    return _databases[url]
