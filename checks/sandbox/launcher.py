"""The last step before untrusted code runs, executed inside the sandbox's namespaces.

Run as a script (`python -S -I launcher.py SPEC`), standard library only, by either
backend. It forks the command and waits for it; the child applies the resource limits
with `setrlimit`, switches to the sandbox's own unprivileged uid/gid when the worker is
root, sets no-new-privileges, enters the working directory and execs the command. Doing
this in a launcher rather than in a `preexec_fn` keeps Python code out of the forked child
of a multi-threaded worker (CPython documents `preexec_fn` as deadlock-prone with threads)
and lets the privilege drop happen after the mount setup that needs root.

Only the `unshare` fallback asks it to mount (`SPEC["mounts"]`): fresh tmpfs over the
host's shared writable places and over directories the sandbox user cannot traverse,
with just the needed paths bound back. bubblewrap builds its filesystem itself.

It reports the command's exit status and CPU time on `SPEC["status_fd"]`; exit status 125
means the launcher itself failed (like `env`'s 125). The CPU time is the command's and that
of every process it waited for: the sandbox's processes are never reaped by the worker
(the namespace ends with a kill), so nothing else can count them.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys
from typing import Any, NoReturn

LAUNCH_FAILED = 125

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
    for mount in spec.get("mounts", []):
        _cover(libc, mount["target"], mount["options"], mount["binds"])
    child = os.fork()
    if child == 0:
        _exec_confined(libc, spec)
    while True:
        # As a namespace's first process we also reap the orphans the command leaves.
        pid, status = os.wait()
        if pid == child:
            break
    returncode = os.waitstatus_to_exitcode(status)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = {"returncode": returncode, "cpu_seconds": usage.ru_utime + usage.ru_stime}
    os.write(status_fd, json.dumps(report).encode())
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
    # The environment is the worker's minimal one; bwrap and sh add PWD, which would
    # name the worker's own folders.
    env = {name: value for name, value in os.environ.items() if name != "PWD"}
    os.execvpe(argv[0], argv, env)


def _cover(libc: ctypes.CDLL, target: str, options: str, binds: list[tuple[str, bool]]) -> None:
    """Mount a fresh tmpfs on `target`, then bind the needed paths under it back."""
    if not os.path.isdir(target):
        return
    # Hold the directories open: once the tmpfs covers `target`, their paths lead nowhere,
    # but /proc/self/fd/N still names them as a bind source.
    fds = [os.open(path, os.O_PATH | os.O_DIRECTORY) for path, _ in binds]
    try:
        _mount(libc, "tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NODEV, options)
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
        os._exit(LAUNCH_FAILED)


if __name__ == "__main__":
    _main(sys.argv[1:])
