"""The API's key check (`core/persistence/key_cache.py`) on both databases: a key's row is read
once per `KEY_CACHE_SECONDS` and its `last_used_at` written once per
`LAST_USED_WRITE_SECONDS`; a revoked key stops working within the first, at once where it
was revoked. Time is a clock the test moves; statements are counted on the engine."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import event

from core.persistence import tenancy
from core.persistence.db import ApiKey, Database
from core.persistence.key_cache import (
    KEY_CACHE_SECONDS,
    LAST_USED_WRITE_SECONDS,
    KeyCache,
    VerifiedKey,
)
from core.persistence.tenancy import IssuedKey, OrgRole


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def statements(any_db: Database) -> Counter[str]:
    """SELECTs and UPDATEs of `api_keys`, as the engine sends them."""
    seen: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "api_keys" in statement:
            seen[statement.split(None, 1)[0].upper()] += 1

    event.listen(any_db.engine.sync_engine, "before_cursor_execute", count)
    return seen


async def issued(db: Database, role: OrgRole = OrgRole.MEMBER) -> IssuedKey:
    org = await tenancy.create_org(db, "acme")
    return await tenancy.create_key(db, org.id, "ci", role)


async def last_used(db: Database, key_id: str) -> datetime | None:
    async with db.session() as session:
        row = await session.get(ApiKey, key_id)
        assert row is not None
        return row.last_used_at


async def test_last_used_is_written_once_a_minute_however_many_requests(
    any_db: Database, statements: Counter[str]
) -> None:
    key = await issued(any_db)
    statements.clear()
    clock = Clock()
    keys = KeyCache(clock=clock)
    expected = VerifiedKey(id=key.row.id, org_id=key.row.org_id, role="member")

    # Fifty requests at once: one read of the row, one write of its use.
    found = await asyncio.gather(*(keys.verify(any_db, key.secret) for _ in range(50)))
    assert found == [expected] * 50
    assert statements == {"SELECT": 1, "UPDATE": 1}
    first = await last_used(any_db, key.row.id)
    assert first is not None

    for _ in range(20):  # within the minute the row is read again, its use not written
        clock.advance(LAST_USED_WRITE_SECONDS / 20 - 0.001)
        assert await keys.verify(any_db, key.secret) == expected
        await asyncio.sleep(0)  # a read again in the background runs
    assert statements["UPDATE"] == 1
    assert 1 < statements["SELECT"] <= 21
    assert await last_used(any_db, key.row.id) == first

    clock.advance(0.02)  # a minute since the write
    assert await keys.verify(any_db, key.secret) == expected
    assert statements["UPDATE"] == 2
    second = await last_used(any_db, key.row.id)
    assert second is not None and second > first


async def test_a_key_revoked_elsewhere_works_until_the_cache_time_then_never(
    any_db: Database,
) -> None:
    key = await issued(any_db)
    clock = Clock()
    keys = KeyCache(clock=clock)
    assert await keys.verify(any_db, key.secret) is not None

    await tenancy.revoke_key(any_db, key.row.id)  # as the CLI or another replica does
    clock.advance(KEY_CACHE_SECONDS - 0.001)
    assert await keys.verify(any_db, key.secret) is not None  # the documented bound
    clock.advance(0.001)
    assert await keys.verify(any_db, key.secret) is None
    clock.advance(3600)
    assert await keys.verify(any_db, key.secret) is None


async def test_a_key_revoked_by_this_process_stops_at_once(any_db: Database) -> None:
    key = await issued(any_db)
    keys = KeyCache(clock=Clock())
    assert await keys.verify(any_db, key.secret) is not None
    await tenancy.revoke_key(any_db, key.row.id)
    keys.forget(key.row.id)  # what `DELETE /keys/{id}` does after revoking
    assert await keys.verify(any_db, key.secret) is None


async def test_wrong_and_unknown_keys_are_never_kept(
    any_db: Database, statements: Counter[str]
) -> None:
    key = await issued(any_db)
    statements.clear()
    keys = KeyCache(clock=Clock())
    for _ in range(3):
        assert await keys.verify(any_db, key.secret + "x") is None
        assert await keys.verify(any_db, "orch_nope_nope") is None
    assert statements == {"SELECT": 6}  # each asked the database; nothing was written
    assert await keys.verify(any_db, "not-a-key") is None  # not even looked up
    assert statements == {"SELECT": 6}
    assert await last_used(any_db, key.row.id) is None
