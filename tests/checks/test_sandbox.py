"""The sandbox itself, on each backend this machine has: limits, cleanup, identity, paths."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from checks.sandbox import (
    SANDBOX_UID_BASE,
    SANDBOX_UID_SPAN,
    MiB,
    SandboxLimits,
    SandboxPathError,
    SandboxSession,
    sandbox,
    sandbox_backend,
    sandbox_report,
)
from core.infrastructure.metrics import REGISTRY

BACKENDS = ["bubblewrap", "unshare"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    # CI installs bubblewrap (.ci/run); the fallback is there wherever util-linux is.
    assert sandbox_backend(request.param).name == request.param
    return str(request.param)


@pytest.fixture
def session(backend: str) -> Iterator[SandboxSession]:
    with sandbox(backend=backend) as opened:
        yield opened


def python(session: SandboxSession, code: str, timeout: float = 30, **limits: int) -> str:
    result = session.run([sys.executable, "-c", code], timeout_seconds=timeout)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_wall_clock_limit_kills_the_command(session: SandboxSession) -> None:
    result = session.run(["sleep", "60"], timeout_seconds=1)

    assert result.timed_out and result.killed_by_limit
    assert result.limit_reason == "exceeded the 1 s wall-clock limit"
    assert result.duration_seconds < 5


def test_the_cpu_time_of_a_command_and_its_children_is_measured(session: SandboxSession) -> None:
    before = _sandbox_cpu_observed()
    burn = f"{sys.executable} -c 'import time; end = time.process_time() + 0.3\nwhile time.process_time() < end: pass'"
    busy = session.run(["sh", "-c", f"{burn} & {burn} & wait"], timeout_seconds=30)
    idle = session.run(["sleep", "0.4"], timeout_seconds=30)
    killed = session.run(["sleep", "60"], timeout_seconds=0.5)

    assert busy.returncode == 0, busy.stderr
    assert busy.cpu_seconds is not None and 0.6 <= busy.cpu_seconds < 2.0
    assert idle.cpu_seconds is not None and idle.cpu_seconds < 0.2 <= idle.duration_seconds
    assert killed.timed_out and killed.cpu_seconds is None
    count, total = _sandbox_cpu_observed()
    assert count == before[0] + 2
    assert total - before[1] == pytest.approx(busy.cpu_seconds + idle.cpu_seconds)


def _sandbox_cpu_observed() -> tuple[float, float]:
    """The worker's `orchestrator_sandbox_cpu_seconds` for agents' commands (what `run`
    counts by default): (count, sum) so far."""
    labels = {"purpose": "command"}
    count = REGISTRY.get_sample_value("orchestrator_sandbox_cpu_seconds_count", labels)
    total = REGISTRY.get_sample_value("orchestrator_sandbox_cpu_seconds_sum", labels)
    return count or 0.0, total or 0.0


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_the_cpu_limit_stops_a_busy_loop(backend_name: str) -> None:
    with sandbox(SandboxLimits(cpu_seconds=1), backend=backend_name) as session:
        result = session.run([sys.executable, "-c", "while True: pass"], timeout_seconds=20)

    assert not result.timed_out
    assert result.limit_reason == "exceeded the 1 s CPU-time limit"


def test_the_environment_holds_no_worker_secrets(
    session: SandboxSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_TEST_SECRET", "s3cr3t")
    out = python(session, "import os; print(os.environ)")

    assert "s3cr3t" not in out
    assert "PYTHONDONTWRITEBYTECODE" in out


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_the_file_size_limit_leaves_nothing_big_on_disk(backend_name: str) -> None:
    with sandbox(SandboxLimits(file_size_bytes=8 * MiB), backend=backend_name) as session:
        code = "open('big.bin', 'wb').write(bytes(1 << 30))"
        result = session.run([sys.executable, "-c", code], timeout_seconds=30)

        assert result.returncode != 0 and "File too large" in result.stderr
        assert (session.workspace / "big.bin").stat().st_size <= 8 * MiB


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_output_is_capped(backend_name: str) -> None:
    with sandbox(SandboxLimits(output_bytes=1000), backend=backend_name) as session:
        result = session.run(
            [sys.executable, "-c", "print('a' * 100_000 + 'END')"], timeout_seconds=30
        )

    assert len(result.stdout) < 1100
    assert result.stdout.startswith("aaa") and result.stdout.rstrip().endswith("END")
    assert "bytes elided" in result.stdout


def test_processes_that_leave_the_group_die_with_the_sandbox(session: SandboxSession) -> None:
    marker = "299.123"
    result = session.run(["sh", "-c", f"setsid sleep {marker} & echo started"], timeout_seconds=30)

    assert result.stdout.strip() == "started"
    assert not [
        p for p in Path("/proc").iterdir() if p.name.isdigit() and marker.encode() in _cmdline(p)
    ]


def _cmdline(process: Path) -> bytes:
    try:
        return (process / "cmdline").read_bytes()
    except OSError:
        return b""


def test_the_sandbox_runs_as_another_user_when_we_are_root(session: SandboxSession) -> None:
    uid = int(python(session, "import os; print(os.getuid())"))

    if os.geteuid() == 0:
        assert SANDBOX_UID_BASE <= uid < SANDBOX_UID_BASE + SANDBOX_UID_SPAN
        assert session.workspace.stat().st_uid == uid
    else:
        assert uid == os.geteuid()


def test_the_tmp_places_are_fresh_private_and_bounded(session: SandboxSession) -> None:
    marker = Path("/tmp") / f"orch-host-marker-{os.getpid()}"
    marker.write_text("host")
    try:
        code = (
            "import os, shutil\n"
            f"print(os.path.exists({str(marker)!r}))\n"
            "for place in ('/tmp', '/var/tmp', '/dev/shm', '/run'):\n"
            "    print(place, shutil.disk_usage(place).total)\n"
        )
        lines = python(session, code).splitlines()
    finally:
        marker.unlink()

    assert lines[0] == "False"  # the host's /tmp is not the sandbox's
    sizes = dict(line.split() for line in lines[1:])
    assert set(sizes) == {"/tmp", "/var/tmp", "/dev/shm", "/run"}
    assert all(int(size) <= SandboxLimits().tmpfs_bytes for size in sizes.values())


def test_bubblewrap_shows_nothing_of_the_host_but_the_system_and_the_interpreter() -> None:
    with sandbox(backend="bubblewrap") as session:
        listing = python(session, "import os; print(sorted(os.listdir('/')))")
        project = python(session, f"import os; print(os.path.exists({str(Path.cwd())!r}))")
        data = python(session, f"import os; print(os.path.exists({str(Path.home())!r} + '/.ssh'))")

    assert "home" not in listing and "srv" not in listing and "opt" not in listing
    # The worker's checkout (and so its data directory) is not there, only the venv.
    assert project.strip() == ("True" if Path(sys.prefix).is_relative_to(Path.cwd()) else "False")
    assert data.strip() == "False"


def test_a_working_directory_outside_the_workspace_is_refused(session: SandboxSession) -> None:
    (session.workspace / "link").symlink_to("/etc")

    with pytest.raises(SandboxPathError, match="outside the sandbox's workspace"):
        session.run(["true"], cwd=session.workspace / "link", timeout_seconds=5)


def test_sessions_are_private_to_their_run() -> None:
    with sandbox() as first, sandbox() as second:
        (first.workspace / "secret.txt").write_text("first run's file")
        result = second.run(["cat", str(first.workspace / "secret.txt")], timeout_seconds=10)

        assert result.returncode != 0 and "first run's file" not in result.stdout
        assert first.root.stat().st_mode & 0o777 == 0o711
        assert first.workspace.stat().st_mode & 0o777 == 0o700


def test_the_worker_start_report_names_the_backend_and_the_limits_it_cannot_apply() -> None:
    [first, *rest] = sandbox_report("bubblewrap")
    assert first.startswith("sandbox: bubblewrap: private filesystem")
    assert all(line.startswith("sandbox limit not applied: ") for line in rest)

    fallback = sandbox_report("unshare")
    assert any("private filesystem (bubblewrap is not installed)" in line for line in fallback)
