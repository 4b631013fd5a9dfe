"""Run untrusted generated code with a wall clock, resource limits, no secrets and no network.

How one sandboxed command runs (`run_sandboxed`):

- The worker starts it in a new session with an environment holding only PATH, HOME,
  TMPDIR, LANG and PYTHONDONTWRITEBYTECODE, stdout and stderr going to files the sandbox
  cannot reopen, and a private HOME/TMPDIR that is removed afterwards.
- Where `unshare` works on this machine (probed once, then cached) the command runs in new
  network, PID and mount namespaces: no interface but a downed loopback, no view of the
  worker's processes, and killing the namespace's first process kills every process the
  code started, even ones that left the process group. Without root the namespaces come
  with a user namespace (`unshare -r`).
- Inside, a small launcher (this file run as a script, stdlib only) forks the command and
  waits for it; the child applies the resource limits with `setrlimit` and, when the
  worker is root, switches to a fresh unprivileged uid/gid, then execs the command. Doing
  this in a launcher rather than in a `preexec_fn` keeps Python code out of the forked
  child of a multi-threaded worker (CPython documents `preexec_fn` as deadlock-prone with
  threads), lets the privilege drop happen after the namespace setup that needs root, and
  applies RLIMIT_NPROC inside a user namespace, where it counts only the sandbox's own
  processes.
- RLIMIT_NPROC counts every process of a uid and root is exempt from it, so as root each
  run gets its own uid from a range no account uses: a fork bomb stops at the limit and
  never competes with the worker or with a concurrent sandbox.
- Directories the command needs but the sandbox uid cannot reach (say a Python installed
  under /root, mode 0700) are exposed inside the mount namespace: a small tmpfs is mounted
  over the blocking directory, hiding the rest of it, and only the needed directories are
  bind-mounted back (read-only for the interpreter).
- On the wall-clock deadline the worker kills the whole process group with SIGKILL (and
  does so after a normal exit too); as root it then kills whatever still runs under the
  run's uid and returns only when nothing does.

What it does not do: the sandbox user can still read world-readable files (the worker's
source, system files) and write to world-writable places such as /tmp, each file bounded by
RLIMIT_FSIZE but not the total; a cgroup or a container would bound memory and disk for the
whole run rather than per process.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

MiB = 1024 * 1024

SANDBOX_UID_BASE = 0x5A000000
"""Root runs each sandbox as a fresh uid (and gid) in [base, base + span): no account uses it."""
SANDBOX_UID_SPAN = 1 << 20

_LAUNCH_FAILED = 125
"""Exit status of the launcher when it could not set the sandbox up (like `env`'s 125)."""

_SETUP_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class SandboxLimits:
    """Per-process limits, except `processes` (per sandbox) and the output kept per stream."""

    cpu_seconds: int = 60
    memory_bytes: int = 2048 * MiB
    """RLIMIT_AS: address space, generous because threads reserve stacks and malloc arenas."""
    file_size_bytes: int = 64 * MiB
    processes: int = 128
    """RLIMIT_NPROC: processes and threads of the sandbox uid."""
    open_files: int = 512
    output_bytes: int = 64 * 1024
    """stdout and stderr each keep this much: the head and the tail, the middle elided."""

    def rlimits(self) -> list[tuple[int, int, int]]:
        """(resource, soft, hard) for `setrlimit`."""
        # The CPU hard limit sits a little above the soft one: SIGXCPU first, SIGKILL after.
        return [
            (resource.RLIMIT_CPU, self.cpu_seconds, self.cpu_seconds + 2),
            (resource.RLIMIT_AS, self.memory_bytes, self.memory_bytes),
            (resource.RLIMIT_FSIZE, self.file_size_bytes, self.file_size_bytes),
            (resource.RLIMIT_NPROC, self.processes, self.processes),
            (resource.RLIMIT_NOFILE, self.open_files, self.open_files),
            (resource.RLIMIT_CORE, 0, 0),
        ]


@dataclass(frozen=True)
class SandboxResult:
    returncode: int
    """Negative when a signal ended the command (as in `subprocess`)."""
    stdout: str
    stderr: str
    timed_out: bool
    limit_reason: str | None
    """Which limit ended the command, in words, e.g. "exceeded the 60 s wall-clock limit"."""
    network_isolated: bool
    isolation: str
    """How the command was isolated, in words, for reports."""
    duration_seconds: float

    @property
    def killed_by_limit(self) -> bool:
        return self.limit_reason is not None


@dataclass(frozen=True)
class SandboxMode:
    """One way of isolating a command that works on this machine."""

    prefix: tuple[str, ...]
    """The `unshare` command line in front of the launcher, or nothing."""
    network_isolated: bool
    private_mounts: bool
    """Runs in its own mount namespace, so the launcher may expose directories there."""
    description: str


class SandboxUnavailable(RuntimeError):
    """No way to run untrusted code safely here (e.g. root without usable namespaces)."""


def minimal_env(home: Path) -> dict[str, str]:
    """The whole environment of a sandboxed command: nothing of the worker's leaks in."""
    return {
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]
        ),
        "HOME": str(home),
        "TMPDIR": str(home),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def run_sandboxed(
    argv: Sequence[str],
    cwd: Path,
    *,
    timeout_seconds: float,
    limits: SandboxLimits | None = None,
    writable: Sequence[Path] = (),
) -> SandboxResult:
    """Run `argv` in `cwd` inside the sandbox and wait for it, at most `timeout_seconds`.

    `cwd` and the `writable` directories are handed to the sandbox user (their ownership
    changes when the worker is root); everything else is read-only to it or invisible.
    Blocks: call it from a thread (`asyncio.to_thread`). Raises `SandboxUnavailable`.
    """
    limits = limits or SandboxLimits()
    mode = sandbox_mode()
    return _run(mode, list(argv), cwd, timeout_seconds, limits, list(writable))


_mode_lock = threading.Lock()
_mode: SandboxMode | None = None


def sandbox_mode() -> SandboxMode:
    """The strongest isolation that works here; probed on first use, then cached."""
    global _mode
    with _mode_lock:
        if _mode is None:
            _mode = _probe()
        return _mode


def _candidate_modes() -> list[SandboxMode]:
    unshare = shutil.which("unshare")
    user = () if os.geteuid() == 0 else ("--map-root-user",)
    candidates = []
    if unshare:
        candidates += [
            SandboxMode(
                (unshare, *user, "--net", "--pid", "--fork", "--kill-child", "--mount-proc"),
                network_isolated=True,
                private_mounts=True,
                description="network, PID and mount namespaces",
            ),
            SandboxMode(
                (unshare, *user, "--net", "--mount"),
                network_isolated=True,
                private_mounts=True,
                description="network and mount namespaces",
            ),
        ]
    candidates.append(
        SandboxMode((), network_isolated=False, private_mounts=False, description="no namespaces")
    )
    return candidates


def _probe() -> SandboxMode:
    failures = []
    with tempfile.TemporaryDirectory(prefix="orch-sandbox-probe-") as tmp:
        for mode in _candidate_modes():
            try:
                result = _run(
                    mode,
                    [sys.executable, "-c", "pass"],
                    Path(tmp),
                    _SETUP_TIMEOUT_SECONDS,
                    SandboxLimits(),
                    [],
                )
            except SandboxUnavailable as exc:
                failures.append(f"{mode.description}: {exc}")
                continue
            if result.returncode == 0:
                return mode
            failures.append(f"{mode.description}: {result.stderr.strip() or result.returncode}")
    raise SandboxUnavailable("no way to sandbox commands here: " + "; ".join(failures))


# --- one run --------------------------------------------------------------------------


def _run(
    mode: SandboxMode,
    argv: list[str],
    cwd: Path,
    timeout_seconds: float,
    limits: SandboxLimits,
    writable: list[Path],
) -> SandboxResult:
    ids = _sandbox_ids()
    cwd = cwd.resolve()
    rw = [cwd, *(p.resolve() for p in writable)]
    with _private_dir(ids) as private:
        home = private / "home"
        if ids is not None:
            for tree in rw:
                _chown_tree(tree, *ids)
        exposures = _exposures(
            [(p, True) for p in [home, *rw]] + [(p, False) for p in _interpreter_dirs()], ids
        )
        if exposures and not mode.private_mounts:
            # Mounting outside a private mount namespace would change the worker's own view.
            hidden = ", ".join(e["hide"] for e in exposures)
            raise SandboxUnavailable(
                f"the sandbox user cannot reach {hidden} and there is no mount namespace"
            )
        spec = {"cwd": str(cwd), "ids": ids, "rlimits": limits.rlimits(), "expose": exposures}
        started = time.monotonic()
        returncode, exited = _spawn_and_wait(
            [*mode.prefix, sys.executable, "-S", "-I", str(Path(__file__).resolve())],
            {**spec, "argv": argv},
            private,
            started + timeout_seconds,
        )
        duration = time.monotonic() - started
        if ids is not None:
            _kill_leftovers(ids[0], time.monotonic() + _SETUP_TIMEOUT_SECONDS)
        return SandboxResult(
            returncode=returncode,
            stdout=_read_capped(private / "stdout", limits.output_bytes),
            stderr=_read_capped(private / "stderr", limits.output_bytes),
            timed_out=not exited,
            limit_reason=_limit_reason(returncode, not exited, timeout_seconds, limits),
            network_isolated=mode.network_isolated,
            isolation=mode.description
            + (f", uid {ids[0]}" if ids is not None else ", the worker's own uid"),
            duration_seconds=duration,
        )


def _spawn_and_wait(
    launcher: list[str], spec: dict[str, Any], private: Path, deadline: float
) -> tuple[int, bool]:
    """Start the launcher with `spec`; (the command's exit status, whether it exited in time).

    stdout and stderr go to files in `private`, which the sandbox user cannot open by name.
    """
    status_read, status_write = os.pipe()
    try:
        with (private / "stdout").open("wb") as out, (private / "stderr").open("wb") as err:
            try:
                proc = subprocess.Popen(
                    [*launcher, json.dumps({**spec, "status_fd": status_write})],
                    cwd=private,
                    env=minimal_env(private / "home"),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    pass_fds=(status_write,),
                )
            finally:
                os.close(status_write)
            exited = _wait_without_reaping(proc.pid, deadline)
            # Kill the group even after a normal exit: nothing the code started may outlive it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            outer_returncode = proc.wait()
        return _reported_returncode(status_read, outer_returncode), exited
    finally:
        os.close(status_read)


def _kill_leftovers(uid: int, deadline: float) -> None:
    """Kill whatever still runs as the run's own uid and wait until nothing does.

    Killing the group (and the PID namespace) already killed everything; this makes it
    certain and synchronous: the kernel tears a namespace down after its first process is
    reaped, and without a PID namespace a process could have left the group with setsid.
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


def _sandbox_ids() -> tuple[int, int] | None:
    """A fresh uid/gid when we are root (and can switch); None: run as ourselves."""
    if os.geteuid() != 0:
        return None
    uid = SANDBOX_UID_BASE + secrets.randbelow(SANDBOX_UID_SPAN)
    return uid, uid


@contextlib.contextmanager
def _private_dir(ids: tuple[int, int] | None) -> Iterator[Path]:
    """Root-owned and traversable (0711); `home` inside belongs to the sandbox user."""
    path = Path(tempfile.mkdtemp(prefix="orch-sandbox-"))
    try:
        path.chmod(0o711)
        home = path / "home"
        home.mkdir(mode=0o700)
        if ids is not None:
            os.chown(home, *ids)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def _interpreter_dirs() -> list[Path]:
    """What the sandbox needs to start this venv's Python: the venv and the base install."""
    exe = Path(sys.executable).resolve()
    return [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), exe.parent]


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


def _reported_returncode(status_read: int, fallback: int) -> int:
    """The command's own exit status as the launcher saw it; `fallback` if it never said."""
    os.set_blocking(status_read, False)
    try:
        data = os.read(status_read, 4096)
    except BlockingIOError:
        return fallback
    try:
        return int(json.loads(data)["returncode"])
    except (ValueError, KeyError, TypeError):
        return fallback


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


def _limit_reason(
    returncode: int, timed_out: bool, timeout_seconds: float, limits: SandboxLimits
) -> str | None:
    if timed_out:
        return f"exceeded the {timeout_seconds:g} s wall-clock limit"
    if returncode == -signal.SIGXCPU:
        return f"exceeded the {limits.cpu_seconds} s CPU-time limit"
    if returncode == -signal.SIGKILL:
        return f"was killed (SIGKILL): the {limits.cpu_seconds} s CPU-time limit or out of memory"
    if returncode == -signal.SIGXFSZ:
        return f"exceeded the {limits.file_size_bytes // MiB} MiB file-size limit"
    return None


# --- exposing directories the sandbox user cannot reach -------------------------------


def _exposures(
    needed: list[tuple[Path, bool]], ids: tuple[int, int] | None
) -> list[dict[str, Any]]:
    """For each directory blocking the sandbox user: the needed paths to bind back under it."""
    if ids is None:
        return []
    plan: dict[Path, list[tuple[str, bool]]] = {}
    for path, writable in needed:
        blocker = _blocking_ancestor(path, *ids)
        if blocker is not None:
            plan.setdefault(blocker, []).append((str(path), writable))
    return [
        {"hide": str(blocker), "binds": _outermost(binds)}
        for blocker, binds in sorted(plan.items(), key=lambda item: len(item[0].parts))
    ]


def _outermost(binds: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """Drop paths inside another bound path that binding the outer one already brings along.

    Outer paths come first, so a writable path inside a read-only one is bound on top.
    """
    kept: list[tuple[str, bool]] = []
    for path, writable in sorted(set(binds), key=lambda b: (len(b[0]), not b[1])):
        covered = any(
            (path == k or path.startswith(k.rstrip("/") + "/")) and (k_rw or not writable)
            for k, k_rw in kept
        )
        if not covered:
            kept.append((path, writable))
    return kept


def _blocking_ancestor(path: Path, uid: int, gid: int) -> Path | None:
    """The outermost proper ancestor of `path` that uid/gid may not traverse, if any."""
    for ancestor in reversed(path.parents):
        info = ancestor.stat()
        if info.st_uid == uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return ancestor
    return None


# --- the launcher: runs inside the namespaces, before the untrusted command ------------

_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384
_PR_SET_NO_NEW_PRIVS = 38


def _launch(spec: dict[str, Any]) -> NoReturn:
    """Set up the mounts, then run the command as a child and report how it ended.

    Staying the parent matters in a PID namespace: its first process ignores every signal
    it has no handler for, SIGXCPU and SIGXFSZ included, so the command must not be it.
    """
    status_fd = spec["status_fd"]
    os.set_inheritable(status_fd, False)
    libc = ctypes.CDLL(None, use_errno=True)
    for exposure in spec["expose"]:
        _expose(libc, exposure["hide"], [(path, bool(rw)) for path, rw in exposure["binds"]])
    child = os.fork()
    if child == 0:
        _exec_confined(libc, spec)
    while True:
        # As a namespace's first process we also reap the orphans the command leaves.
        pid, status = os.wait()
        if pid == child:
            break
    returncode = os.waitstatus_to_exitcode(status)
    os.write(status_fd, json.dumps({"returncode": returncode}).encode())
    os._exit(returncode if returncode >= 0 else 128 - returncode)


def _exec_confined(libc: ctypes.CDLL, spec: dict[str, Any]) -> NoReturn:
    for which, soft, hard in spec["rlimits"]:
        # Never above the current hard limit: raising it fails inside a user namespace.
        current = resource.getrlimit(which)[1]
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(which, (soft, hard))
    if spec["ids"] is not None:
        uid, gid = spec["ids"]
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    os.chdir(spec["cwd"])
    argv = spec["argv"]
    os.execvpe(argv[0], argv, os.environ)


def _expose(libc: ctypes.CDLL, hide: str, binds: list[tuple[str, bool]]) -> None:
    # Hold the directories open: once the tmpfs covers `hide`, their paths lead nowhere,
    # but /proc/self/fd/N still names them as a bind source.
    fds = [os.open(path, os.O_PATH | os.O_DIRECTORY) for path, _ in binds]
    try:
        _mount(libc, "tmpfs", hide, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=1m")
        for fd, (path, writable) in zip(fds, binds, strict=True):
            os.makedirs(path, mode=0o755, exist_ok=True)
            _mount(libc, f"/proc/self/fd/{fd}", path, None, _MS_BIND | _MS_REC, None)
            if not writable:
                flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV
                _mount(libc, None, path, None, flags, None)
    finally:
        for fd in fds:
            os.close(fd)


def _mount(
    libc: ctypes.CDLL,
    source: str | None,
    target: str,
    fstype: str | None,
    flags: int,
    data: str | None,
) -> None:
    def c(text: str | None) -> bytes | None:
        return None if text is None else os.fsencode(text)

    if libc.mount(c(source), c(target), c(fstype), ctypes.c_ulong(flags), c(data)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} on {target}: {os.strerror(errno)}")


def _main(args: list[str]) -> NoReturn:
    try:
        _launch(json.loads(args[0]))
    except Exception as exc:
        print(f"sandbox launcher: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(_LAUNCH_FAILED)


if __name__ == "__main__":
    _main(sys.argv[1:])
