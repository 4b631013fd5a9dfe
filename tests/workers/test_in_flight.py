"""A worker's slot and its activities in flight, as a successor finds them after a SIGKILL.

Holders are real processes killed with SIGKILL, so the kernel releases their locks as it
does for a worker; the run-level behaviour is in test_failover.py.
"""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workers.in_flight import COMPACT_AFTER_BYTES, InFlightLog, slots_directory

HOLDER = """
import sys
from pathlib import Path
from workers.in_flight import InFlightLog

slot, _ = InFlightLog.claim(Path(sys.argv[1]))
for token in sys.argv[2:]:
    slot.started(token.encode())
slot.finished(b"done")
print(slot.number, flush=True)
sys.stdin.read()  # held until killed
"""


@contextmanager
def holder(directory: Path, *tokens: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A process holding a slot with `tokens` in flight (and one finished, `done`)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(directory), "done", *tokens],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process, int(process.stdout.readline())
    finally:
        process.kill()
        process.wait()


def killed(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_a_successor_takes_the_dead_workers_slot_and_its_activities(tmp_path: Path) -> None:
    with holder(tmp_path, "call-1", "call-2") as (first, number):
        assert number == 0
        beside, nothing = InFlightLog.claim(tmp_path)  # a live worker's slot is never taken
        assert (beside.number, nothing) == (1, [])
        killed(first)
        successor, orphaned = InFlightLog.claim(tmp_path)
    assert successor.number == 0
    assert sorted(orphaned) == [b"call-1", b"call-2"]  # not `done`, which finished
    successor.release()
    again, left = InFlightLog.claim(tmp_path)  # handed back once, never twice
    assert (again.number, left) == (0, [])
    again.release()
    beside.release()


def test_a_new_worker_adopts_every_dead_workers_slot(tmp_path: Path) -> None:
    with holder(tmp_path, "a") as (first, _), holder(tmp_path, "b") as (second, number):
        assert number == 1
        with holder(tmp_path, "c"):  # alive throughout
            killed(first)
            killed(second)
            successor, orphaned = InFlightLog.claim(tmp_path)
            assert successor.number == 0
            assert sorted(orphaned) == [b"a", b"b"]  # its own slot's and slot 1's; not c
            later, none = InFlightLog.claim(tmp_path)
            assert (later.number, none) == (1, [])
    successor.release()
    later.release()


def test_a_live_worker_adopts_the_slot_of_one_that_died_beside_it(tmp_path: Path) -> None:
    watcher, _ = InFlightLog.claim(tmp_path)
    with holder(tmp_path, "cut") as (beside, number):
        assert number == 1
        assert watcher.adopt_dead_slots() == []  # alive: not its to take
        killed(beside)
        assert watcher.adopt_dead_slots() == [b"cut"]
        assert watcher.adopt_dead_slots() == []  # handed back once
    watcher.release()


def test_a_line_torn_by_the_kill_is_skipped(tmp_path: Path) -> None:
    with holder(tmp_path, "whole") as (first, _):
        killed(first)
    with (tmp_path / "slot-0.inflight").open("ab") as log:
        log.write(b"+" + base64.b64encode(b"torn")[:5])  # cut mid-line
    successor, orphaned = InFlightLog.claim(tmp_path)
    assert orphaned == [b"whole"]
    successor.release()


def test_the_log_stays_small_over_many_activities(tmp_path: Path) -> None:
    slot, _ = InFlightLog.claim(tmp_path)
    slot.started(b"long-running")
    for n in range(5000):
        token = f"activity-{n:05d}".encode() * 8
        slot.started(token)
        slot.finished(token)
    assert slot.path.stat().st_size < COMPACT_AFTER_BYTES * 1.1
    slot.release()
    after, left = InFlightLog.claim(tmp_path)
    assert left == []  # a clean exit leaves nothing to hand back
    after.release()


def test_the_log_is_private_and_a_released_slot_writes_nothing(tmp_path: Path) -> None:
    slot, _ = InFlightLog.claim(tmp_path)
    slot.started(b"running")
    assert slot.path.stat().st_mode & 0o777 == 0o600
    slot.release()
    slot.finished(b"running")  # an activity that ends after the worker let go of its slot
    slot.started(b"late")
    assert slot.path.read_bytes() == b""


def test_slots_are_kept_per_temporal_namespace() -> None:
    data = Path("/data")
    one = slots_directory(data, "127.0.0.1:7233", "default")
    assert one == slots_directory(data, "127.0.0.1:7233", "default")
    assert one.parent == data / "workers"
    assert one != slots_directory(data, "127.0.0.1:7233", "other")
    assert one != slots_directory(data, "127.0.0.1:7234", "default")
