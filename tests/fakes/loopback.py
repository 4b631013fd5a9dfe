"""What every loopback fake shares: real HTTP on 127.0.0.1, served from a background thread.

``LoopbackServer`` is the plumbing (an ephemeral port, a daemon thread, ``with`` to start and
stop). ``LoopbackAPI`` builds a scripted JSON API on it: replies come from the script first
(FIFO, shared by all callers), then from ``responder``, then from the default conversation
(one tool turn, then done). Each wire format is a subclass: the Anthropic Messages API
(``messages_api``) and OpenAI-compatible chat completions (``openai_api``). The receivers of
notifications and webhooks (``receivers``) use the same server plumbing.

Stdlib only, so a fake also runs standalone for manual or cross-process use.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import secrets
import signal
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self, TypeAlias

__all__ = [
    "HOST",
    "TASK_TAG",
    "DropConnection",
    "DropMidResponse",
    "ErrorReply",
    "InvalidRequest",
    "Lifecycle",
    "LoopbackAPI",
    "LoopbackServer",
    "MessageReply",
    "RawReply",
    "RecordedRequest",
    "Reply",
    "ReplyLike",
    "Responder",
    "ServedReply",
    "api_key_of",
    "bearer",
    "estimate_tokens",
    "first_text",
    "new_id",
    "read_request",
    "role_of",
    "serve_until_stopped",
    "task_of",
    "turn_of",
]

HOST = "127.0.0.1"


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class MessageReply:
    """A successful response. ``body`` may be partial; the wire format fills in the rest."""

    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0


@dataclass(frozen=True)
class ErrorReply:
    """An error response with the wire format's JSON error envelope."""

    status: int
    message: str = "scripted error"
    error_type: str | None = None
    """Defaults to the type the real API uses for ``status``."""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    code: str | None = None
    """The error ``code`` for wire formats that have one (OpenAI's); the Messages API has none."""
    param: str | None = None
    """The request field at fault, for wire formats that name it (OpenAI's)."""


@dataclass(frozen=True)
class DropConnection:
    """Read the request, then close the socket without answering."""

    delay_seconds: float = 0.0


@dataclass(frozen=True)
class DropMidResponse:
    """Start a 200 answer, then hang up part-way through its body.

    The status line and headers (announcing the full ``content-length``) go out, then only
    ``fraction`` of the completed ``body``: the client has seen success begin and must
    still treat the call as failed.
    """

    body: Mapping[str, Any] = field(default_factory=dict)
    fraction: float = 0.5
    delay_seconds: float = 0.0


@dataclass(frozen=True)
class RawReply:
    """Arbitrary bytes, e.g. the HTML error page a proxy in front of the API might return."""

    status: int
    body: bytes
    content_type: str = "text/html"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0


Reply: TypeAlias = MessageReply | ErrorReply | DropConnection | DropMidResponse | RawReply
ReplyLike: TypeAlias = Reply | Mapping[str, Any]
Responder: TypeAlias = Callable[[dict[str, Any]], ReplyLike]
"""Called with the parsed request body; runs on a server thread, so keep it thread-safe."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it (including ones it rejected)."""

    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased header names."""
    body: Any
    """The parsed JSON body, or None if it was missing or not JSON."""
    received_at: float = 0.0
    """``time.monotonic()`` when it arrived, to measure the waits between retries."""

    @property
    def api_key(self) -> str | None:
        """The key from ``x-api-key`` or ``Authorization: Bearer``, whichever was sent."""
        return api_key_of(self.headers)

    @property
    def json(self) -> dict[str, Any]:
        """The body as a dict; fails loudly when the request had no JSON object body."""
        if not isinstance(self.body, dict):
            raise TypeError(f"request {self.method} {self.path} had no JSON object body")
        return self.body


@dataclass(frozen=True)
class ServedReply:
    """One answer the server sent in full."""

    request: Any
    """The parsed request body it answered."""
    status: int
    body: Any
    """The JSON body as sent (completed), or the raw bytes of a ``RawReply``."""


class InvalidRequest(Exception):
    """What the real API would answer a request it rejects (raised by ``_validate``)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reply = ErrorReply(status, message, error_type=error_type, code=code, param=param)


# --------------------------------------------------------------------------- reading requests


def new_id(prefix: str) -> str:
    return f"{prefix}_fake{secrets.token_hex(10)}"


def estimate_tokens(value: Any) -> int:
    # Roughly four characters a token, like English prose; deterministic so tests can assert.
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return max(1, len(text) // 4)


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of ``Authorization: Bearer``, if one was sent."""
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def api_key_of(headers: Mapping[str, str]) -> str | None:
    """The key from ``x-api-key`` or ``Authorization: Bearer``, whichever was sent."""
    # Older Anthropic SDKs send the key as x-api-key, newer ones (2.x) and OpenAI's as a bearer.
    if headers.get("x-api-key"):
        return headers["x-api-key"]
    return bearer(headers)


TASK_TAG = re.compile(r'<task id="([^"]+)" role="([^"]+)">')


def first_text(request: Mapping[str, Any]) -> str:
    """The text of the request's first message past any system message: the agent's task
    message, in either wire format."""
    messages = [m for m in request.get("messages") or [] if m.get("role") != "system"]
    content = (messages or [{}])[0].get("content") or ""
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in content if isinstance(b, dict))


def role_of(request: Mapping[str, Any]) -> str:
    """The agent role a request speaks for, from its task message; else "summarizer".

    With a prompt cache the platform sends one shared system prompt to every agent (so
    they share the cached prefix), so the role is read from the `<task id=.. role=..>` tag.
    """
    match = TASK_TAG.search(first_text(request))
    return match.group(2) if match else "summarizer"


def task_of(request: Mapping[str, Any]) -> str:
    match = TASK_TAG.search(first_text(request))
    return match.group(1) if match else ""


def turn_of(request: Mapping[str, Any]) -> int:
    """Which turn of its conversation a request is: one more than the answers it carries."""
    return 1 + sum(1 for message in request.get("messages") or [] if message["role"] == "assistant")


def read_request(handler: BaseHTTPRequestHandler) -> tuple[bytes, Any, dict[str, str]]:
    """The raw body, its JSON (None when empty or not JSON) and the lower-cased headers."""
    length = int(handler.headers.get("content-length") or 0)
    raw = handler.rfile.read(length) if length > 0 else b""
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = None
    return raw, body, {name.lower(): value for name, value in handler.headers.items()}


# --------------------------------------------------------------------------- the server


class Lifecycle(ABC):
    """Context-manager plumbing: ``with Fake() as fake`` starts it and always stops it."""

    @abstractmethod
    def start(self) -> Self: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _ThreadedServer(ThreadingHTTPServer):
    daemon_threads = True
    # Handler threads may sit on idle keep-alive connections; close() ends them instead.
    block_on_close = False
    # A whole goal fans out many agents at once; the stdlib default backlog of 5 would
    # reset connections under that burst, which the SDKs report as connection errors.
    request_queue_size = 256

    def __init__(
        self, owner: LoopbackServer, port: int, handler: type[BaseHTTPRequestHandler]
    ) -> None:
        super().__init__((HOST, port), handler)
        self.owner = owner


class LoopbackServer(Lifecycle):
    """``handler`` served on 127.0.0.1 from a daemon thread; ``port`` 0 picks a free one.

    Handlers reach this object as ``self.server.owner``. Thread-safe subclasses may be
    shared by tests, SDK clients and Temporal workers on any thread.
    """

    handler: ClassVar[type[BaseHTTPRequestHandler]]

    def __init__(self, *, port: int = 0) -> None:
        self._requested_port = port
        self._server: _ThreadedServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._server = _ThreadedServer(self, self._requested_port, self.handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        self._hang_up()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def _hang_up(self) -> None:
        """Between refusing new connections and closing the socket: end open ones."""

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return int(self._server.server_address[1])


def serve_until_stopped(server: LoopbackServer, announce: Callable[[], str]) -> None:
    """Serve until SIGINT or SIGTERM, printing ``announce()`` (where to connect) first."""
    stop = threading.Event()
    # Background jobs of a non-interactive shell ignore SIGINT, so SIGTERM stops us too.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with server:
        print(announce(), flush=True)
        while not stop.wait(0.5):
            pass


# --------------------------------------------------------------------------- scripted JSON APIs


class _APIHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive, as the real APIs offer; the SDKs pool connections.
    protocol_version = "HTTP/1.1"
    server: _ThreadedServer

    @property
    def api(self) -> LoopbackAPI:
        owner = self.server.owner
        assert isinstance(owner, LoopbackAPI)
        return owner

    def setup(self) -> None:
        super().setup()
        self.api._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.api._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; api.requests is the log

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _handle(self) -> None:
        _, body, headers = read_request(self)
        path = self.path.split("?", 1)[0]
        api = self.api
        api._record(RecordedRequest(self.command, path, headers, body, time.monotonic()))

        reply = api._reply_for(self.command, path, headers, body)
        if reply.delay_seconds and api._closing.wait(reply.delay_seconds):
            reply = DropConnection()
        if isinstance(reply, DropConnection):
            self._drop()
            return
        if isinstance(reply, DropMidResponse):
            payload = json.dumps(api._success_body(reply.body, body or {})).encode()
            cut = max(1, min(len(payload) - 1, int(len(payload) * reply.fraction)))
            # The full length is announced, so the client knows the body stopped short.
            self._send(200, payload, "application/json", {}, send_bytes=cut)
            self._drop()
            return
        # Each answer is recorded before it is sent: a client that has read it must find it
        # in api.replies, which it could not if the server thread recorded it afterwards.
        if isinstance(reply, MessageReply):
            completed = api._success_body(reply.body, body or {})
            api._served(ServedReply(body, 200, completed))
            self._send(200, json.dumps(completed).encode(), "application/json", reply.headers)
        elif isinstance(reply, ErrorReply):
            envelope = api._error_body(reply)
            api._served(ServedReply(body, reply.status, envelope))
            self._send(
                reply.status, json.dumps(envelope).encode(), "application/json", reply.headers
            )
        else:
            api._served(ServedReply(body, reply.status, reply.body))
            self._send(reply.status, reply.body, reply.content_type, reply.headers)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        headers: Mapping[str, str],
        *,
        send_bytes: int | None = None,
    ) -> None:
        api = self.api
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        self.send_header(api.request_id_header, new_id(api.request_id_prefix))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload if send_bytes is None else payload[:send_bytes])


class LoopbackAPI(LoopbackServer):
    """A scripted JSON API on 127.0.0.1, the machinery every loopback fake shares.

    Subclasses say what the wire format is: how a request is validated (``_validate``), how
    a partial success body is completed (``_success_body``), what an error body looks like
    (``_error_body``), and how the default conversation is spoken (``_tool_names``,
    ``_answered``, ``tool_call_body``, ``text_body``).
    """

    handler = _APIHandler
    request_id_header = "request-id"
    request_id_prefix = "req"
    author = "a fake API"
    """Who the default conversation's notes and verdicts say they come from."""

    def __init__(self, responder: Responder | None = None, *, port: int = 0) -> None:
        """``port`` 0 picks a free ephemeral port; read it back from ``port``/``base_url``."""
        super().__init__(port=port)
        self.responder: Responder | None = responder
        """Answers when the script is empty; None means ``default_responder``."""
        self.responder_errors: list[Exception] = []
        """Exceptions the responder raised; each was answered with a 500."""
        self._lock = threading.Lock()
        self._script: deque[ReplyLike] = deque()
        self._requests: list[RecordedRequest] = []
        self._replies: list[ServedReply] = []
        self._received = threading.Condition(self._lock)
        self._connections: set[socket.socket] = set()
        self._note_numbers = itertools.count(1)
        self._closing = threading.Event()

    # ---- the wire format (subclasses)

    @abstractmethod
    def _validate(
        self, method: str, path: str, headers: Mapping[str, str], body: Any
    ) -> dict[str, Any]:
        """The request body if the real API would accept the request; else InvalidRequest."""

    @abstractmethod
    def _success_body(self, body: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
        """``body`` (a scripted, possibly partial success body) completed for ``request``."""

    @abstractmethod
    def _error_body(self, reply: ErrorReply) -> dict[str, Any]:
        """The JSON error envelope of the wire format."""

    @abstractmethod
    def _tool_names(self, request: Mapping[str, Any]) -> list[str]:
        """The names of the tools the request offers."""

    @abstractmethod
    def _answered(self, request: Mapping[str, Any]) -> bool:
        """Whether the request carries the result of a tool call."""

    @abstractmethod
    def tool_call_body(
        self, name: str, tool_input: Mapping[str, Any], text: str | None = None
    ) -> dict[str, Any]:
        """A partial success body calling one tool."""

    @abstractmethod
    def text_body(self, text: str) -> dict[str, Any]:
        """A partial success body of text only."""

    # ---- lifecycle

    def start(self) -> Self:
        self._closing.clear()
        return super().start()

    def close(self) -> None:
        # First, so a reply waiting out its delay is dropped instead of sent.
        self._closing.set()
        super().close()

    def _hang_up(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    # ---- the default conversation

    def wants_validation(self, request: Mapping[str, Any]) -> bool:
        """Whether ``default_responder`` answers with a submit_validation call (a validator)."""
        return "submit_validation" in self._tool_names(request) and not self._answered(request)

    def wants_note(self, request: Mapping[str, Any]) -> bool:
        """Whether ``default_responder`` answers with a write_file call."""
        return "write_file" in self._tool_names(request) and not self._answered(request)

    def default_responder(self, request: dict[str, Any]) -> dict[str, Any]:
        """One tool turn, then done: write ``notes/<n>.md`` if offered ``write_file``, else
        text. That is the shortest conversation that still exercises the tool loop end to
        end. A validator (offered ``submit_validation``) passes the work in one turn.

        The responder used when ``responder`` is None; wrap it to change only some turns.
        Notes are numbered 1, 2, ... per server, across all conversations.
        """
        if self.wants_validation(request):
            verdict = {"passed": True, "issues": [], "summary": f"Accepted by {self.author}."}
            return self.tool_call_body("submit_validation", verdict)
        if self.wants_note(request):
            number = self.next_note_number()
            note = {
                "path": f"notes/{number}.md",
                "content": f"# Note {number}\n\nWritten by {self.author}.\n",
            }
            return self.tool_call_body("write_file", note, text="I'll write that down.")
        return self.text_body("Done.")

    def next_note_number(self) -> int:
        """Notes are numbered 1, 2, ... per server, across all conversations."""
        with self._lock:
            return next(self._note_numbers)

    # ---- scripting

    def enqueue(self, *replies: ReplyLike) -> None:
        """Script the next replies, served in order before ``responder`` is consulted.

        A plain mapping is a success body; whatever it leaves out is filled in (see the
        subclass).
        """
        with self._lock:
            self._script.extend(replies)

    def enqueue_text(self, text: str) -> None:
        self.enqueue(self.text_body(text))

    def enqueue_error(
        self,
        status: int,
        message: str = "scripted error",
        *,
        error_type: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.enqueue(
            ErrorReply(
                status, message, error_type=error_type, headers=dict(headers or {}), code=code
            )
        )

    def enqueue_drop(self, count: int = 1) -> None:
        self.enqueue(*(DropConnection() for _ in range(count)))

    def enqueue_drop_mid_response(self, body: Mapping[str, Any] | None = None) -> None:
        """Start a 200 answer (``body`` completed as usual), then cut it off and hang up."""
        self.enqueue(DropMidResponse(dict(body or {})))

    @property
    def pending(self) -> int:
        """Scripted replies not yet served; assert 0 to prove the script ran to the end."""
        with self._lock:
            return len(self._script)

    # ---- what was received and answered

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def bodies(self) -> list[Any]:
        return [request.body for request in self.requests]

    @property
    def replies(self) -> list[ServedReply]:
        """Every answer sent in full, in order (dropped and cut-off ones are not)."""
        with self._lock:
            return list(self._replies)

    @property
    def successes(self) -> list[dict[str, Any]]:
        """The completed bodies of the 200 answers sent in full: what a client was billed."""
        return [r.body for r in self.replies if r.status == 200 and isinstance(r.body, dict)]

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests arrived; for tests driving other threads."""
        with self._received:
            if not self._received.wait_for(lambda: len(self._requests) >= count, timeout):
                raise TimeoutError(
                    f"expected {count} requests within {timeout}s, got {len(self._requests)}"
                )
            return list(self._requests)

    def reset(self) -> None:
        """Forget requests, replies and unserved script; keep the responder and the port."""
        with self._lock:
            self._script.clear()
            self._requests.clear()
            self._replies.clear()

    # ---- server-side hooks

    def _record(self, request: RecordedRequest) -> None:
        with self._received:
            self._requests.append(request)
            self._received.notify_all()

    def _served(self, reply: ServedReply) -> None:
        with self._lock:
            self._replies.append(reply)

    def _track(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    def _reply_for(self, method: str, path: str, headers: Mapping[str, str], body: Any) -> Reply:
        # Validate before consuming the script so a broken request cannot eat a scripted reply
        # meant for the next good one.
        try:
            request = self._validate(method, path, headers, body)
        except InvalidRequest as invalid:
            return invalid.reply
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        if scripted is None:
            scripted = self._respond(request)
        return scripted if isinstance(scripted, Reply) else MessageReply(scripted)

    def _respond(self, request: dict[str, Any]) -> ReplyLike:
        responder = self.responder or self.default_responder
        try:
            return responder(request)
        except Exception as exc:
            # Surface a broken responder as an answer naming it (and in responder_errors):
            # left to the server thread it would only show up as a dropped connection.
            with self._lock:
                self.responder_errors.append(exc)
            return ErrorReply(500, f"fake responder raised {exc!r}")
