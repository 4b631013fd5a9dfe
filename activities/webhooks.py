"""Webhook deliveries: one run event to every subscription of its organization that wants it.

Each POST is signed: `X-Orchestrator-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>.<body>" with the subscription's secret>`. The activity logs every attempt in
`webhook_deliveries`; a subscription that already took the event is skipped when the
activity is retried, so a receiver that fails twice and recovers gets each event once.

Targets are checked against server-side request forgery twice: when a subscription is
created (the API) and on every delivery, where the POST goes to the very address that was
checked (no second DNS lookup an attacker could answer differently), with no redirects
followed and no proxy from the environment.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import socket
import time
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpx
from sqlmodel import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.contracts import DELIVER_WEBHOOKS, RunEvent, WebhookDeliveryInput
from core.db import Database, WebhookDelivery, WebhookSubscription
from core.settings import Settings

SIGNATURE_HEADER = "X-Orchestrator-Signature"
EVENT_HEADER = "X-Orchestrator-Event"
EVENT_ID_HEADER = "X-Orchestrator-Event-Id"
USER_AGENT = "orchestrator-webhooks/1"
DELIVERY_TIMEOUT_SECONDS = 10.0
"""The whole POST (connect, send, status line) to one subscriber."""
SIGNATURE_TOLERANCE_SECONDS = 300

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class UnsafeWebhookTarget(ValueError):
    """A webhook URL that points where the platform must not send requests."""


# --------------------------------------------------------------------------- signatures


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    tolerance_seconds: float = SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """The receiver's check (also in the README): a `v1` signature matches and `t` is recent.

    Tolerates spaces after commas and several `v1` values (a sender may sign with an old
    and a new secret while rotating)."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_seconds:
        return False
    expected = _mac(secret, timestamp, body).encode()
    return any(hmac.compare_digest(expected, s.encode("utf-8", "replace")) for s in signatures)


# --------------------------------------------------------------------------- SSRF guard


def _split(url: str) -> tuple[SplitResult, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeWebhookTarget(f"webhook URL must be http(s) with a host: {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeWebhookTarget(f"webhook URL has an invalid port: {url!r}") from exc
    return parts, parts.hostname, port


def _non_public(address: IPAddress) -> bool:
    """Loopback, private, link-local, shared (CGNAT), reserved, multicast, unspecified...:
    anything but a global unicast address, also when an IPv4 one hides in an IPv6 one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return _non_public(embedded)
    return not address.is_global or address.is_multicast


def _addresses(
    hostname: str,
    infos: list[tuple[Any, Any, Any, Any, tuple[Any, ...]]],
    allow_private: bool,
) -> list[IPAddress]:
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not allow_private and _non_public(address):
            raise UnsafeWebhookTarget(
                f"webhook host {hostname!r} resolves to {address}, a non-public address "
                "(set WEBHOOK_ALLOW_PRIVATE_TARGETS=true to allow it)"
            )
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeWebhookTarget(f"webhook host {hostname!r} does not resolve")
    return addresses


def check_target(url: str, allow_private: bool) -> None:
    """Refuse URLs that are not http(s), do not resolve, or resolve to private, loopback or
    link-local addresses (those only with `allow_private`).

    Blocking (it resolves the host); async code calls `resolve_target`."""
    _, hostname, port = _split(url)
    try:
        infos = socket.getaddrinfo(hostname, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeWebhookTarget(f"webhook host {hostname!r} does not resolve") from exc
    _addresses(hostname, infos, allow_private)


async def resolve_target(url: str, allow_private: bool) -> list[IPAddress]:
    """`check_target` without blocking the event loop: the checked addresses to connect to."""
    _, hostname, port = _split(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            hostname, port, proto=socket.IPPROTO_TCP
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeWebhookTarget(f"webhook host {hostname!r} does not resolve") from exc
    return _addresses(hostname, infos, allow_private)


# --------------------------------------------------------------------------- delivery


def event_payload(run_id: str, event: RunEvent) -> bytes:
    """The JSON body every subscriber gets for one event (bytes exactly as signed)."""
    return json.dumps(
        {
            "id": f"{run_id}:{event.seq}",
            "type": event.type.value,
            "run_id": run_id,
            "seq": event.seq,
            "at": event.at.isoformat(),
            "task": event.task,
            "data": event.data,
        },
        sort_keys=True,
    ).encode()


class WebhookActivities:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    @activity.defn(name=DELIVER_WEBHOOKS)
    async def deliver_webhooks(self, delivery: WebhookDeliveryInput) -> int:
        """Deliver to every subscriber that has not taken this event yet; returns how many.

        Subscribers are posted to concurrently; each attempt is logged as soon as it ends,
        so a retry after a crash repeats as little as possible. Any failure raises, and the
        workflow's retry policy runs the activity again for the subscribers still missing."""
        event = delivery.event
        async with self.db.session() as session:
            subscriptions = list(
                (
                    await session.execute(
                        select(WebhookSubscription).where(
                            WebhookSubscription.org_id == delivery.tenant,
                            WebhookSubscription.active == True,  # noqa: E712  (SQL, not Python)
                        )
                    )
                ).scalars()
            )
            done = set(
                (
                    await session.execute(
                        select(WebhookDelivery.subscription_id).where(
                            WebhookDelivery.org_id == delivery.tenant,
                            WebhookDelivery.run_id == delivery.run_id,
                            WebhookDelivery.event_seq == event.seq,
                            WebhookDelivery.ok == True,  # noqa: E712
                        )
                    )
                ).scalars()
            )
        wanted = [
            s
            for s in subscriptions
            if s.id not in done and event.type.value in _event_types(s.event_types)
        ]
        if not wanted:
            return 0
        body = event_payload(delivery.run_id, event)
        attempt = activity.info().attempt
        outcomes = await asyncio.gather(
            *(self._deliver_one(s, delivery, body, attempt) for s in wanted)
        )
        failures = [f"{s.url}: {error}" for s, error in zip(wanted, outcomes, strict=True) if error]
        if failures:
            # Retried by the workflow's retry policy; subscribers that took it are skipped.
            raise ApplicationError("; ".join(failures), type="WebhookDeliveryFailed")
        return len(wanted)

    async def _deliver_one(
        self,
        subscription: WebhookSubscription,
        delivery: WebhookDeliveryInput,
        body: bytes,
        attempt: int,
    ) -> str | None:
        """POST to one subscriber and log the attempt; the error, or None on success."""
        status_code, error = await self._post(subscription, delivery, body)
        async with self.db.session() as session:
            session.add(
                WebhookDelivery(
                    subscription_id=subscription.id,
                    org_id=delivery.tenant,
                    run_id=delivery.run_id,
                    event_seq=delivery.event.seq,
                    event_type=delivery.event.type.value,
                    attempt=attempt,
                    status_code=status_code,
                    ok=error is None,
                    error=error,
                )
            )
            await session.commit()
        return error

    async def _post(
        self, subscription: WebhookSubscription, delivery: WebhookDeliveryInput, body: bytes
    ) -> tuple[int | None, str | None]:
        event = delivery.event
        try:
            addresses = await resolve_target(subscription.url, self.settings.webhook_allow_private)
        except UnsafeWebhookTarget as exc:
            return None, str(exc)
        url = httpx.URL(subscription.url)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            # The request goes to a checked address; Host, TLS SNI and the certificate check
            # still use the name in the URL.
            "Host": url.netloc.decode("ascii"),
            EVENT_HEADER: event.type.value,
            EVENT_ID_HEADER: f"{delivery.run_id}:{event.seq}",
            SIGNATURE_HEADER: sign(subscription.secret, int(time.time()), body),
        }
        extensions = {"sni_hostname": url.host}
        try:
            async with (
                asyncio.timeout(DELIVERY_TIMEOUT_SECONDS),
                httpx.AsyncClient(
                    timeout=DELIVERY_TIMEOUT_SECONDS, follow_redirects=False, trust_env=False
                ) as client,
            ):
                for index, address in enumerate(addresses):
                    pinned = url.copy_with(host=str(address))
                    try:
                        async with client.stream(
                            "POST", pinned, content=body, headers=headers, extensions=extensions
                        ) as response:
                            status_code = response.status_code  # the body is not read
                        break
                    except httpx.ConnectError:
                        if index == len(addresses) - 1:
                            raise
        except TimeoutError:
            return None, f"no answer within {DELIVERY_TIMEOUT_SECONDS:g}s"
        except httpx.HTTPError as exc:
            return None, (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        if 200 <= status_code < 300:
            return status_code, None
        return status_code, f"HTTP {status_code}"


def _event_types(stored: str) -> set[str]:
    try:
        types = json.loads(stored)
    except ValueError:
        return set()
    return {str(t) for t in types} if isinstance(types, list) else set()
