"""The two ways a sandbox's namespaces and filesystem are built: bubblewrap, or `unshare`.

Each backend turns a `Layout` (what the sandbox may see and write) into the command line
in front of the launcher (checks/sandbox/launcher.py), plus the mounts the launcher must
make itself. bubblewrap (Debian `bubblewrap`) is preferred: the sandbox's root is an
empty tmpfs holding only what the layout names. `unshare` is the fallback where bwrap is
absent: the sandbox sees the host's filesystem, except fresh tmpfs over the shared
writable places and over directories its user cannot traverse.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from checks.sandbox.limits import SandboxLimits

SHARED_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run")
"""Host places every process can write to: the sandbox gets fresh, bounded ones instead."""

ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/hosts",
    "/etc/alternatives",
    "/etc/ssl/certs",
    "/etc/ca-certificates",
    "/etc/mime.types",
)
"""What of /etc programs need to start and resolve names: no secrets, read-only."""

TOP_LEVEL_SYSTEM = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

LAUNCHER = Path(__file__).with_name("launcher.py")
LAUNCHER_INSIDE = "/.sandbox-launcher.py"


@dataclass(frozen=True)
class Layout:
    """What one sandbox sees: everything else of the host is absent or hidden."""

    writable: tuple[Path, ...]
    """The run's workspace and the sandbox's output folder, read-write."""
    readonly: tuple[Path, ...]
    """The interpreter and its libraries."""
    ids: tuple[int, int] | None
    """The uid/gid the command runs as when the worker is root; None: the worker's own."""
    limits: SandboxLimits


@dataclass(frozen=True)
class Launch:
    prefix: list[str]
    launcher: str
    """Path of the launcher script as the sandbox sees it."""
    mounts: list[dict[str, Any]]
    """Mounts the launcher makes before the command (the fallback only)."""


class SandboxBackend(Protocol):
    name: str
    description: str
    network_isolated: bool

    def launch(self, layout: Layout) -> Launch: ...


class Bubblewrap:
    """bubblewrap: new network, PID, IPC, UTS and mount namespaces on an empty root."""

    name = "bubblewrap"
    network_isolated = True

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.description = "bubblewrap: private filesystem, network, PID and IPC namespaces"

    def launch(self, layout: Layout) -> Launch:
        tmpfs_size = str(layout.limits.tmpfs_bytes)
        args = [self.binary, "--die-with-parent"]
        args += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        args += ["--unshare-cgroup-try"]
        if os.geteuid() == 0:
            # No user namespace as root: the launcher keeps just enough to switch to the
            # sandbox's own uid, which clears every capability.
            args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            args += ["--unshare-user"]
        args += ["--ro-bind", "/usr", "/usr"]
        for top in TOP_LEVEL_SYSTEM:
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        for etc_file in ETC_FILES:
            args += ["--ro-bind-try", etc_file, etc_file]
        args += ["--proc", "/proc", "--dev", "/dev"]
        for place in SHARED_WRITABLE:
            args += ["--perms", "1777", "--size", tmpfs_size, "--tmpfs", place]
        binds = [(p, False) for p in layout.readonly] + [(p, True) for p in layout.writable]
        for ancestor in _ancestors([path for path, _ in binds]):
            # bubblewrap would create missing parents 0700, which the sandbox user could
            # not traverse.
            args += ["--perms", "0755", "--dir", str(ancestor)]
        for path, writable in binds:
            args += ["--bind" if writable else "--ro-bind", str(path), str(path)]
        args += ["--ro-bind", str(LAUNCHER), LAUNCHER_INSIDE, "--chdir", "/"]
        return Launch(args, LAUNCHER_INSIDE, [])


class Unshare:
    """util-linux `unshare` and the launcher's own mounts: the fallback without bwrap."""

    name = "unshare"

    def __init__(self, prefix: tuple[str, ...], *, network_isolated: bool, description: str):
        self.prefix = prefix
        self.network_isolated = network_isolated
        self.description = description
        self.private_mounts = bool(prefix)

    def launch(self, layout: Layout) -> Launch:
        needed = [(p, True) for p in layout.writable] + [(p, False) for p in layout.readonly]
        mounts = []
        if self.private_mounts:
            size = layout.limits.tmpfs_bytes
            for place in SHARED_WRITABLE:
                binds = [(str(p), rw) for p, rw in needed if Path(place) in p.parents]
                mounts.append(_cover(place, f"mode=1777,size={size}", binds))
        for blocker, binds in _blocked(needed, layout.ids).items():
            if not self.private_mounts:
                # Mounting outside a private mount namespace would change the worker's view.
                raise SandboxUnavailable(
                    f"the sandbox user cannot reach {blocker} and there is no mount namespace"
                )
            mounts.append(_cover(str(blocker), "mode=0755,size=1m", binds))
        return Launch([*self.prefix], str(LAUNCHER), mounts)


class SandboxUnavailable(RuntimeError):
    """No way to run untrusted code safely here (e.g. root without usable namespaces)."""


def candidates(preference: str) -> list[SandboxBackend]:
    """Backends to try, strongest first; `preference` is auto, bubblewrap or unshare."""
    found: list[SandboxBackend] = []
    bwrap = shutil.which("bwrap")
    if bwrap and preference in ("auto", "bubblewrap"):
        found.append(Bubblewrap(bwrap))
    unshare = shutil.which("unshare")
    user = () if os.geteuid() == 0 else ("--map-root-user",)
    if preference in ("auto", "unshare"):
        if unshare:
            found.append(
                Unshare(
                    (unshare, *user, "--net", "--pid", "--fork", "--kill-child", "--mount-proc"),
                    network_isolated=True,
                    description="unshare: network, PID and mount namespaces (host filesystem)",
                )
            )
            found.append(
                Unshare(
                    (unshare, *user, "--net", "--mount"),
                    network_isolated=True,
                    description="unshare: network and mount namespaces (host filesystem)",
                )
            )
        found.append(
            Unshare((), network_isolated=False, description="no namespaces (host filesystem)")
        )
    return found


def _cover(target: str, options: str, binds: list[tuple[str, bool]]) -> dict[str, Any]:
    return {"target": target, "options": options, "binds": _outermost(binds)}


def _ancestors(paths: list[Path]) -> list[Path]:
    """Parents of the bound paths that no other bind or system mount provides, outer first."""
    provided = {Path(p) for p in ("/", "/usr", *SHARED_WRITABLE)}
    seen: dict[Path, None] = {}
    for path in paths:
        for ancestor in reversed(path.parents):
            if ancestor in provided or any(ancestor.is_relative_to(p) for p in paths):
                continue
            if any(
                ancestor.is_relative_to(Path("/usr")) or ancestor == Path(s)
                for s in TOP_LEVEL_SYSTEM
            ):
                continue
            seen.setdefault(ancestor)
    return list(seen)


def _blocked(
    needed: list[tuple[Path, bool]], ids: tuple[int, int] | None
) -> dict[Path, list[tuple[str, bool]]]:
    """For each directory blocking the sandbox user: the needed paths to bind back under it."""
    if ids is None:
        return {}
    plan: dict[Path, list[tuple[str, bool]]] = {}
    for path, writable in needed:
        blocker = _blocking_ancestor(path, *ids)
        if blocker is not None and not any(
            blocker == Path(p) or Path(p) in blocker.parents for p in SHARED_WRITABLE
        ):
            plan.setdefault(blocker, []).append((str(path), writable))
    return dict(sorted(plan.items(), key=lambda item: len(item[0].parts)))


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


def interpreter_dirs() -> tuple[Path, ...]:
    """What the sandbox needs to start this venv's Python: the venv and the base install."""
    exe = Path(sys.executable).resolve()
    dirs = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), exe.parent}
    # Installs under /usr are already there, read-only, with the system.
    return tuple(sorted(d for d in dirs if not d.is_relative_to("/usr")))
