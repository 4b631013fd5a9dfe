"""Webhook deliveries: one run event to every subscription of its organization that wants it.

Each POST is signed: `X-Orchestrator-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>.<body>" with the subscription's secret>`. The activity logs every attempt in
`webhook_deliveries`; a subscription that already took the event is skipped when the
activity is retried, so a receiver that fails twice and recovers gets each event once.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
from urllib.parse import urlsplit

import httpx
from sqlmodel import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.contracts import DELIVER_WEBHOOKS, WebhookDeliveryInput
from core.db import Database, WebhookDelivery, WebhookSubscription
from core.settings import Settings

SIGNATURE_HEADER = "X-Orchestrator-Signature"
EVENT_HEADER = "X-Orchestrator-Event"
DELIVERY_TIMEOUT_SECONDS = 10.0


class UnsafeWebhookTarget(ValueError):
    """A webhook URL that points where the platform must not send requests."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, tolerance_seconds: float = 300) -> bool:
    """The receiver's check (also in the README): signature matches and is recent."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


def check_target(url: str, allow_private: bool) -> None:
    """Refuse URLs that are not http(s) or resolve to private, loopback or link-local hosts."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeWebhookTarget(f"webhook URL must be http(s) with a host: {url!r}")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UnsafeWebhookTarget(f"webhook host {parts.hostname!r} does not resolve") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_reserved
            or address.is_multicast
            or address.is_unspecified
        ):
            raise UnsafeWebhookTarget(
                f"webhook host {parts.hostname!r} resolves to {address}, a non-public address "
                "(set WEBHOOK_ALLOW_PRIVATE_TARGETS=true to allow it)"
            )


class WebhookActivities:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    @activity.defn(name=DELIVER_WEBHOOKS)
    async def deliver_webhooks(self, delivery: WebhookDeliveryInput) -> int:
        """Deliver to every subscriber that has not taken this event yet; returns how many."""
        event = delivery.event
        async with self.db.session() as session:
            subscriptions = (
                await session.execute(
                    select(WebhookSubscription).where(
                        WebhookSubscription.org_id == delivery.tenant,
                        WebhookSubscription.active == True,  # noqa: E712  (SQL, not Python)
                    )
                )
            ).scalars()
            wanted = [s for s in subscriptions if event.type.value in json.loads(s.event_types)]
            done = set(
                (
                    await session.execute(
                        select(WebhookDelivery.subscription_id).where(
                            WebhookDelivery.run_id == delivery.run_id,
                            WebhookDelivery.event_seq == event.seq,
                            WebhookDelivery.ok == True,  # noqa: E712
                        )
                    )
                ).scalars()
            )
        body = json.dumps(
            {
                "type": event.type.value,
                "run_id": delivery.run_id,
                "seq": event.seq,
                "at": event.at.isoformat(),
                "task": event.task,
                "data": event.data,
            },
            sort_keys=True,
        ).encode()
        failures = []
        delivered = 0
        for subscription in wanted:
            if subscription.id in done:
                continue
            outcome = await self._post(subscription, event.type.value, body)
            async with self.db.session() as session:
                session.add(
                    WebhookDelivery(
                        subscription_id=subscription.id,
                        org_id=delivery.tenant,
                        run_id=delivery.run_id,
                        event_seq=event.seq,
                        event_type=event.type.value,
                        attempt=activity.info().attempt,
                        status_code=outcome[0],
                        ok=outcome[1] is None,
                        error=outcome[1],
                    )
                )
                await session.commit()
            if outcome[1] is None:
                delivered += 1
            else:
                failures.append(f"{subscription.url}: {outcome[1]}")
        if failures:
            # Retried by the workflow's retry policy; subscribers that took it are skipped.
            raise ApplicationError("; ".join(failures), type="WebhookDeliveryFailed")
        return delivered

    async def _post(
        self, subscription: WebhookSubscription, event_type: str, body: bytes
    ) -> tuple[int | None, str | None]:
        try:
            check_target(subscription.url, self.settings.webhook_allow_private)
        except UnsafeWebhookTarget as exc:
            return None, str(exc)
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: event_type,
            SIGNATURE_HEADER: sign(subscription.secret, int(time.time()), body),
        }
        try:
            async with httpx.AsyncClient(
                timeout=DELIVERY_TIMEOUT_SECONDS, follow_redirects=False
            ) as client:
                response = await client.post(subscription.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        if response.is_success:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}"
