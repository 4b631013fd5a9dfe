"""What a sandboxed command may use, and what came back from it."""

from __future__ import annotations

import resource
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.infrastructure.settings import SandboxSettings

MiB = 1024 * 1024


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one sandbox: per process (rlimits) and for the whole run (cgroup, tmpfs)."""

    cpu_seconds: int = 60
    memory_bytes: int = 2048 * MiB
    """RLIMIT_AS per process: generous because threads reserve stacks and malloc arenas."""
    file_size_bytes: int = 64 * MiB
    processes: int = 128
    """Processes and threads of the whole sandbox (cgroup pids.max and RLIMIT_NPROC)."""
    open_files: int = 512
    output_bytes: int = 64 * 1024
    """stdout and stderr each keep this much: the head and the tail, the middle elided."""
    run_memory_bytes: int = 1024 * MiB
    """Memory of every process of the sandbox together, tmpfs contents included (cgroup)."""
    tmpfs_bytes: int = 64 * MiB
    """Size of each fresh /tmp, /var/tmp, /dev/shm and /run the sandbox sees."""

    @classmethod
    def from_settings(cls, settings: SandboxSettings) -> SandboxLimits:
        """The operator's limits for the whole sandbox; per-process ones keep their defaults."""
        return cls(
            run_memory_bytes=settings.memory_mb * MiB,
            processes=settings.processes,
            tmpfs_bytes=settings.tmpfs_mb * MiB,
        )

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
    cpu_seconds: float | None = None
    """CPU time of the command and of every process it waited for (user + system); None
    when the launcher was killed before it could say."""

    @property
    def killed_by_limit(self) -> bool:
        return self.limit_reason is not None


def limit_reason(
    returncode: int,
    *,
    timed_out: bool,
    out_of_memory: bool,
    timeout_seconds: float,
    limits: SandboxLimits,
) -> str | None:
    """Which limit ended a command, in words; None when it ended on its own."""
    if timed_out:
        return f"exceeded the {timeout_seconds:g} s wall-clock limit"
    if out_of_memory:
        return f"exceeded the {limits.run_memory_bytes // MiB} MiB memory limit of the sandbox"
    if returncode == -signal.SIGXCPU:
        return f"exceeded the {limits.cpu_seconds} s CPU-time limit"
    if returncode == -signal.SIGKILL:
        return f"was killed (SIGKILL): the {limits.cpu_seconds} s CPU-time limit or out of memory"
    if returncode == -signal.SIGXFSZ:
        return f"exceeded the {limits.file_size_bytes // MiB} MiB file-size limit"
    return None
