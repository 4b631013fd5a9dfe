"""Webhook deliveries: run events to every subscription of their organization that wants them.

Each POST is signed: `X-Orchestrator-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>.<body>" with the subscription's secret>`. The activity logs every attempt in
`webhook_deliveries`; a subscription that already took the event is skipped when the
activity is retried, so a receiver that fails twice and recovers gets each event once.

Targets pass the platform's one outbound guard (`core/infrastructure/outbound.py`) twice: when a
subscription is created (the API) and on every delivery.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

from sqlmodel import col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.contracts import (
    DELIVER_WEBHOOKS,
    WEBHOOK_EVENT_TYPES_WANTED,
    RunEvent,
    WebhookDeliveryInput,
)
from core.infrastructure import outbound
from core.infrastructure.settings import NotificationSettings
from core.persistence.db import Database, WebhookDelivery, WebhookSubscription

SIGNATURE_HEADER = "X-Orchestrator-Signature"
EVENT_HEADER = "X-Orchestrator-Event"
EVENT_ID_HEADER = "X-Orchestrator-Event-Id"
USER_AGENT = "orchestrator-webhooks/1"
DELIVERY_TIMEOUT_SECONDS = 10.0
"""The whole POST (connect, send, status line) to one subscriber."""
SIGNATURE_TOLERANCE_SECONDS = 300

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
    """The receiver's check (also in docs/api.md): a `v1` signature matches and `t` is recent.

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
    def __init__(self, db: Database, settings: NotificationSettings) -> None:
        self.db = db
        self.settings = settings

    @activity.defn(name=WEBHOOK_EVENT_TYPES_WANTED)
    async def webhook_event_types_wanted(self, tenant: str) -> list[str]:
        """The event types the tenant's active subscriptions want (sorted; none: [])."""
        async with self.db.session() as session:
            stored = (
                await session.execute(
                    select(WebhookSubscription.event_types).where(
                        WebhookSubscription.org_id == tenant,
                        WebhookSubscription.active == True,  # noqa: E712  (SQL, not Python)
                    )
                )
            ).scalars()
            return sorted(set().union(*(_event_types(types) for types in stored)))

    @activity.defn(name=DELIVER_WEBHOOKS)
    async def deliver_webhooks(self, delivery: WebhookDeliveryInput) -> int:
        """Deliver each event to every subscriber that has not taken it yet; returns how many
        deliveries were made.

        Subscribers are posted to concurrently, each one's events in order; each attempt is
        logged as soon as it ends, so a retry after a crash repeats as little as possible.
        Any failure raises, and the workflow's retry policy runs the activity again for the
        deliveries still missing."""
        events = delivery.events
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
            taken = await session.execute(
                select(WebhookDelivery.subscription_id, WebhookDelivery.event_seq).where(
                    WebhookDelivery.org_id == delivery.tenant,
                    WebhookDelivery.run_id == delivery.run_id,
                    col(WebhookDelivery.event_seq).in_([e.seq for e in events]),
                    WebhookDelivery.ok == True,  # noqa: E712
                )
            )
            done = {(subscription, seq) for subscription, seq in taken.all()}
        todo = [
            (s, missing)
            for s in subscriptions
            if (
                missing := [
                    e
                    for e in events
                    if (s.id, e.seq) not in done and e.type.value in _event_types(s.event_types)
                ]
            )
        ]
        if not todo:
            return 0
        attempt = activity.info().attempt
        outcomes = await asyncio.gather(
            *(self._deliver_in_order(s, missing, delivery, attempt) for s, missing in todo)
        )
        failures = [failure for failed in outcomes for failure in failed]
        if failures:
            # Retried by the workflow's retry policy; deliveries that were taken are skipped.
            raise ApplicationError("; ".join(failures), type="WebhookDeliveryFailed")
        return sum(len(missing) for _, missing in todo)

    async def _deliver_in_order(
        self,
        subscription: WebhookSubscription,
        events: list[RunEvent],
        delivery: WebhookDeliveryInput,
        attempt: int,
    ) -> list[str]:
        """One subscriber's events, oldest first; what failed (each event is tried)."""
        failures = []
        for event in events:
            error = await self._deliver_one(subscription, event, delivery, attempt)
            if error:
                failures.append(f"{subscription.url}: {error}")
        return failures

    async def _deliver_one(
        self,
        subscription: WebhookSubscription,
        event: RunEvent,
        delivery: WebhookDeliveryInput,
        attempt: int,
    ) -> str | None:
        """POST one event to one subscriber and log the attempt; the error, or None."""
        body = event_payload(delivery.run_id, event)
        status_code, error = await self._post(subscription, event, delivery.run_id, body)
        async with self.db.session() as session:
            session.add(
                WebhookDelivery(
                    subscription_id=subscription.id,
                    org_id=delivery.tenant,
                    run_id=delivery.run_id,
                    event_seq=event.seq,
                    event_type=event.type.value,
                    attempt=attempt,
                    status_code=status_code,
                    ok=error is None,
                    error=error,
                )
            )
            await session.commit()
        return error

    async def _post(
        self, subscription: WebhookSubscription, event: RunEvent, run_id: str, body: bytes
    ) -> tuple[int | None, str | None]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_HEADER: event.type.value,
            EVENT_ID_HEADER: f"{run_id}:{event.seq}",
            SIGNATURE_HEADER: sign(subscription.secret, int(time.time()), body),
        }
        try:
            reply = await outbound.post(
                subscription.url,
                body,
                headers,
                allow_private=self.settings.webhook_allow_private,
                timeout=DELIVERY_TIMEOUT_SECONDS,
            )
        except (outbound.UnsafeTarget, outbound.DeliveryFailed) as exc:
            return None, str(exc)
        return reply.status_code, None if reply.ok else f"HTTP {reply.status_code}"


def _event_types(stored: str) -> set[str]:
    try:
        types = json.loads(stored)
    except ValueError:
        return set()
    return {str(t) for t in types} if isinstance(types, list) else set()
