"""An organization's webhook subscriptions and their delivery log.

Deliveries themselves are an activity's work (`activities/webhooks.py`); here a
subscription is made, read and removed, and its delivery attempts are read back.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence

from sqlalchemy import BigInteger, bindparam, delete
from sqlmodel import col, select

from core.infrastructure.outbound import resolve_target
from core.persistence.db import Database, WebhookDelivery, WebhookSubscription
from core.persistence.tenancy import new_id

SECRET_PREFIX = "whsec_"


async def subscribe(
    db: Database,
    org_id: str,
    url: str,
    event_types: Sequence[str],
    *,
    secret: str | None,
    allow_private: bool,
) -> WebhookSubscription:
    """A new subscription, its signing secret generated when none is given.

    Raises `outbound.UnsafeTarget` for a URL the outbound guard refuses.
    """
    await resolve_target(url, allow_private)
    row = WebhookSubscription(
        id=new_id("whk"),
        org_id=org_id,
        url=url,
        secret=secret or SECRET_PREFIX + secrets.token_urlsafe(32),
        event_types=json.dumps(list(event_types)),
    )
    async with db.session() as session:
        session.add(row)
        await session.commit()
        await session.refresh(row)
    return row


async def subscription(
    db: Database, org_id: str, subscription_id: str
) -> WebhookSubscription | None:
    """The subscription if it is the organization's: another's is exactly as missing."""
    async with db.session() as session:
        row = await session.get(WebhookSubscription, subscription_id)
    return row if row is not None and row.org_id == org_id else None


async def subscriptions(db: Database, org_id: str) -> list[WebhookSubscription]:
    """The organization's subscriptions, oldest first."""
    async with db.session() as session:
        rows = await session.execute(
            select(WebhookSubscription)
            .where(WebhookSubscription.org_id == org_id)
            .order_by(col(WebhookSubscription.created_at), col(WebhookSubscription.id))
        )
        return list(rows.scalars())


async def unsubscribe(db: Database, subscription_id: str) -> None:
    """Delete the subscription, its secret and its delivery log."""
    async with db.session() as session:
        await session.execute(
            delete(WebhookDelivery).where(col(WebhookDelivery.subscription_id) == subscription_id)
        )
        await session.execute(
            delete(WebhookSubscription).where(col(WebhookSubscription.id) == subscription_id)
        )
        await session.commit()


async def deliveries(
    db: Database,
    subscription_id: str,
    *,
    limit: int,
    before: int | None = None,
    run_id: str | None = None,
) -> list[WebhookDelivery]:
    """Delivery attempts to the subscription, newest first: `limit` of them older than `before`."""
    query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
    if before is not None:
        # As a BIGINT: the column is an INTEGER, and a bound past its range is still a bound.
        query = query.where(col(WebhookDelivery.id) < bindparam("before", before, BigInteger))
    if run_id is not None:
        query = query.where(WebhookDelivery.run_id == run_id)
    async with db.session() as session:
        rows = await session.execute(query.order_by(col(WebhookDelivery.id).desc()).limit(limit))
        return list(rows.scalars())
