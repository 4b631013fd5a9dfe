"""Results of check units, kept per run and keyed by the content they read.

A unit is the smallest piece of a check run whose result depends only on known inputs:

- `lint` and `security`: ruff on one file (its path and content, the tool's version and
  rules). Only files that changed since an earlier check of the run are given to ruff.
- `bandit`: bandit's remaining tests on one file that names what they look for.
- `tests`: one project's pytest suite, keyed by the whole workspace (tests may read any
  file), the folder it runs in and its time limit.
- `test-command`: a change run's repository test command on the whole workspace.

Results live in the database (`core/persistence/check_results.py`), per run: they survive
a worker restart, and the next check of the same files, by either gate or a task's own
checks, on any worker, reuses them. In one process, units being computed are shared too:
a second check that needs a unit another one is running waits for it instead of running
it again. A unit whose tool could not run or was cut off by a limit is never stored.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from core.persistence import check_results
from core.persistence.db import Database

CACHE_VERSION = "1"
"""Part of every key: bump it when what a unit stores, or how it is computed, changes."""


def digest(*parts: str) -> str:
    """sha256 of the parts, each length-prefixed so no two part lists collide."""
    h = hashlib.sha256(CACHE_VERSION.encode())
    for part in parts:
        data = part.encode("utf-8", errors="surrogatepass")
        h.update(f"{len(data)}:".encode())
        h.update(data)
    return h.hexdigest()


def content_digest(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8", errors="surrogatepass")).hexdigest()


def workspace_digest(files: Mapping[str, str]) -> str:
    """One hash of every path and content of the workspace."""
    return digest(*(f"{path}\0{content_digest(text)}" for path, text in sorted(files.items())))


Compute = Callable[[], Awaitable[tuple[str, bool]]]
"""Runs a unit: its result, and whether it may be kept (False: its tool was cut off)."""


class CheckCache(Protocol):
    async def get(self, kind: str, keys: Collection[str]) -> dict[str, str]: ...

    async def put(self, kind: str, results: Mapping[str, str]) -> None: ...

    async def once(self, kind: str, key: str, compute: Compute) -> tuple[str, bool]: ...


@dataclass
class NoCache:
    """Keeps nothing: every unit runs (checks outside a run, e.g. the executability bench)."""

    async def get(self, kind: str, keys: Collection[str]) -> dict[str, str]:
        return {}

    async def put(self, kind: str, results: Mapping[str, str]) -> None:
        return None

    async def once(self, kind: str, key: str, compute: Compute) -> tuple[str, bool]:
        return (await compute())[0], False


_running: dict[tuple[str, str, str], asyncio.Future[str | None]] = {}
"""Units being computed in this process, by (run, kind, key)."""


@dataclass
class RunCheckCache:
    """The stored results of one run's checks."""

    db: Database
    run_id: str

    async def get(self, kind: str, keys: Collection[str]) -> dict[str, str]:
        return await check_results.stored_results(self.db, self.run_id, kind, keys)

    async def put(self, kind: str, results: Mapping[str, str]) -> None:
        await check_results.store_results(self.db, self.run_id, kind, results)

    async def once(self, kind: str, key: str, compute: Compute) -> tuple[str, bool]:
        """The unit's stored result, or `compute()`'s (stored if it may be kept); True if
        it was reused. A unit another check of this process is computing is waited for."""
        slot = (self.run_id, kind, key)
        running = _running.get(slot)
        if running is not None:
            shared = await asyncio.shield(running)
            if shared is not None:
                return shared, True
            return await self.once(kind, key, compute)
        # Registered before the first await: a check starting meanwhile waits for this one.
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        _running[slot] = future
        kept: str | None = None
        try:
            kept = (await self.get(kind, [key])).get(key)
            if kept is not None:
                return kept, True
            result, keep = await compute()
            if keep:
                await self.put(kind, {key: result})
                kept = result
            return result, False
        finally:
            del _running[slot]
            future.set_result(kept)  # None: a waiter runs the unit itself
