"""The embedded stack's ports: one picked for a dev server is not handed to anyone else
before the server binds it, a dev server that cannot start says why, and one that starts
runs as `DEV_SERVER_SQLITE_PRAGMAS` and `DEV_SERVER_GOGC` say."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
from pathlib import Path

import pytest

from core.infrastructure.local_stack import DevServer, LocalStackError, free_port, is_listening
from core.infrastructure.settings import Settings

TIME_WAIT = "06"


def local_states(port: int) -> set[str]:
    """The states of this machine's IPv4 TCP sockets on local `port` (/proc/net/tcp)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return {
        fields[3] for fields in (row.split() for row in rows) if fields[1].endswith(f":{port:04X}")
    }


def test_a_free_port_waits_in_time_wait_where_bind_0_never_looks_yet_binds_by_number() -> None:
    port = free_port()

    # Linux skips a port with a TIME_WAIT socket when it picks one for bind(0): the window
    # between choosing the port and the server binding it is closed to other processes.
    assert local_states(port) == {TIME_WAIT}
    # A server binding it by number (SO_REUSEADDR, as Go, Rust and uvicorn set) still can.
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(1)
        assert "0A" in local_states(port)  # LISTEN


async def test_a_dev_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        ui_port = taken.getsockname()[1]
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            ORCHESTRATOR_DATA_DIR=str(tmp_path),
            ORCHESTRATOR_TEMPORAL_PORT=free_port(),
            ORCHESTRATOR_UI_PORT=ui_port,
        )
        (tmp_path / "temporal.log").write_text("an earlier start's last line\n")

        with pytest.raises(LocalStackError) as failed:
            await DevServer(settings).start()

    message = str(failed.value)
    assert message.startswith("the Temporal dev server exited with code 1: ")
    assert f"can't set UI port {ui_port}" in message
    assert "earlier start" not in message
    assert message.endswith(f"; see {tmp_path / 'temporal.log'}")


async def test_a_dev_server_we_start_logs_ahead_and_collects_garbage_sooner_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        ORCHESTRATOR_DATA_DIR=str(tmp_path),
        ORCHESTRATOR_TEMPORAL_PORT=free_port(),
        ORCHESTRATOR_UI_PORT=free_port(),
    )
    seen = []
    for gogc in (None, "200"):
        if gogc is not None:
            monkeypatch.setenv("GOGC", gogc)
        else:
            monkeypatch.delenv("GOGC", raising=False)
        server = DevServer(settings)
        await server.start()
        try:
            assert server.process is not None
            environ = Path(f"/proc/{server.process.pid}/environ").read_bytes().split(b"\0")
            seen.append([v.decode() for v in environ if v.startswith(b"GOGC=")])
            history = sqlite3.connect(f"file:{settings.temporal_db_file}?mode=ro", uri=True)
            with contextlib.closing(history):
                assert history.execute("pragma journal_mode").fetchone() == ("wal",)
        finally:
            server.stop()
        assert not is_listening("127.0.0.1", settings.temporal.temporal_port)

    assert seen == [["GOGC=50"], ["GOGC=200"]]
