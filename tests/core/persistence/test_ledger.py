"""What a model call costs the database, on both databases: the turn context kept per task
attempt equals the ledger's rebuild, a call is recorded in one statement, a turn's files in
one insert, and the budget check reads the organization once per few seconds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from core.contracts import TurnKey, Usage
from core.persistence import ledger, storage, tenancy
from core.persistence.db import Database, LedgerEntry
from core.persistence.ledger import TurnContext, TurnContexts
from core.persistence.spending_guard import SpendingGuard


def key(turn: int, execution: str = "A", task: str = "backend", attempt: int = 0) -> TurnKey:
    return TurnKey(
        run_id="r1",
        workflow_id="run-r1",
        execution_id=execution,
        task_id=task,
        attempt=attempt,
        turn=turn,
    )


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements `db` runs inside the block."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        seen.append(sql)

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def call(
    db: Database, turn_key: TurnKey, tokens: int = 1, tenant: str = "acme"
) -> LedgerEntry:
    return await storage.record_model_call(
        db,
        turn_key,
        tenant=tenant,
        role="backend_engineer",
        provider="offline",
        model="offline-sim-1",
        usage=Usage(input_tokens=tokens, output_tokens=2),
        cost_usd=0.01 * tokens,
        stop_reason="tool_use",
        response_json=f'{{"turn": {turn_key.turn}, "execution": "{turn_key.execution_id}"}}',
    )


async def tool_results(db: Database, turn_key: TurnKey) -> None:
    async with storage.turn_workspace(db, turn_key, role="backend_engineer", model="m") as ws:
        await ws.record_results(f'[{{"turn": {turn_key.turn}}}]')


def shape(context: TurnContext) -> tuple[Any, ...]:
    """What a context holds, by row id (rows are immutable: same id, same row)."""
    return (
        context.recorded.id if context.recorded else None,
        [a.id for a in context.upstream],
        [(e.turn, e.execution_id, e.id) for e in context.earlier_calls],
        [(r.turn, r.execution_id, r.id) for r in context.earlier_results],
    )


async def test_a_cached_turn_context_equals_the_ledgers_rebuild_and_reads_only_new_rows(
    any_db: Database,
) -> None:
    upstream = [
        (
            await storage.write_artifact(
                any_db, key(0, task="design"), path=path, content=text, role="ux", model="m"
            )
        ).id
        for path, text in (("docs/ui.md", "# UI"), ("docs/api.md", "# API"))
    ]
    contexts = TurnContexts()
    for turn in range(5):
        with statements(any_db) as seen:
            cached = await contexts.get(any_db, key(turn), upstream)
        rebuilt = await ledger.turn_context(any_db, key(turn), upstream)
        fresh = await TurnContexts().get(any_db, key(turn), upstream)  # a restarted worker
        assert shape(cached) == shape(rebuilt) == shape(fresh)
        assert cached.recorded is None and len(cached.earlier_calls) == turn
        # Turn 0 reads its ledger row and the upstream files; later turns only the ledger
        # and tool-result rows since the turn before, never the upstream files again.
        assert len(seen) == 2, seen
        assert [a.content for a in cached.upstream] == ["# UI", "# API"]
        await call(any_db, key(turn))
        if turn != 2:  # turn 2 called no tools: it has no results row
            await tool_results(any_db, key(turn))

    last = await contexts.get(any_db, key(5), upstream)
    assert [r.turn for r in last.earlier_results] == [0, 1, 3, 4]
    # A turn already recorded (its activity retried) is found, cached or not.
    again = await contexts.get(any_db, key(3), upstream)
    assert again.recorded is not None and again.recorded.turn == 3
    assert shape(again) == shape(await ledger.turn_context(any_db, key(3), upstream))
    assert shape(await contexts.get(any_db, key(5), upstream)) == shape(last)


async def test_after_a_reset_the_cache_picks_the_rows_the_rebuild_picks(any_db: Database) -> None:
    """Execution A made turns 0-2; a reset to after turn 1 started execution B, which found
    turns 0 and 1 in history (A's rows) and made turn 2 again."""
    contexts = TurnContexts()
    for turn in range(3):
        await contexts.get(any_db, key(turn, "A"), [])
        await call(any_db, key(turn, "A"))
        await tool_results(any_db, key(turn, "A"))
    await contexts.get(any_db, key(3, "A"), [])  # A's context is cached up to turn 3

    in_b = await contexts.get(any_db, key(2, "B"), [])
    assert shape(in_b) == shape(await ledger.turn_context(any_db, key(2, "B"), []))
    assert [(e.turn, e.execution_id) for e in in_b.earlier_calls] == [(0, "A"), (1, "A")]
    await call(any_db, key(2, "B"), tokens=7)
    await tool_results(any_db, key(2, "B"))

    cached = await contexts.get(any_db, key(3, "B"), [])
    rebuilt = await ledger.turn_context(any_db, key(3, "B"), [])
    assert (
        shape(cached) == shape(rebuilt) == shape(await TurnContexts().get(any_db, key(3, "B"), []))
    )
    assert [(e.turn, e.execution_id) for e in cached.earlier_calls] == [
        (0, "A"),
        (1, "A"),
        (2, "B"),
    ]
    assert cached.earlier_calls[2].input_tokens == 7
    # Another attempt of the task has a conversation of its own.
    other = await contexts.get(any_db, key(0, "B", attempt=1), [])
    assert other.earlier_calls == [] and other.recorded is None


async def test_a_call_is_recorded_in_one_statement_and_a_retry_keeps_the_first_row(
    any_db: Database,
) -> None:
    await any_db.ensure_schema()
    with statements(any_db) as seen:
        first = await call(any_db, key(0), tokens=3)
    assert len(seen) == 1, seen  # INSERT ... RETURNING: no second read of the row
    [stored] = await storage.ledger_entries(any_db, "run-r1")
    assert (first.id, first.input_tokens, first.cost_usd) == (stored.id, 3, stored.cost_usd)
    assert first.response == stored.response

    retried = await call(any_db, key(0), tokens=9)  # a retry after the first write
    assert (retried.id, retried.input_tokens) == (first.id, 3)
    assert len(await storage.ledger_entries(any_db, "run-r1")) == 1


async def test_a_turns_files_are_stored_in_one_insert_and_a_retry_finds_them(
    any_db: Database,
) -> None:
    files = {"backend/app.py": "app", "backend/db.py": "db", "tests/test_app.py": "test"}
    await storage.write_artifact(
        any_db, key(0), path="backend/app.py", content="v1", role="r", model="m"
    )
    with statements(any_db) as seen:
        async with storage.turn_workspace(any_db, key(1), role="r", model="m") as ws:
            refs = [await ws.write(path, text) for path, text in files.items()]
            stored = await ws.flush()
    # One version lookup per file, then one INSERT for all of them (was four per file).
    assert len(seen) == len(files) + 1, seen
    assert [r.version for r in refs] == [2, 1, 1]
    assert [stored[p].version for p in files] == [2, 1, 1]
    assert all(stored[p].id > 0 for p in files)
    loaded = await storage.artifacts_by_id(any_db, [stored[p].id for p in files])
    assert [a.content for a in loaded] == list(files.values())

    # The turn again (its activity retried), with other content: the first write stays.
    async with storage.turn_workspace(any_db, key(1), role="r", model="m") as ws:
        again = [await ws.write(path, text + "!") for path, text in files.items()]
        kept = await ws.flush()
    assert [r.version for r in again] == [2, 1, 1]
    assert kept == stored
    assert len(await storage.all_artifact_versions(any_db, "r1")) == 4


async def test_the_budget_check_reads_an_unlimited_tenant_once_per_ttl(any_db: Database) -> None:
    now = [100.0]
    guard = SpendingGuard(ttl=5.0, clock=lambda: now[0])
    org = await tenancy.create_org(any_db, "acme")
    check: dict[str, Any] = {
        "tenant": org.id,
        "workflow_id": "run-r1",
        "run_tokens": None,
        "run_usd": None,
    }

    with statements(any_db) as first:
        assert await guard.problem(any_db, **check) is None
    with statements(any_db) as second:
        assert await guard.problem(any_db, **check) is None
    assert len(first) == 1 and second == []

    # A limit set meanwhile counts once the TTL has passed, and then from the ledger.
    await call(any_db, key(0), tokens=50, tenant=org.id)
    await tenancy.update_org_limits(any_db, org.id, monthly_token_limit=10)
    assert await guard.problem(any_db, **check) is None
    now[0] += 5.0
    problem = await guard.problem(any_db, **check)
    assert problem == await tenancy.budget_problem(any_db, **check)
    assert problem is not None and "monthly token budget of acme spent" in problem


async def test_a_raised_limit_counts_at_once_and_run_limits_read_as_before(
    any_db: Database,
) -> None:
    guard = SpendingGuard(ttl=3600.0)
    org = await tenancy.create_org(any_db, "acme", monthly_token_limit=10)
    check: dict[str, Any] = {
        "tenant": org.id,
        "workflow_id": "run-r1",
        "run_tokens": None,
        "run_usd": None,
    }
    await call(any_db, key(0), tokens=50, tenant=org.id)
    assert await guard.problem(any_db, **check) is not None

    # A person raises the limit to answer the budget gate: the very next call may go.
    await tenancy.update_org_limits(any_db, org.id, monthly_token_limit=1000)
    assert await guard.problem(any_db, **check) is None

    for run_tokens, run_usd in ((40, None), (None, 0.2), (1000, 10.0)):
        limits = check | {"run_tokens": run_tokens, "run_usd": run_usd}
        assert await guard.problem(any_db, **limits) == await tenancy.budget_problem(
            any_db, **limits
        )
    assert await guard.problem(any_db, **check | {"run_tokens": 40}) == (
        "run token budget spent: 52 of 40 tokens"
    )
