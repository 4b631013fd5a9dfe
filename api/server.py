"""How the API is served: uvicorn on h11, whose own refusals answer JSON like the app's.

Oversized headers are refused in two places, so either way the answer is a JSON 431:

- a request head that reaches the app whole is measured by `api.limits.RequestLimits`;
- a head still incomplete when it outgrows h11's buffer (`h11_max_incomplete_event_size`,
  set to the same limit) never reaches the app: h11 refuses it, and uvicorn would answer
  with a plain-text 400. `JsonErrorsH11Protocol` answers that refusal itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol

from core.infrastructure.settings import ApiSettings


class JsonErrorsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol; a request it cannot parse answers `{"detail": ...}`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # uvicorn writes a response's head and body separately: without TCP_NODELAY the
        # body waits for the client's delayed ACK of the head, 40 ms on Linux, on every
        # request of a keep-alive connection after its first.
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)

    def send_400_response(self, msg: str) -> None:
        # h11 keeps what it could not parse: more than its limit means the head was too long.
        unparsed = len(self.conn.trailing_data[0])
        limit = self.config.h11_max_incomplete_event_size
        if limit is not None and unparsed > limit:
            status = 431
            detail = f"the request line and headers are larger than {limit} bytes"
        else:
            status, detail = 400, f"not a valid HTTP/1.1 request: {msg}"
        body = json.dumps({"detail": detail}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=status, headers=headers, reason=STATUS_PHRASES[status]),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()


def server_config(app: Any, settings: ApiSettings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for the app; `options` are uvicorn's (host, port, ...)."""
    return uvicorn.Config(
        app,
        http=JsonErrorsH11Protocol,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        **options,
    )
