"""How the API is served: uvicorn on our h11 protocol."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from api.app import create_app
from api.server import server_config
from cli.stack import listening_socket
from core.infrastructure.local_stack import free_port
from core.persistence.db import Database
from tests.api_harness import api_settings


async def test_accepted_connections_send_each_write_at_once(sqlite_db: Database) -> None:
    """TCP_NODELAY on every connection: a response's body, written after its head, would
    otherwise wait for the client's delayed ACK (40 ms a request on keep-alive). asyncio
    sets it only on sockets whose protocol number says TCP, which the socket
    `orchestrator api` listens on (`socket.create_server`) and its connections lack."""
    settings = api_settings()
    port = free_port()
    listening = listening_socket("127.0.0.1", port)
    server = uvicorn.Server(
        server_config(
            create_app(settings, db=sqlite_db),
            settings.api,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        [connection] = server.server_state.connections
        accepted = connection.transport.get_extra_info("socket")  # type: ignore[attr-defined]
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        writer.close()
    finally:
        server.should_exit = True
        await serving
        listening.close()
