"""Size limits on every request, before any route reads it: a JSON 431 or 413.

A pure ASGI middleware rather than a check in the routes, so it holds for every route,
for bodies sent in chunks without a `Content-Length` (counted as they arrive) and for
routes that read the stream themselves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from `receive` when the body passes its limit. An `HTTPException`, so FastAPI
    answers it with the app's JSON error wherever a route happens to be reading."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


def head_size(scope: Scope) -> int:
    """The request line and header fields, about as the client sent them (what h11 counts)."""
    line = len(scope.get("method", "")) + len(scope.get("raw_path", b"")) + len(" ? HTTP/1.1\r\n")
    query = len(scope.get("query_string", b""))
    separators = len(": \r\n")
    return (
        line + query + sum(len(name) + len(value) + separators for name, value in scope["headers"])
    )


async def send_json_error(send: Send, status: int, detail: str) -> None:
    """The answer, with the connection kept open: the server drops the rest of the body
    (uvicorn does), so a client still sending it reads the answer, not a reset."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """Headers over `max_head_bytes` answer 431; bodies over their limit answer 413.

    `body_limits` maps a path prefix to its own limit (the codec's payloads are larger);
    every other path has `max_body_bytes`.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_head_bytes: int,
        body_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_head_bytes = max_head_bytes
        # Longest prefix first, so the most specific one wins.
        self.body_limits = sorted((body_limits or {}).items(), key=lambda kv: -len(kv[0]))

    def body_limit(self, path: str) -> int:
        for prefix, limit in self.body_limits:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        size = head_size(scope)
        if size > self.max_head_bytes:
            await send_json_error(
                send,
                431,
                f"the request line and headers are {size} bytes; "
                f"at most {self.max_head_bytes} are accepted",
            )
            return
        limit = self.body_limit(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await send_json_error(send, 413, BodyTooLarge(limit).detail)
            return
        await self._limited(scope, receive, send, limit)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:
            # Reached only when no handler inside answered it (a route reading the stream
            # outside FastAPI's body parsing, or a middleware further in).
            if started:
                raise
            await send_json_error(send, 413, exc.detail)


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
