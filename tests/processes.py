"""The `orchestrator` command in real processes, as users and operators start it.

`cli()` runs one command to its end; `orchestrator_process()` keeps a server (`api`,
`worker`) running for a `with` block; `until_ready()` waits for one to answer. A process
never inherits our settings from whoever runs the suite: it gets what its test gives it,
an embedded stack of its own (`own_stack()`) or the test's Temporal and database
(`joining()`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from core.infrastructure.local_stack import free_port

ORCHESTRATOR = str(Path(sys.executable).parent / "orchestrator")
REPO = Path(__file__).resolve().parent.parent

# Our settings and the variables the SDKs read by themselves (ANTHROPIC_BASE_URL, OTEL_*).
OUR_SETTINGS = (
    "ANTHROPIC_",
    "OPENAI_",
    "LLM_",
    "JWT_",
    "OTEL_",
    "LOG_",
    "RATE_LIMIT",
    "DATABASE_URL",
    "TEMPORAL_",
    "ORCHESTRATOR_",
)


def clean_environ(settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without our settings, then `settings`."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(OUR_SETTINGS)}
    return {**inherited, **(settings or {})}


def own_stack(data_dir: Path) -> dict[str, str]:
    """An embedded stack of its own: a data directory and free ports, never another test's."""
    return {
        "ORCHESTRATOR_DATA_DIR": str(data_dir),
        "ORCHESTRATOR_TEMPORAL_PORT": str(free_port()),
        "ORCHESTRATOR_UI_PORT": str(free_port()),
    }


def joining(
    temporal_address: str, namespace: str, database_url: str, data_dir: Path, **settings: str
) -> dict[str, str]:
    """The environment of a process on the test's Temporal namespace and database, with the
    offline model unless `settings` say otherwise."""
    return clean_environ(
        {
            "ORCHESTRATOR_DATA_DIR": str(data_dir),
            "TEMPORAL_ADDRESS": temporal_address,
            "TEMPORAL_NAMESPACE": namespace,
            "DATABASE_URL": database_url,
            "LLM_PROVIDER": "offline",
            # This checkout's code, whatever packages the editable install mapped.
            "PYTHONPATH": str(REPO),
            **settings,
        }
    )


def cli(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """`orchestrator <args>` run to its end, with `env` on top of `clean_environ()`."""
    return subprocess.run(
        [ORCHESTRATOR, *args],
        capture_output=True,
        text=True,
        env=clean_environ(env),
        cwd=cwd,
        timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """A failed command said why in one line on stderr, naming each fragment; that line."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def shell_line(
    line: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """One command line as a user pastes it into bash: with this environment's `orchestrator`
    and `temporal` on the PATH, `env` on top of `clean_environ()`."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(
        ["bash", "-c", line],
        capture_output=True,
        text=True,
        env={**clean_environ(env), "PATH": path},
        timeout=timeout,
    )


@contextmanager
def orchestrator_process(
    args: list[str],
    env: Mapping[str, str],
    stdout: Path,
    stderr: Path | None = None,
    *,
    stop: signal.Signals = signal.SIGINT,
) -> Iterator[subprocess.Popen[bytes]]:
    """`orchestrator <args>` for the `with` block, its output appended to `stdout` (and
    `stderr`, else the same file). On leaving, one still running gets `stop` (SIGINT is
    Ctrl-C) and a minute to end, then SIGKILL."""
    with ExitStack() as files:
        out = files.enter_context(stdout.open("ab"))
        err = files.enter_context(stderr.open("ab")) if stderr else subprocess.STDOUT
        child = subprocess.Popen([ORCHESTRATOR, *args], env=dict(env), stdout=out, stderr=err)
        try:
            yield child
        finally:
            if child.poll() is None:
                child.send_signal(stop)
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=30)


async def until_ready(
    url: str, ready: Callable[[str], bool] = lambda _: True, timeout: float = 60
) -> str:
    """The body `url` answers with 200 once `ready` holds for it: a process started before
    listens only a while later, and an exporter may lag behind what it exports."""
    deadline = time.monotonic() + timeout
    last = "nothing: not listening"
    async with httpx.AsyncClient(timeout=10) as http:
        while True:
            try:
                response = await http.get(url)
                last = f"{response.status_code}: {response.text[-1500:]}"
                if response.status_code == 200 and ready(response.text):
                    return response.text
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} not ready within {timeout}s; last answer {last}")
            await asyncio.sleep(0.2)
