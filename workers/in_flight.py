"""A worker's activities in flight, kept on disk so the next worker can hand them back.

The server notices a SIGKILLed worker's activities only by their timeouts: a model call
after its heartbeat timeout (2 s), a tool call or a check after up to a minute. A worker
process holds a slot in its data directory instead, an exclusive `flock` on
`slot-N.lock` that the kernel releases when the process dies, and appends the task token
of each activity it starts and finishes to `slot-N.inflight`. A worker that starts takes
the lowest free slot; every slot file it can lock belongs to a dead worker (at start, and
every second after), so the activities it names are failed at once with a retryable
`WorkerDied` error that asks for the retry at once, within each activity's own retry
policy's attempts. An activity that had finished is no longer the server's to fail
(`NOT_FOUND`), so nothing runs twice that the timeouts would not have run twice.

Slots are kept per Temporal address and namespace, and only on this machine: a worker
restarted elsewhere leaves the dead one's activities to their timeouts.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fcntl
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from core.infrastructure.logs import get_logger

WORKER_DIED_ERROR = "WorkerDied"
RETRY_HANDED_BACK_AFTER = timedelta(milliseconds=1)
"""A handed-back activity is retried at once, not after its retry policy's first interval
(a model call's is 0.2 s): nothing failed that waiting would mend. Not zero: a zero delay
is the failure's "unset", which means the policy's interval."""
COMPACT_AFTER_BYTES = 64 * 1024
"""The in-flight log is rewritten with only the live tokens once it grows past this."""

_SLOT = re.compile(r"^slot-(\d+)\.lock$")
log = get_logger(__name__)


def slots_directory(data_dir: Path, target_host: str, namespace: str) -> Path:
    """Where the workers of one Temporal namespace on this machine keep their slots."""
    cluster = hashlib.sha256(f"{target_host}\0{namespace}".encode()).hexdigest()[:16]
    return data_dir / "workers" / cluster


@dataclass
class InFlightLog:
    """The slot this process holds and the task tokens of its running activities."""

    directory: Path
    number: int
    _lock_fd: int
    _log_fd: int = -1
    _live: set[bytes] = field(default_factory=set)
    _written: int = 0

    @classmethod
    def claim(cls, directory: Path) -> tuple[InFlightLog, list[bytes]]:
        """Hold the lowest free slot; also return the tokens its dead holders left, in this
        slot and in every other slot no live worker holds."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # tokens can end activities
        number = 0
        while (lock_fd := _try_lock(directory / f"slot-{number}.lock")) is None:
            number += 1
        slot = cls(directory, number, lock_fd)
        orphaned = _read_tokens(slot.path) + slot.adopt_dead_slots()
        slot._rewrite()
        return slot, orphaned

    def adopt_dead_slots(self) -> list[bytes]:
        """The tokens left in every other slot whose holder has died since it was looked at
        (each slot's once: its file is removed)."""
        return [
            t
            for n in _slot_numbers(self.directory) - {self.number}
            for t in _adopt(self.directory, n)
        ]

    @property
    def path(self) -> Path:
        return self.directory / f"slot-{self.number}.inflight"

    def started(self, token: bytes) -> None:
        self._live.add(token)
        self._append(b"+", token)

    def finished(self, token: bytes) -> None:
        self._live.discard(token)
        if self._written > COMPACT_AFTER_BYTES:
            self._rewrite()
        else:
            self._append(b"-", token)

    def release(self) -> None:
        """A clean exit: nothing in flight is left behind, and the slot is free. An activity
        still finishing after this writes nothing (its descriptor may be another file's)."""
        self._live.clear()
        self._rewrite()
        os.close(self._log_fd)
        os.close(self._lock_fd)
        self._log_fd = self._lock_fd = -1

    def _append(self, sign: bytes, token: bytes) -> None:
        if self._lock_fd < 0:
            return
        # One write of a short line to an O_APPEND file: a kill leaves it whole or absent.
        self._written += os.write(self._log_fd, _line(sign, token))

    def _rewrite(self) -> None:
        if self._lock_fd < 0:
            return
        temporary = self.path.with_suffix(".tmp")
        lines = b"".join(_line(b"+", t) for t in self._live)
        # Task tokens can complete or fail activities: readable by this user only.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, lines)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        if self._log_fd >= 0:
            os.close(self._log_fd)
        self._log_fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._written = len(lines)


def _line(sign: bytes, token: bytes) -> bytes:
    """One log line: `+` started or `-` finished, then the token (`_read_tokens` reads it)."""
    return sign + base64.b64encode(token) + b"\n"


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _slot_numbers(directory: Path) -> set[int]:
    return {int(m.group(1)) for p in directory.iterdir() if (m := _SLOT.match(p.name))}


def _adopt(directory: Path, number: int) -> list[bytes]:
    """The tokens of a slot whose holder is dead (empty while a live worker holds it)."""
    fd = _try_lock(directory / f"slot-{number}.lock")
    if fd is None:
        return []
    try:
        path = directory / f"slot-{number}.inflight"
        tokens = _read_tokens(path)
        path.unlink(missing_ok=True)
        return tokens
    finally:
        os.close(fd)


def _read_tokens(path: Path) -> list[bytes]:
    """Tokens started and not finished, by replaying the log (a torn line is skipped)."""
    live: dict[bytes, None] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_bytes().splitlines():
            try:
                token = base64.b64decode(line[1:], validate=True)
            except (binascii.Error, ValueError):
                continue
            if line.startswith(b"+"):
                live[token] = None
            elif line.startswith(b"-"):
                live.pop(token, None)
    return list(live)


async def hand_back(client: Client, tokens: list[bytes], timeout: float = 5.0) -> int:
    """Fail a dead worker's activities so the server retries them now; how many it took
    (within `timeout`: the rest are left to their timeouts)."""
    error = ApplicationError(
        "the worker running this activity died; a new worker on its machine handed it back",
        type=WORKER_DIED_ERROR,
        next_retry_delay=RETRY_HANDED_BACK_AFTER,
    )

    async def fail(token: bytes) -> bool:
        try:
            await client.get_async_activity_handle(task_token=token).fail(error)
        except RPCError as failure:
            if failure.status != RPCStatusCode.NOT_FOUND:  # NOT_FOUND: finished or retried
                log.warning("could not hand back an activity", error=str(failure))
            return False
        return True

    try:
        handed = sum(await asyncio.wait_for(asyncio.gather(*(fail(t) for t in tokens)), timeout))
    except TimeoutError:
        log.warning("handing back a dead worker's activities timed out", found=len(tokens))
        return 0
    if tokens:
        log.info("handed back a dead worker's activities", activities=handed, found=len(tokens))
    return handed


async def watch_dead_slots(client: Client, slot: InFlightLog, every: float = 1.0) -> None:
    """Hand back what a worker beside this one left when it died, while no successor has
    taken its slot (say it was not restarted)."""
    while True:
        await asyncio.sleep(every)
        orphaned = slot.adopt_dead_slots()
        if orphaned:
            await hand_back(client, orphaned)


class InFlightInterceptor(Interceptor):
    """Worker interceptor: each activity's task token is in the log while it runs."""

    def __init__(self, slot: InFlightLog) -> None:
        self.slot = slot

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _RecordInFlight(next, self.slot)


class _RecordInFlight(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, slot: InFlightLog) -> None:
        super().__init__(next)
        self.slot = slot

    async def execute_activity(self, input: ExecuteActivityInput) -> object:
        with _in_flight(self.slot, activity.info().task_token):
            return await self.next.execute_activity(input)


@contextlib.contextmanager
def _in_flight(slot: InFlightLog, token: bytes) -> Iterator[None]:
    slot.started(token)
    try:
        yield
    finally:
        slot.finished(token)
