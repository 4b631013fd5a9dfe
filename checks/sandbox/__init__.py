"""Run untrusted generated code: private filesystem, no network, no secrets, bounded.

    with sandbox(limits) as session:
        write the run's files under session.workspace
        result = session.run(["python", "-m", "pytest"], timeout_seconds=120)

The strongest backend that works on the worker is probed once (`sandbox_backend`);
`sandbox_report` says at worker start which one runs and which limits cannot be applied.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator

from checks.sandbox import cgroups
from checks.sandbox.backends import SandboxBackend, SandboxUnavailable, candidates
from checks.sandbox.limits import MiB, SandboxLimits, SandboxResult
from checks.sandbox.session import (
    SANDBOX_UID_BASE,
    SANDBOX_UID_SPAN,
    SandboxPathError,
    SandboxSession,
    minimal_env,
    open_session,
)

__all__ = [
    "SANDBOX_UID_BASE",
    "SANDBOX_UID_SPAN",
    "MiB",
    "SandboxBackend",
    "SandboxLimits",
    "SandboxPathError",
    "SandboxResult",
    "SandboxSession",
    "SandboxUnavailable",
    "minimal_env",
    "sandbox",
    "sandbox_backend",
    "sandbox_report",
]

_PROBE_TIMEOUT_SECONDS = 30.0

_lock = threading.Lock()
_backends: dict[str, SandboxBackend] = {}


@contextlib.contextmanager
def sandbox(
    limits: SandboxLimits | None = None, *, backend: str = "auto"
) -> Iterator[SandboxSession]:
    """A new sandbox session with an empty workspace. Raises `SandboxUnavailable`."""
    with open_session(sandbox_backend(backend), cgroups.probe(), limits or SandboxLimits()) as s:
        yield s


def sandbox_backend(preference: str = "auto") -> SandboxBackend:
    """The strongest backend that works here (auto, bubblewrap or unshare); probed once."""
    with _lock:
        if preference not in _backends:
            _backends[preference] = _probe(preference)
        return _backends[preference]


def sandbox_report(preference: str = "auto") -> list[str]:
    """What a worker says once at start: the backend, and each limit it cannot apply."""
    try:
        backend = sandbox_backend(preference)
    except SandboxUnavailable as exc:
        return [f"sandbox: unavailable, generated code will not run: {exc}"]
    support = cgroups.probe()
    lines = [f"sandbox: {backend.description}; {support.describe()}"]
    if not backend.network_isolated:
        lines.append("sandbox limit not applied: network isolation (no usable namespaces)")
    if backend.name != "bubblewrap":
        lines.append(
            "sandbox limit not applied: private filesystem (bubblewrap is not installed); "
            "the sandbox sees the host's files its uid may read"
        )
    lines += [f"sandbox limit not applied: {problem}" for problem in support.problems]
    return lines


def _probe(preference: str) -> SandboxBackend:
    failures = []
    support = cgroups.probe()
    for backend in candidates(preference):
        try:
            with open_session(backend, support, SandboxLimits()) as session:
                result = session.run(
                    [sys.executable, "-c", "pass"],
                    timeout_seconds=_PROBE_TIMEOUT_SECONDS,
                    purpose="probe",
                )
        except (SandboxUnavailable, OSError) as exc:
            failures.append(f"{backend.description}: {exc}")
            continue
        if result.returncode == 0:
            return backend
        failures.append(f"{backend.description}: {result.stderr.strip() or result.returncode}")
    raise SandboxUnavailable("no way to sandbox commands here: " + "; ".join(failures))
