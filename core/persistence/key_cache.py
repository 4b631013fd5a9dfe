"""The API's API-key check: a verified key is trusted for a few seconds, its use written
at most once a minute, so an authenticated request costs no database write and, most of
the time, no read.

`KEY_CACHE_SECONDS` bounds how long a key revoked by another process (the CLI, another API
replica) still works on this one; the process that revokes it forgets it at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import update
from sqlmodel import col

from core.persistence.db import ApiKey, Database, utcnow
from core.persistence.tenancy import hash_key, live_key_row

KEY_CACHE_SECONDS = 5.0
"""How long an API process trusts a key it verified without reading its row again: a key
revoked elsewhere (the CLI, another replica) answers 401 there within this time. The
process that revokes a key (`DELETE /keys/{id}`) forgets it at once."""

LAST_USED_WRITE_SECONDS = 60.0
"""A key's `last_used_at` is written at most this often by each API process."""


@dataclass(frozen=True)
class VerifiedKey:
    """What a request needs of a live key: which it is, its organization and its role."""

    id: str
    org_id: str
    role: str


class KeyCache:
    """Keys this process verified, trusted for `ttl` seconds from the read of their row (read
    again in the background after half of it); `last_used_at` written at most every
    `touch_every` seconds per key. Only live keys are kept: a wrong or revoked key is looked
    up every time (failed authentications are rate limited per address instead).

    Concurrent requests with the same key share one lookup. `clock` is monotonic seconds.
    """

    def __init__(
        self,
        *,
        ttl: float = KEY_CACHE_SECONDS,
        touch_every: float = LAST_USED_WRITE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.ttl, self.touch_every, self.clock, self.max_keys = ttl, touch_every, clock, max_keys
        self._verified: dict[str, tuple[VerifiedKey, float]] = {}
        self._lookups: dict[str, asyncio.Task[VerifiedKey | None]] = {}
        self._touched: dict[str, float] = {}
        self._generation = 0

    async def verify(self, db: Database, presented: str) -> VerifiedKey | None:
        digest = hash_key(presented)
        kept = self._verified.get(digest)
        key: VerifiedKey | None
        age = self.clock() - kept[1] if kept is not None else self.ttl
        if kept is not None and age < self.ttl:
            key = kept[0]
            if age >= self.ttl / 2:
                # Read again meanwhile, so a key in steady use never waits for its row.
                self._look_up(db, presented, digest)
        else:
            key = await asyncio.shield(self._look_up(db, presented, digest))
        if key is not None and self._touch_due(key.id):
            try:
                await touch_key(db, key.id)
            except BaseException:
                self._touched.pop(key.id, None)  # the next request writes it
                raise
        return key

    def forget(self, key_id: str) -> None:
        """Drop a key (revoked by this process): its next request reads its row again, and
        a lookup that read the row before the revocation is not kept."""
        self._generation += 1
        for digest, (key, _) in list(self._verified.items()):
            if key.id == key_id:
                del self._verified[digest]

    def _look_up(
        self, db: Database, presented: str, digest: str
    ) -> asyncio.Task[VerifiedKey | None]:
        """The key's lookup, started if none is: one per key at a time, in a task of its
        own, so a request that gives up (its client went away) cancels nobody's lookup."""
        lookup = self._lookups.get(digest)
        if lookup is None:
            lookup = asyncio.ensure_future(self._fetch(db, presented, digest))
            self._lookups[digest] = lookup

            def done(task: asyncio.Task[VerifiedKey | None]) -> None:
                self._lookups.pop(digest, None)
                if not task.cancelled():
                    task.exception()  # retrieved, even when every waiter gave up

            lookup.add_done_callback(done)
        return lookup

    async def _fetch(self, db: Database, presented: str, digest: str) -> VerifiedKey | None:
        started, generation = self.clock(), self._generation
        key = await _live_key(db, presented)
        if generation != self._generation:
            return key  # a key was revoked meanwhile: what was read before is not kept
        if key is None:
            self._verified.pop(digest, None)  # revoked since it was kept
        else:
            if len(self._verified) >= self.max_keys:
                self._verified.clear()
            self._verified[digest] = (key, started)
        return key

    def _touch_due(self, key_id: str) -> bool:
        """Whether this request writes the key's last use; claimed before the write, so
        requests arriving meanwhile do not write it too."""
        now = self.clock()
        last = self._touched.get(key_id)
        if last is not None and now - last < self.touch_every:
            return False
        if len(self._touched) >= self.max_keys:
            self._touched.clear()
        self._touched[key_id] = now
        return True


async def _live_key(db: Database, presented: str) -> VerifiedKey | None:
    """The key row's identity if `presented` is a live key; no write."""
    async with db.session() as session:
        row = await live_key_row(session, presented)
    if row is None:
        return None
    return VerifiedKey(id=row.id, org_id=row.org_id, role=row.role)


async def touch_key(db: Database, key_id: str) -> None:
    """Set the key's `last_used_at` to now."""
    async with db.session() as session:
        await session.execute(
            update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used_at=utcnow())
        )
        await session.commit()
