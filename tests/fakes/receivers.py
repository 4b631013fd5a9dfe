"""Loopback receivers for notifications: an HTTP endpoint (webhooks, Slack) and an SMTP server.

Both listen on 127.0.0.1 with an ephemeral port and serve from a background thread, so the
code under test, a Temporal worker in this process or another process can reach them::

    with HttpReceiver() as hook:
        hook.respond_with(503, headers={"Retry-After": "1"})   # next request; then 200 "ok"
        ...post to f"{hook.url}/hooks/T0/secret"...
        path, headers, body, received_at = hook.wait_for(2)[-1]

    with SmtpReceiver() as smtp:
        ...send to smtp.host:smtp.port...
        assert smtp.wait_for(1)[0]["Subject"] == "..."

    with WebhookReceiver(secret) as endpoint:   # the platform's signed run events
        ...subscribe f"{endpoint.url}/hook"...
        assert all(e.signature_valid for e in endpoint.events)

Scripted replies are served first, in order, then the default success reply. The HTTP
plumbing is ``LoopbackServer`` (``tests/fakes/loopback.py``), shared with the API fakes.
"""

from __future__ import annotations

import email.policy
import hashlib
import hmac
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler
from typing import Any, Generic, NamedTuple, Self, TypeVar

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.fakes.loopback import HOST, Lifecycle, LoopbackServer, read_request

__all__ = [
    "HttpReceiver",
    "HttpReply",
    "ReceivedRequest",
    "SignedEvent",
    "SmtpReceiver",
    "WebhookReceiver",
    "verify_signature",
]

T = TypeVar("T")


class _Inbox(Generic[T]):
    """What a receiver got, shared with the thread that serves it."""

    def __init__(self) -> None:
        self._received = threading.Condition()
        self._items: list[T] = []

    def add(self, item: T) -> None:
        with self._received:
            self._items.append(item)
            self._received.notify_all()

    def snapshot(self) -> list[T]:
        with self._received:
            return list(self._items)

    def wait_for(self, count: int, timeout: float, what: str) -> list[T]:
        with self._received:
            if not self._received.wait_for(lambda: len(self._items) >= count, timeout):
                raise TimeoutError(
                    f"expected {count} {what} within {timeout}s, got {len(self._items)}"
                )
            return list(self._items)


class _Script(Generic[T]):
    """Replies to serve before the default one, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._replies: deque[T] = deque()

    def extend(self, reply: T, times: int) -> None:
        with self._lock:
            self._replies.extend([reply] * times)

    def next(self, default: T) -> T:
        with self._lock:
            return self._replies.popleft() if self._replies else default

    def __len__(self) -> int:
        with self._lock:
            return len(self._replies)


# --------------------------------------------------------------------------- HTTP


class ReceivedRequest(NamedTuple):
    path: str
    """With its query string, as sent."""
    headers: dict[str, str]
    """Names lower-cased."""
    body: Any
    """The JSON body, or None when the body was empty or not JSON."""
    received_at: float
    """`time.monotonic()` on arrival: gaps between requests show retry delays."""


@dataclass(frozen=True)
class HttpReply:
    status: int = 200
    body: str = "ok"
    """Slack's incoming webhooks answer 200 with the text `ok`."""
    headers: Mapping[str, str] = field(default_factory=dict)


class _HttpHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # receiver.requests is the log

    def do_POST(self) -> None:
        raw, body, headers = read_request(self)
        receiver = self.server.owner  # type: ignore[attr-defined]
        reply = receiver._reply_to(self.path, headers, raw, body)
        payload = reply.body.encode()
        self.send_response(reply.status)
        self.send_header("content-type", "text/plain; charset=utf-8")
        self.send_header("content-length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


class HttpReceiver(LoopbackServer):
    """Accepts POSTs on any path; thread-safe, so tests and workers may share one."""

    handler = _HttpHandler

    def __init__(self) -> None:
        super().__init__()
        self._inbox: _Inbox[ReceivedRequest] = _Inbox()
        self._script: _Script[HttpReply] = _Script()

    @property
    def url(self) -> str:
        """Base URL without a trailing slash; append any path."""
        return f"http://{HOST}:{self.port}"

    def respond_with(
        self,
        status: int,
        body: str = "",
        *,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests (after any already scripted) with this reply."""
        self._script.extend(HttpReply(status, body, dict(headers or {})), times)

    @property
    def pending(self) -> int:
        """Scripted replies not yet served; assert 0 to prove the script ran to the end."""
        return len(self._script)

    def _reply_to(self, path: str, headers: dict[str, str], raw: bytes, body: Any) -> HttpReply:
        """Record a request (on the serving thread) and choose its reply."""
        self._inbox.add(ReceivedRequest(path, headers, body, time.monotonic()))
        return self._script.next(HttpReply())

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of every request received, in arrival order."""
        return self._inbox.snapshot()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Block until at least ``count`` requests arrived; returns all of them."""
        return self._inbox.wait_for(count, timeout, "requests")


# --------------------------------------------------------------------------- signed webhooks


def verify_signature(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """How a customer's endpoint checks `X-Orchestrator-Signature` (the README's snippet).

    Written from the documented format, not with the sender's code, so a change on either
    side that breaks the contract shows."""
    pairs = [part.strip().partition("=") for part in header.split(",")]
    timestamps = [value for name, _, value in pairs if name == "t"]
    signatures = [value.encode() for name, _, value in pairs if name == "v1"]
    try:
        [timestamp] = [int(value) for value in timestamps]
    except ValueError:  # none, several, or not a number
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    signed = f"{timestamp}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest().encode()
    return any(hmac.compare_digest(expected, signature) for signature in signatures)


class SignedEvent(NamedTuple):
    event: Any
    """The JSON body: `id`, `type`, `run_id`, `seq`, `at`, `task`, `data`."""
    raw: bytes
    headers: dict[str, str]
    """Names lower-cased."""
    signature_valid: bool
    status: int
    """What the receiver answered: 401 for a bad signature, else the scripted reply."""


class WebhookReceiver(HttpReceiver):
    """A customer's webhook endpoint: checks every request's signature with `secret` and
    answers a bad one with 401, as a real receiver should; scripted replies as HttpReceiver.

    Set `secret` after creating the subscription when the platform generated it."""

    def __init__(self, secret: str | None = None) -> None:
        super().__init__()
        self.secret = secret
        self._events: _Inbox[SignedEvent] = _Inbox()

    def _reply_to(self, path: str, headers: dict[str, str], raw: bytes, body: Any) -> HttpReply:
        reply = super()._reply_to(path, headers, raw, body)
        signature = headers.get("x-orchestrator-signature", "")
        valid = self.secret is not None and verify_signature(self.secret, signature, raw)
        if not valid:
            reply = HttpReply(401, "bad signature")
        self._events.add(SignedEvent(body, raw, headers, valid, reply.status))
        return reply

    @property
    def events(self) -> list[SignedEvent]:
        """Every delivery attempt received, in arrival order."""
        return self._events.snapshot()

    @property
    def accepted(self) -> list[SignedEvent]:
        """The attempts answered with a 2xx: the events the endpoint took."""
        return [e for e in self.events if 200 <= e.status < 300]

    def wait_for_events(self, count: int, timeout: float = 10.0) -> list[SignedEvent]:
        return self._events.wait_for(count, timeout, "webhook events")


# --------------------------------------------------------------------------- SMTP


class _BoundController(Controller):
    """aiosmtpd's Controller on a socket bound beforehand.

    The stock Controller needs a fixed port (it connects to it to check the server is up),
    and probing for a free port first races with other processes; binding port 0 ourselves
    and handing the socket to asyncio does neither.
    """

    def __init__(self, handler: Any, sock: socket.socket, **smtp_options: Any) -> None:
        self._sock = sock
        hostname, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=hostname, port=port, **smtp_options)

    def _create_server(self) -> Awaitable[Any]:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


class _SmtpHandler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.receiver.credentials is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        reply = self.receiver._script.next("250 Message accepted for delivery")
        if reply.startswith("250"):
            content = envelope.content
            raw = content.encode() if isinstance(content, str) else content or b""
            self.receiver._inbox.add(BytesParser(policy=email.policy.default).parsebytes(raw))
        return reply


class SmtpReceiver(Lifecycle):
    """An SMTP server that keeps what it accepts as parsed messages.

    With ``credentials=(user, password)`` it requires AUTH (PLAIN or LOGIN, allowed without
    TLS here) and answers a wrong password with 535; mail without AUTH gets 530.
    """

    def __init__(self, *, credentials: tuple[str, str] | None = None) -> None:
        self.credentials = credentials
        self._inbox: _Inbox[EmailMessage] = _Inbox()
        self._script: _Script[str] = _Script()
        self._controller: _BoundController | None = None

    def start(self) -> Self:
        if self._controller is not None:
            raise RuntimeError("SmtpReceiver already started")
        sock = socket.create_server((HOST, 0))
        options: dict[str, Any] = {}
        if self.credentials is not None:
            # Not aiosmtpd's auth_required: with plain-text AUTH it warns on every connection.
            # handle_DATA refuses unauthenticated mail instead.
            options = {"authenticator": self._authenticate, "auth_require_tls": False}
        controller = _BoundController(_SmtpHandler(self), sock, **options)
        try:
            controller.start()
        except BaseException:
            sock.close()
            raise
        self._controller = controller
        return self

    def close(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        if self._controller is None:
            raise RuntimeError("SmtpReceiver is not running")
        return int(self._controller.port)

    def respond_with(self, reply: str, *, times: int = 1) -> None:
        """Answer the next ``times`` messages' DATA with this reply instead of accepting them,
        e.g. ``"451 4.3.0 Try again later"`` or ``"554 5.6.0 Rejected"``."""
        self._script.extend(reply, times)

    @property
    def messages(self) -> list[EmailMessage]:
        """A snapshot of every accepted message, parsed, in arrival order."""
        return self._inbox.snapshot()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """Block until at least ``count`` messages were accepted; returns all of them."""
        return self._inbox.wait_for(count, timeout, "messages")

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self.credentials == (
            data.login.decode(),
            data.password.decode(),
        )
        # handled=False: aiosmtpd then answers a failure with 535 itself.
        return AuthResult(success=ok, handled=False)
