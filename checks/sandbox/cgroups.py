"""One control group per sandbox: memory and process count bounded for all its processes.

Rlimits bound each process; only a cgroup bounds the sandbox as a whole (three processes
of 1 GiB each pass a 2 GiB RLIMIT_AS). cgroup v2 is used where the worker may create
groups under its own; on hosts still on the v1 hierarchies, the `memory` and `pids`
hierarchies do the same job. Whatever cannot be applied is said by `probe().problems`,
which the worker logs once when it starts.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from checks.sandbox.limits import SandboxLimits

_PREFIX = "orch-sandbox-"


@dataclass(frozen=True)
class CgroupSupport:
    """Where this worker can create sandbox groups, per controller."""

    version: int | None
    memory: Path | None
    """Parent directory of new groups with the memory controller (v2: also pids)."""
    pids: Path | None
    problems: tuple[str, ...] = ()
    """Limits that cannot be applied on this machine, each with the reason."""

    def describe(self) -> str:
        applied = [name for name, where in (("memory", self.memory), ("pids", self.pids)) if where]
        if not applied:
            return "no cgroup limits"
        return f"cgroup v{self.version} ({', '.join(applied)})"


@dataclass
class SandboxCgroup:
    """The groups of one sandbox: a v2 group, or one group per v1 hierarchy."""

    support: CgroupSupport
    dirs: list[Path] = field(default_factory=list)

    @classmethod
    def create(cls, support: CgroupSupport, limits: SandboxLimits) -> SandboxCgroup:
        group = cls(support)
        name = _PREFIX + secrets.token_hex(6)
        try:
            if support.version == 2 and support.memory is not None:
                path = support.memory / name
                path.mkdir()
                group.dirs.append(path)
                _write(path / "memory.max", limits.run_memory_bytes)
                _write_if_present(path / "memory.swap.max", 0)
                _write(path / "pids.max", limits.processes)
            else:
                if support.memory is not None:
                    path = support.memory / name
                    path.mkdir()
                    group.dirs.append(path)
                    _write(path / "memory.limit_in_bytes", limits.run_memory_bytes)
                    _write_if_present(path / "memory.memsw.limit_in_bytes", limits.run_memory_bytes)
                if support.pids is not None:
                    path = support.pids / name
                    path.mkdir()
                    group.dirs.append(path)
                    _write(path / "pids.max", limits.processes)
        except BaseException:
            group.remove()
            raise
        return group

    def add(self, pid: int) -> None:
        for path in self.dirs:
            _write(path / "cgroup.procs", pid)

    def out_of_memory(self) -> bool:
        """Whether the kernel's OOM killer acted on this group."""
        for path in self.dirs:
            for events in ("memory.events", "memory.oom_control"):
                with contextlib.suppress(OSError):
                    for line in (path / events).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and int(value) > 0:
                            return True
        return False

    def kill(self, deadline: float) -> None:
        """Kill every process in the groups and wait until they are empty."""
        for path in self.dirs:
            kill_file = path / "cgroup.kill"
            if kill_file.exists():
                with contextlib.suppress(OSError):
                    _write(kill_file, 1)
            while pids := _procs(path):
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)

    def remove(self) -> None:
        for path in self.dirs:
            for _ in range(100):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        break
                    time.sleep(0.01)
        self.dirs = []


_probe_lock = threading.Lock()
_support: CgroupSupport | None = None


def probe() -> CgroupSupport:
    """Find (once) where this process may create bounded groups."""
    global _support
    with _probe_lock:
        if _support is None:
            _support = _probe_v2() or _probe_v1()
        return _support


def _probe_v2() -> CgroupSupport | None:
    mount = _mount_point("cgroup2")
    own = _own_path("")
    if mount is None or own is None:
        return None
    base = mount / own.lstrip("/")
    available = _read_words(base / "cgroup.controllers")
    if not {"memory", "pids"} <= available:
        # A hybrid host: the unified hierarchy carries no controllers; v1 has them.
        return None
    try:
        _delegate(base)
    except OSError as exc:
        return CgroupSupport(
            2,
            None,
            None,
            (f"memory and process limits per sandbox: cannot use cgroup {base} ({exc})",),
        )
    return CgroupSupport(2, base, base)


def _delegate(base: Path) -> None:
    """Enable memory and pids for children of `base`.

    cgroup v2 lets a group hand controllers to its children only when it holds no
    processes itself, so the worker's own processes move into a `worker` leaf first.
    """
    wanted = {"memory", "pids"}
    if wanted <= _read_words(base / "cgroup.subtree_control"):
        return
    leaf = base / "worker"
    leaf.mkdir(exist_ok=True)
    for pid in _procs(base):
        with contextlib.suppress(ProcessLookupError, OSError):
            _write(leaf / "cgroup.procs", pid)
    (base / "cgroup.subtree_control").write_text("+memory +pids")


def _probe_v1() -> CgroupSupport:
    problems = []
    found: dict[str, Path | None] = {}
    for controller in ("memory", "pids"):
        mount = _mount_point("cgroup", controller)
        own = _own_path(controller)
        if mount is None or own is None:
            found[controller] = None
            problems.append(f"{controller} limit per sandbox: no cgroup hierarchy for it here")
            continue
        base = mount / own.lstrip("/")
        try:
            trial = base / (_PREFIX + "probe-" + secrets.token_hex(4))
            trial.mkdir()
            trial.rmdir()
        except OSError as exc:
            found[controller] = None
            problems.append(
                f"{controller} limit per sandbox: cannot create groups in {base} ({exc})"
            )
            continue
        found[controller] = base
    version = 1 if any(found.values()) else None
    return CgroupSupport(version, found["memory"], found["pids"], tuple(problems))


def _mount_point(fstype: str, option: str | None = None) -> Path | None:
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        kind, super_options = fields[dash + 1], fields[dash + 3].split(",")
        if kind == fstype and (option is None or option in super_options):
            return Path(fields[4])
    return None


def _own_path(controller: str) -> str | None:
    """This process's group in the hierarchy of `controller` ("" for v2)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers.split(",") == [controller] or (
            controller and controller in controllers.split(",")
        ):
            return path
    return None


def _procs(path: Path) -> list[int]:
    try:
        return [int(pid) for pid in (path / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _read_words(path: Path) -> set[str]:
    try:
        return set(path.read_text().split())
    except OSError:
        return set()


def _write(path: Path, value: int) -> None:
    path.write_text(str(value))


def _write_if_present(path: Path, value: int) -> None:
    if path.exists():
        _write(path, value)
