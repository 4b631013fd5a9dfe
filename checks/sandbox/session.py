"""A sandbox session: one run's private workspace and the identity that runs code in it.

How a command runs (`SandboxSession.run`):

- The session's root is a fresh directory only the worker may list (0711). Inside it the
  workspace, the output folder and HOME belong to the session's own uid/gid, drawn from a
  range no account uses when the worker is root; another session cannot enter them.
- Files are handed to that uid once, before any untrusted code ran, and without following
  symlinks. Nothing is chowned after code ran, so a symlink planted by generated code is
  never followed by the worker. The working directory is resolved and must lie inside the
  workspace.
- The backend (checks/sandbox/backends.py) builds the namespaces and the filesystem the
  code sees; the launcher (checks/sandbox/launcher.py) applies the rlimits, drops to the
  session's uid and execs the command.
- A cgroup per command (checks/sandbox/cgroups.py) bounds the memory and the processes
  of all of the command's processes together; a shell gate holds the command until the
  worker has put it in the group, so nothing it forks escapes the limits.
- On the wall-clock deadline, and after a normal exit too, the worker kills the process
  group, the cgroup and whatever still runs as the session's uid, and returns only when
  nothing does.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from checks.sandbox.backends import Layout, SandboxBackend, interpreter_dirs
from checks.sandbox.cgroups import CgroupSupport, SandboxCgroup
from checks.sandbox.limits import SandboxLimits, SandboxResult, limit_reason
from core.infrastructure.metrics import record_sandbox_run

SANDBOX_UID_BASE = 0x5A000000
"""Root runs each session as a fresh uid (and gid) in [base, base + span): no account uses it."""
SANDBOX_UID_SPAN = 1 << 20

_SETUP_TIMEOUT_SECONDS = 30.0

_GATE = 'read -r go || exit 125; exec </dev/null; exec "$@"'
"""Waits (on stdin) until the worker put this process in the sandbox's cgroup, then becomes
the sandbox with stdin from /dev/null."""


SandboxPurpose = Literal["command", "tests", "test_command", "probe"]
"""What a sandboxed run is for: an agent's command, the pytest check, a repository's own
test command (a check too), the worker's probe of its sandbox backend."""


class SandboxPathError(ValueError):
    """A path handed to the sandbox leads outside the session's workspace."""


def minimal_env(home: Path, tmp: Path | None = None) -> dict[str, str]:
    """The whole environment of a sandboxed command: nothing of the worker's leaks in."""
    return {
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]
        ),
        "HOME": str(home),
        "TMPDIR": str(tmp or home),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


class SandboxSession:
    """A private workspace, and `run` to execute commands in it inside the sandbox."""

    def __init__(
        self,
        root: Path,
        backend: SandboxBackend,
        cgroups: CgroupSupport,
        limits: SandboxLimits,
        ids: tuple[int, int] | None,
    ) -> None:
        self.root = root
        self.backend = backend
        self.cgroups = cgroups
        self.limits = limits
        self.ids = ids
        self.workspace = root / "workspace"
        """The run's files: read-write for the sandbox."""
        self.output = root / "output"
        """Where commands write reports for the worker: read-write for the sandbox."""
        self.home = root / "home"
        self._private = root / "private"
        """stdout/stderr files: the sandbox never sees this folder."""
        self._handed_over = False

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        timeout_seconds: float,
        env: Mapping[str, str] | None = None,
        purpose: SandboxPurpose = "command",
    ) -> SandboxResult:
        """Run `argv` in `cwd` (default: the workspace) and wait, at most `timeout_seconds`;
        `env` adds variables to the sandbox's minimal environment. `purpose` labels its CPU
        time in `orchestrator_sandbox_cpu_seconds`.

        Blocks: call it from a thread (`asyncio.to_thread`). Raises `SandboxPathError` when
        `cwd` resolves outside the workspace (generated code may have planted a symlink).
        """
        self._hand_over_once()
        workdir = self.inside(cwd or self.workspace)
        layout = Layout(
            writable=(self.workspace, self.output, self.home),
            readonly=interpreter_dirs(),
            ids=self.ids,
            limits=self.limits,
        )
        launch = self.backend.launch(layout)
        spec: dict[str, Any] = {
            "cwd": str(workdir),
            "ids": self.ids,
            "rlimits": self.limits.rlimits(),
            "mounts": launch.mounts,
            "argv": list(argv),
        }
        private_tmp = self.backend.name == "bubblewrap" or bool(launch.mounts)
        environment = {**minimal_env(self.home, Path("/tmp") if private_tmp else None)}
        environment.update(env or {})
        started = time.monotonic()
        ended = self._spawn_and_wait(
            [*launch.prefix, sys.executable, "-S", "-I", launch.launcher],
            spec,
            environment,
            started + timeout_seconds,
        )
        duration = time.monotonic() - started
        if ended.cpu_seconds is not None:
            record_sandbox_run(purpose, ended.cpu_seconds)
        identity = f", uid {self.ids[0]}" if self.ids is not None else ", the worker's own uid"
        return SandboxResult(
            returncode=ended.returncode,
            stdout=_read_capped(self._private / "stdout", self.limits.output_bytes),
            stderr=_read_capped(self._private / "stderr", self.limits.output_bytes),
            timed_out=not ended.exited,
            limit_reason=limit_reason(
                ended.returncode,
                timed_out=not ended.exited,
                out_of_memory=ended.out_of_memory,
                timeout_seconds=timeout_seconds,
                limits=self.limits,
            ),
            network_isolated=self.backend.network_isolated,
            isolation=f"{self.backend.description}; {self.cgroups.describe()}{identity}",
            duration_seconds=duration,
            cpu_seconds=ended.cpu_seconds,
        )

    def inside(self, path: Path) -> Path:
        """`path` resolved, refused unless it lies in the workspace or the output folder."""
        resolved = path.resolve(strict=True)
        for allowed in (self.workspace.resolve(), self.output.resolve()):
            if resolved == allowed or resolved.is_relative_to(allowed):
                return resolved
        raise SandboxPathError(f"{path} leads outside the sandbox's workspace (to {resolved})")

    def _hand_over_once(self) -> None:
        """Give the workspace to the session's uid: once, before any untrusted code ran."""
        if self._handed_over:
            return
        self._handed_over = True
        if self.ids is None:
            return
        for top in (self.workspace, self.output, self.home):
            _chown_tree(top, *self.ids)

    def _spawn_and_wait(
        self, launcher: list[str], spec: dict[str, Any], env: dict[str, str], deadline: float
    ) -> _Ended:
        status_read, status_write = os.pipe()
        gate_read, gate_write = os.pipe()
        cgroup = (
            SandboxCgroup.create(self.cgroups, self.limits)
            if self.cgroups.memory or self.cgroups.pids
            else None
        )
        try:
            out_path, err_path = self._private / "stdout", self._private / "stderr"
            with out_path.open("wb") as out, err_path.open("wb") as err:
                command = [*launcher, json.dumps({**spec, "status_fd": status_write})]
                try:
                    proc = subprocess.Popen(
                        ["/bin/sh", "-c", _GATE, "sh", *command],
                        cwd=self._private,
                        env=env,
                        stdin=gate_read,
                        stdout=out,
                        stderr=err,
                        start_new_session=True,
                        pass_fds=(status_write,),
                    )
                finally:
                    os.close(status_write)
                    os.close(gate_read)
                try:
                    if cgroup is not None:
                        cgroup.add(proc.pid)
                    os.write(gate_write, b"go\n")
                finally:
                    os.close(gate_write)
                exited = _wait_without_reaping(proc.pid, deadline)
                # Kill the group even after a normal exit: nothing the code started may
                # outlive it.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                outer_returncode = proc.wait()
            cleanup_deadline = time.monotonic() + _SETUP_TIMEOUT_SECONDS
            out_of_memory = False
            if cgroup is not None:
                cgroup.kill(cleanup_deadline)
                out_of_memory = cgroup.out_of_memory()
            if self.ids is not None:
                _kill_leftovers(self.ids[0], cleanup_deadline)
            returncode, cpu_seconds = _launcher_report(status_read, outer_returncode)
            return _Ended(returncode, exited, out_of_memory, cpu_seconds)
        finally:
            os.close(status_read)
            if cgroup is not None:
                cgroup.remove()


@contextlib.contextmanager
def open_session(
    backend: SandboxBackend,
    cgroups: CgroupSupport,
    limits: SandboxLimits,
    *,
    prefix: str = "orch-sandbox-",
) -> Iterator[SandboxSession]:
    """A new session with an empty workspace; everything of it is removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    ids = _sandbox_ids()
    session = SandboxSession(root, backend, cgroups, limits, ids)
    try:
        # Traversable but not listable: only who knows a folder's name may enter it, and
        # only the session's uid has the folders below.
        root.chmod(0o711)
        for folder in (session.workspace, session.output, session.home):
            folder.mkdir(mode=0o700)
        session._private.mkdir(mode=0o700)
        yield session
    finally:
        if ids is not None:
            _kill_leftovers(ids[0], time.monotonic() + _SETUP_TIMEOUT_SECONDS)
        shutil.rmtree(root, ignore_errors=True)


def _sandbox_ids() -> tuple[int, int] | None:
    """A fresh uid/gid when we are root (and can switch); None: run as ourselves."""
    if os.geteuid() != 0:
        return None
    uid = SANDBOX_UID_BASE + secrets.randbelow(SANDBOX_UID_SPAN)
    return uid, uid


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """chown every entry below `root` (inclusive) without ever following a symlink."""
    os.chown(root, uid, gid, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def _kill_leftovers(uid: int, deadline: float) -> None:
    """Kill whatever still runs as the session's uid and wait until nothing does.

    Killing the group, the cgroup and the PID namespace already killed everything; this
    makes it certain and synchronous: without a PID namespace or a cgroup a process could
    have left the group with setsid.
    """
    while live := _live_processes(uid):
        for pid in live:
            # A pidfd pins the process, so a recycled pid is never signalled by mistake.
            with contextlib.suppress(OSError):
                pidfd = os.pidfd_open(pid)
                try:
                    if _live_processes(uid, [pid]):
                        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                finally:
                    os.close(pidfd)
        if time.monotonic() > deadline:
            return
        time.sleep(0.01)


def _live_processes(uid: int, pids: Iterable[int] | None = None) -> list[int]:
    """Processes of `uid` that are not zombies yet."""
    if pids is None:
        pids = (int(entry) for entry in os.listdir("/proc") if entry.isdigit())
    live = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                status = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
            live.append(pid)
    return live


def _wait_without_reaping(pid: int, deadline: float) -> bool:
    """Wait until the process exits or the deadline passes; True when it exited.

    The process stays a zombie, so its pid, which names the process group, cannot be
    reused by an unrelated process before we kill the group.
    """
    delay = 0.001
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.05)


class _Ended(NamedTuple):
    returncode: int
    exited: bool
    """It exited before the deadline."""
    out_of_memory: bool
    cpu_seconds: float | None


def _launcher_report(status_read: int, fallback: int) -> tuple[int, float | None]:
    """The command's own exit status and CPU time as the launcher saw them; `fallback` and
    None if it never said (it was killed first)."""
    os.set_blocking(status_read, False)
    try:
        data = os.read(status_read, 4096)
    except BlockingIOError:
        return fallback, None
    try:
        report = json.loads(data)
        cpu = report.get("cpu_seconds")
        return int(report["returncode"]), float(cpu) if isinstance(cpu, (int, float)) else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return fallback, None


def _read_capped(path: Path, limit: int) -> str:
    size = path.stat().st_size
    with path.open("rb") as f:
        if size <= limit:
            data = f.read()
        else:
            head = f.read(limit // 2)
            f.seek(size - limit // 2)
            tail = f.read()
            data = (
                head + f"\n[... {size - len(head) - len(tail)} bytes elided ...]\n".encode() + tail
            )
    return data.decode("utf-8", errors="replace")
