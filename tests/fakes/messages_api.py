"""A loopback fake of the Anthropic Messages API (``POST /v1/messages``).

Real HTTP on 127.0.0.1 with an ephemeral port, served from a background thread, so the
real ``anthropic`` SDK (or any HTTP client, in this or another process) can talk to it::

    with FakeMessagesAPI() as api:
        api.enqueue_error(429, "slow down", headers={"retry-after": "2"})
        api.enqueue_text("hello")
        client = AsyncAnthropic(api_key="test-key", base_url=api.base_url, max_retries=0)
        ...
        assert api.requests[-1].body["model"] == "claude-sonnet-4-5"

Replies come from the scripted queue first (FIFO, shared by all callers), then from
``api.responder``. Both may produce a success body (a full or partial message dict; missing
fields are filled in) or a ``MessageReply`` / ``ErrorReply`` / ``DropConnection`` /
``DropMidResponse`` / ``RawReply``. ``api.replies`` lists every answer sent in full, so a
test can add up the usage the server actually reported. Requests are checked the way the real API checks them where that is cheap, so
a malformed request fails here as it would in production instead of passing silently.

The server machinery is ``LoopbackAPI``, shared with the OpenAI-compatible fake
(``tests/fakes/openai_api.py``); this module adds the Messages API's wire format.

Stdlib only, so it also runs standalone for manual or cross-process use:
``python tests/fakes/messages_api.py [--port N]`` prints its base URL and serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, TypeAlias

__all__ = [
    "DropConnection",
    "DropMidResponse",
    "ErrorReply",
    "FakeMessagesAPI",
    "InvalidRequest",
    "LoopbackAPI",
    "MessageReply",
    "PromptCache",
    "RawReply",
    "RecordedRequest",
    "Reply",
    "ReplyLike",
    "Responder",
    "ServedReply",
    "default_reply",
    "error_body",
    "estimate_tokens",
    "first_text",
    "message",
    "new_id",
    "role_of",
    "task_of",
    "text_message",
    "tool_use_message",
    "wants_note",
    "wants_validation",
]

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
BAD_API_KEY = "bad-key"

# The error `type` the real API uses for each status; anything else falls back by class.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# Top-level request fields the real API knows; anything else is rejected like the API does
# ("Extra inputs are not permitted"), which catches our own fields leaking onto the wire.
KNOWN_REQUEST_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "tools",
        "tool_choice",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_k",
        "top_p",
        "thinking",
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",
        "output_config",
        "output_format",
        "cache_control",
        "inference_geo",
        "speed",
        "diagnostics",
        "user_profile_id",
        "workspace_id",
    }
)


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class MessageReply:
    """A successful response. ``body`` may be partial; see ``FakeMessagesAPI.enqueue``."""

    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0


@dataclass(frozen=True)
class ErrorReply:
    """An error response with the API's JSON error envelope."""

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

    @property
    def resolved_type(self) -> str:
        if self.error_type:
            return self.error_type
        if self.status in ERROR_TYPES:
            return ERROR_TYPES[self.status]
        return "api_error" if self.status >= 500 else "invalid_request_error"


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
        return _api_key(self.headers)

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


# --------------------------------------------------------------------------- builders


def new_id(prefix: str) -> str:
    return f"{prefix}_fake{secrets.token_hex(10)}"


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def message(
    content: list[dict[str, Any]],
    *,
    stop_reason: str | None = None,
    model: str | None = None,
    usage: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """A partial message body; ``FakeMessagesAPI`` fills whatever is left out."""
    body: dict[str, Any] = {"content": content}
    if stop_reason is not None:
        body["stop_reason"] = stop_reason
    if model is not None:
        body["model"] = model
    if usage is not None:
        body["usage"] = dict(usage)
    return body


def text_message(text: str, **kwargs: Any) -> dict[str, Any]:
    return message([{"type": "text", "text": text}], **kwargs)


def tool_use_message(
    name: str,
    tool_input: Mapping[str, Any],
    *,
    text: str | None = None,
    tool_use_id: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text:
        content.append({"type": "text", "text": text})
    content.append(
        {
            "type": "tool_use",
            "id": tool_use_id or new_id("toolu"),
            "name": name,
            "input": dict(tool_input),
        }
    )
    return message(content, **kwargs)


def estimate_tokens(value: Any) -> int:
    # Roughly four characters a token, like English prose; deterministic so tests can assert.
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return max(1, len(text) // 4)


def _complete_message(body: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
    """Fill in every field the wire format requires that a scripted body left out."""
    content = list(body.get("content") or [{"type": "text", "text": "OK"}])
    has_tool_use = any(block.get("type") == "tool_use" for block in content)
    estimated = {
        "input_tokens": _input_tokens(request),
        "output_tokens": estimate_tokens(content),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    return {
        "id": body.get("id") or new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": body.get("model") or request.get("model") or "claude-sonnet-4-5",
        "content": content,
        "stop_reason": body.get("stop_reason") or ("tool_use" if has_tool_use else "end_turn"),
        "stop_sequence": body.get("stop_sequence"),
        "usage": {**estimated, **dict(body.get("usage") or {})},
    }


# --------------------------------------------------------------------------- default responder


def _has_tool_result(request: Mapping[str, Any]) -> bool:
    for msg in request.get("messages") or []:
        content = msg.get("content")
        if isinstance(content, list) and any(
            isinstance(block, dict) and block.get("type") == "tool_result" for block in content
        ):
            return True
    return False


def default_reply(request: Mapping[str, Any], note_number: int) -> dict[str, Any]:
    """One tool turn, then done: write ``notes/<n>.md`` if offered ``write_file``, else text.

    That is the shortest conversation that still exercises the tool loop end to end.
    ``note_number`` is only used for the note; see ``FakeMessagesAPI.default_responder``.
    A validator (offered ``submit_validation``) passes the work in one turn.
    """
    if wants_validation(request):
        return tool_use_message(
            "submit_validation",
            {"passed": True, "issues": [], "summary": "Accepted by the fake Messages API."},
        )
    if wants_note(request):
        return tool_use_message(
            "write_file",
            {
                "path": f"notes/{note_number}.md",
                "content": f"# Note {note_number}\n\nWritten by the fake Messages API.\n",
            },
            text="I'll write that down.",
        )
    return text_message("Done.")


def wants_validation(request: Mapping[str, Any]) -> bool:
    """Whether ``default_reply`` answers with a submit_validation tool_use (a validator asks)."""
    tool_names = [tool.get("name") for tool in request.get("tools") or []]
    return "submit_validation" in tool_names and not _has_tool_result(request)


TASK_TAG = re.compile(r'<task id="([^"]+)" role="([^"]+)">')


def first_text(request: Mapping[str, Any]) -> str:
    """The text of the request's first message (the agent's task message)."""
    messages = request.get("messages") or [{}]
    content = messages[0].get("content") or ""
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in content if isinstance(b, dict))


def role_of(request: Mapping[str, Any]) -> str:
    """The agent role a request speaks for, from its task message; else "summarizer" etc.

    The platform sends one shared system prompt to every agent (so they share the prompt
    cache), so the role is read from the `<task id=.. role=..>` tag of the first message.
    """
    match = TASK_TAG.search(first_text(request))
    return match.group(2) if match else "summarizer"


def task_of(request: Mapping[str, Any]) -> str:
    match = TASK_TAG.search(first_text(request))
    return match.group(1) if match else ""


def wants_note(request: Mapping[str, Any]) -> bool:
    """Whether ``default_reply`` answers with a write_file tool_use."""
    tool_names = [tool.get("name") for tool in request.get("tools") or []]
    return "write_file" in tool_names and not _has_tool_result(request)


# --------------------------------------------------------------------------- validation


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


def _api_key(headers: Mapping[str, str]) -> str | None:
    # Older SDKs send the key as x-api-key, newer ones (2.x) as a bearer token.
    if headers.get("x-api-key"):
        return headers["x-api-key"]
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _validate_headers(headers: Mapping[str, str]) -> None:
    api_key = _api_key(headers)
    if not api_key:
        raise InvalidRequest(401, "x-api-key header is required")
    if api_key == BAD_API_KEY:
        raise InvalidRequest(401, "invalid x-api-key")
    if not headers.get("anthropic-version"):
        raise InvalidRequest(400, "anthropic-version: header is required")


def _validate_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest(400, "request body must be a JSON object")
    extra = sorted(set(body) - KNOWN_REQUEST_FIELDS)
    if extra:
        raise InvalidRequest(400, f"{extra[0]}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest(400, "model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
        raise InvalidRequest(400, "max_tokens: Field required")
    if body.get("stream"):
        raise InvalidRequest(400, "stream: the fake Messages API does not stream")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise InvalidRequest(400, "system: Input should be a valid string or list")
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or not tool.get("name"):
            raise InvalidRequest(400, f"tools.{i}.name: Field required")
        if "type" not in tool and not isinstance(tool.get("input_schema"), dict):
            raise InvalidRequest(400, f"tools.{i}.input_schema: Field required")
    _validate_messages(body.get("messages"))
    return body


def _tool_block_ids(content: Any, block_type: str, key: str) -> list[str]:
    if not isinstance(content, list):
        return []
    return [
        str(block.get(key))
        for block in content
        if isinstance(block, dict) and block.get("type") == block_type
    ]


def _validate_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(400, "messages: Field required")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise InvalidRequest(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = msg.get("content")
        if not isinstance(content, str | list):
            raise InvalidRequest(400, f"messages.{i}.content: Field required")
        for j, block in enumerate(content if isinstance(content, list) else []):
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise InvalidRequest(400, f"messages.{i}.content.{j}.type: Field required")
            if block["type"] == "text" and not isinstance(block.get("text"), str):
                raise InvalidRequest(400, f"messages.{i}.content.{j}.text: Field required")
    # The pairing rule is what agent loops most often get wrong, so check it as the API does.
    for i, msg in enumerate(messages):
        tool_use_ids = _tool_block_ids(msg["content"], "tool_use", "id")
        if msg["role"] == "assistant" and tool_use_ids:
            following = messages[i + 1] if i + 1 < len(messages) else None
            answered = (
                set(_tool_block_ids(following["content"], "tool_result", "tool_use_id"))
                if following is not None and following["role"] == "user"
                else set()
            )
            missing = [tool_id for tool_id in tool_use_ids if tool_id not in answered]
            if missing:
                raise InvalidRequest(
                    400,
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}. Each `tool_use` block must have "
                    "a corresponding `tool_result` block in the next message.",
                )
        result_ids = _tool_block_ids(msg["content"], "tool_result", "tool_use_id")
        if result_ids:
            previous = messages[i - 1] if i > 0 else None
            offered = (
                set(_tool_block_ids(previous["content"], "tool_use", "id"))
                if previous is not None and previous["role"] == "assistant"
                else set()
            )
            unexpected = [tool_id for tool_id in result_ids if tool_id not in offered]
            if msg["role"] != "user" or unexpected:
                raise InvalidRequest(
                    400,
                    f"messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{', '.join(unexpected or result_ids)}. Each `tool_result` block must have "
                    "a corresponding `tool_use` block in the previous message.",
                )


# --------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Handler threads may sit on idle keep-alive connections; close() ends them instead.
    block_on_close = False
    # A whole goal fans out many agents at once; the stdlib default backlog of 5 would
    # reset connections under that burst, which the SDK reports as connection errors.
    request_queue_size = 256

    def __init__(self, api: LoopbackAPI, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.api = api


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive, as the real APIs offer; the SDKs pool connections.
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.api._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.api._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; api.requests is the log

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        path = self.path.split("?", 1)[0]
        api = self.server.api
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
        if isinstance(reply, MessageReply):
            completed = api._success_body(reply.body, body or {})
            self._send(200, json.dumps(completed).encode(), "application/json", reply.headers)
            api._served(ServedReply(body, 200, completed))
        elif isinstance(reply, ErrorReply):
            envelope = api._error_body(reply)
            self._send(
                reply.status, json.dumps(envelope).encode(), "application/json", reply.headers
            )
            api._served(ServedReply(body, reply.status, envelope))
        else:
            self._send(reply.status, reply.body, reply.content_type, reply.headers)
            api._served(ServedReply(body, reply.status, reply.body))

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
        api = self.server.api
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        self.send_header(api.request_id_header, new_id(api.request_id_prefix))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload if send_bytes is None else payload[:send_bytes])


class LoopbackAPI(ABC):
    """A scripted JSON API on 127.0.0.1, the machinery every loopback fake shares.

    Subclasses say what the wire format is: how a request is validated (``_validate``), how
    a partial success body is completed (``_success_body``), what an error body looks like
    (``_error_body``) and how unscripted requests are answered (``default_responder``).
    Thread-safe: tests, SDK clients and Temporal workers on any thread may share one.
    """

    request_id_header = "request-id"
    request_id_prefix = "req"

    def __init__(self, responder: Responder | None = None, *, port: int = 0) -> None:
        """``port`` 0 picks a free ephemeral port; read it back from ``port``/``base_url``."""
        self.responder: Responder | None = responder
        """Answers when the script is empty; None means ``default_responder``."""
        self._requested_port = port
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
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

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
    def default_responder(self, request: dict[str, Any]) -> ReplyLike:
        """The answer to an unscripted request when ``responder`` is None."""

    # ---- lifecycle

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._closing.clear()
        self._server = _Server(self, self._requested_port)
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
        self._closing.set()
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- where to connect

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- scripting

    def enqueue(self, *replies: ReplyLike) -> None:
        """Script the next replies, served in order before ``responder`` is consulted.

        A plain mapping is a success body; whatever it leaves out is filled in (see the
        subclass).
        """
        with self._lock:
            self._script.extend(replies)

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

    def next_note_number(self) -> int:
        """Notes are numbered 1, 2, ... per server, across all conversations."""
        with self._lock:
            return next(self._note_numbers)

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


class PromptCache:
    """The Messages API's prompt cache, as far as a client can observe it.

    The request is read as one sequence of blocks in the API's prefix order: tools, system,
    then every message's content blocks. A block with ``cache_control`` is a breakpoint.
    A breakpoint whose prefix is at least ``min_tokens`` long writes that prefix to the
    cache; a request reads the longest cached prefix found at a breakpoint or up to
    ``LOOKBACK`` blocks before one. Token figures use ``estimate_tokens``, so cache read +
    cache write + uncached input add up to the request's estimated input tokens.
    """

    LOOKBACK = 20

    def __init__(self, min_tokens: int = 1024) -> None:
        self.min_tokens = min_tokens
        self._prefixes: set[str] = set()
        self._lock = threading.Lock()

    def use(self, request: Mapping[str, Any]) -> tuple[int, int]:
        """(cache read, cache write) tokens of this request; its breakpoints are stored."""
        blocks, breakpoints = _prefix_blocks(request)
        if not breakpoints:
            return 0, 0
        total = _input_tokens(request)
        prefixes = [_prefix_key(blocks[: i + 1]) for i in range(len(blocks))]
        sizes = [estimate_tokens(blocks[: i + 1]) for i in range(len(blocks))]
        with self._lock:
            hits = [
                i
                for b in breakpoints
                for i in range(max(0, b - self.LOOKBACK + 1), b + 1)
                if prefixes[i] in self._prefixes
            ]
            read = min(total, sizes[max(hits)]) if hits else 0
            last = breakpoints[-1]
            written = 0
            if sizes[last] >= self.min_tokens:
                written = max(0, min(total, sizes[last]) - read)
            for b in breakpoints:
                if sizes[b] >= self.min_tokens:
                    self._prefixes.add(prefixes[b])
        return read, written


def _prefix_blocks(request: Mapping[str, Any]) -> tuple[list[Any], list[int]]:
    blocks: list[Any] = []
    breakpoints: list[int] = []

    def add(block: Any) -> None:
        if isinstance(block, dict) and "cache_control" in block:
            breakpoints.append(len(blocks))
            block = {k: v for k, v in block.items() if k != "cache_control"}
        blocks.append(block)

    for tool in request.get("tools") or []:
        add(tool)
    system = request.get("system")
    for block in [system] if isinstance(system, str) else system or []:
        add(block)
    for message in request.get("messages") or []:
        content = message.get("content")
        for block in [content] if isinstance(content, str) else content or []:
            add(block)
    return blocks, breakpoints


def _prefix_key(blocks: list[Any]) -> str:
    return hashlib.sha256(json.dumps(blocks, sort_keys=True).encode()).hexdigest()


def _input_tokens(request: Mapping[str, Any]) -> int:
    return estimate_tokens(
        [request.get("system", ""), request.get("messages", []), request.get("tools", [])]
    )


class FakeMessagesAPI(LoopbackAPI):
    """The fake Messages API. Use as a context manager, or call ``start()`` and ``close()``."""

    @property
    def base_url(self) -> str:
        """What the SDK takes as ``base_url``; it appends ``/v1/messages`` itself."""
        return f"http://127.0.0.1:{self.port}"

    def enqueue(self, *replies: ReplyLike) -> None:
        """Script the next replies, served in order before ``responder`` is consulted.

        A plain mapping is a success body; missing ``id``, ``model`` (echoes the request),
        ``stop_reason`` (``tool_use`` if there is a tool_use block, else ``end_turn``) and
        ``usage`` fields (estimated from the request size) are filled in.
        """
        super().enqueue(*replies)

    def enqueue_text(self, text: str, **kwargs: Any) -> None:
        """Kwargs as for ``message()``: stop_reason, model, usage."""
        self.enqueue(text_message(text, **kwargs))

    def enqueue_tool_use(self, name: str, tool_input: Mapping[str, Any], **kwargs: Any) -> None:
        """Kwargs as for ``tool_use_message()``: text, tool_use_id, stop_reason, model, usage."""
        self.enqueue(tool_use_message(name, tool_input, **kwargs))

    def enqueue_overloaded(self, message: str = "Overloaded", **headers: str) -> None:
        """The 529 ``overloaded_error`` the API answers when it is over capacity."""
        self.enqueue_error(529, message, headers=headers)

    def default_responder(self, request: dict[str, Any]) -> dict[str, Any]:
        """The responder used when ``responder`` is None; wrap it to change only some turns.

        Notes are numbered 1, 2, ... per server, across all conversations.
        """
        if not wants_note(request):
            return default_reply(request, 0)
        return default_reply(request, self.next_note_number())

    def __init__(self, responder: Responder | None = None, *, port: int = 0) -> None:
        super().__init__(responder, port=port)
        self.prompt_cache = PromptCache()
        """What the server's prompt cache holds; it sets the cache fields of every usage."""

    def _reply_for(self, method: str, path: str, headers: Mapping[str, str], body: Any) -> Reply:
        if path == COUNT_TOKENS_PATH and method == "POST":
            # Answered at once, never from the script: counting is not a model call.
            try:
                _validate_headers(headers)
                request = _validate_body({"max_tokens": 1, **(body or {})})
            except InvalidRequest as invalid:
                return invalid.reply
            counted = {"input_tokens": _input_tokens(request)}
            return RawReply(200, json.dumps(counted).encode(), "application/json")
        return super()._reply_for(method, path, headers, body)

    def _validate(
        self, method: str, path: str, headers: Mapping[str, str], body: Any
    ) -> dict[str, Any]:
        if method != "POST" or path != MESSAGES_PATH:
            raise InvalidRequest(404, f"Not found: {method} {path}")
        _validate_headers(headers)
        return _validate_body(body)

    def _success_body(self, body: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
        completed = _complete_message(body, request)
        if "usage" not in body:
            # Scripted usage is the test's word; otherwise the cache decides, as it does
            # on the real API.
            read, written = self.prompt_cache.use(request)
            usage = completed["usage"]
            usage["cache_read_input_tokens"] = read
            usage["cache_creation_input_tokens"] = written
            usage["input_tokens"] = max(0, usage["input_tokens"] - read - written)
        return completed

    def _error_body(self, reply: ErrorReply) -> dict[str, Any]:
        return error_body(reply.resolved_type, reply.message)


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the fake Anthropic Messages API.")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(list(argv) if argv is not None else None)
    stop = threading.Event()
    # Background jobs of a non-interactive shell ignore SIGINT, so SIGTERM stops us too.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with FakeMessagesAPI(port=args.port) as api:
        print(api.base_url, flush=True)
        while not stop.wait(0.5):
            pass


if __name__ == "__main__":
    main()
