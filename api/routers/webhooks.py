"""Webhook subscriptions of the caller's organization and their delivery log (admins only).

A subscription of another organization is exactly as missing as one that never existed.
"""

from __future__ import annotations

import json
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlalchemy import BigInteger, bindparam, delete
from sqlmodel import col, select

from api.auth import AdminDep
from api.deps import DatabaseDep, SettingsDep
from api.fields import INT64_MAX, ShortText, Storable, Text
from api.webhook_schemas import (
    WebhookCreate,
    WebhookDeliveryPage,
    WebhookDeliveryView,
    WebhookSubscriptionCreated,
    WebhookSubscriptionView,
)
from core.infrastructure.outbound import UnsafeTarget, resolve_target
from core.persistence.db import WebhookDelivery, WebhookSubscription
from core.persistence.tenancy import new_id

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

SECRET_PREFIX = "whsec_"


def _view(row: WebhookSubscription) -> WebhookSubscriptionView:
    return WebhookSubscriptionView(
        id=row.id,
        url=row.url,
        event_types=json.loads(row.event_types),
        active=row.active,
        created_at=row.created_at,
    )


async def owned_subscription(
    subscription_id: Text, caller: AdminDep, db: DatabaseDep
) -> WebhookSubscription:
    async with db.session() as session:
        row = await session.get(WebhookSubscription, subscription_id)
    if row is None or row.org_id != caller.org_id:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no webhook subscription {subscription_id!r}"
        )
    return row


OwnedSubscriptionDep = Annotated[WebhookSubscription, Depends(owned_subscription)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={422: {"description": "Unknown event type, or a URL that may not be a target."}},
)
async def create_subscription(
    body: Annotated[WebhookCreate, Storable],
    caller: AdminDep,
    db: DatabaseDep,
    settings: SettingsDep,
) -> WebhookSubscriptionCreated:
    """Subscribe a URL to run events. The response holds the signing secret, once."""
    try:
        await resolve_target(body.url, settings.notifications.webhook_allow_private)
    except UnsafeTarget as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"url: {exc}") from None
    secret = body.secret or SECRET_PREFIX + secrets.token_urlsafe(32)
    row = WebhookSubscription(
        id=new_id("whk"),
        org_id=caller.org_id,
        url=body.url,
        secret=secret,
        event_types=json.dumps(body.event_types),
    )
    async with db.session() as session:
        session.add(row)
        await session.commit()
        await session.refresh(row)
    return WebhookSubscriptionCreated(**_view(row).model_dump(), secret=secret)


@router.get("")
async def list_subscriptions(caller: AdminDep, db: DatabaseDep) -> list[WebhookSubscriptionView]:
    """The organization's subscriptions, oldest first (secrets are never shown again)."""
    async with db.session() as session:
        rows = (
            await session.execute(
                select(WebhookSubscription)
                .where(WebhookSubscription.org_id == caller.org_id)
                .order_by(col(WebhookSubscription.created_at), col(WebhookSubscription.id))
            )
        ).scalars()
        return [_view(row) for row in rows]


@router.get("/{subscription_id}")
async def get_subscription(subscription: OwnedSubscriptionDep) -> WebhookSubscriptionView:
    return _view(subscription)


@router.delete("/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_subscription(subscription: OwnedSubscriptionDep, db: DatabaseDep) -> None:
    """Stop deliveries to the URL; the subscription, its secret and its log are deleted."""
    async with db.session() as session:
        await session.execute(
            delete(WebhookDelivery).where(col(WebhookDelivery.subscription_id) == subscription.id)
        )
        await session.execute(
            delete(WebhookSubscription).where(col(WebhookSubscription.id) == subscription.id)
        )
        await session.commit()


@router.get("/{subscription_id}/deliveries")
async def list_deliveries(
    subscription: OwnedSubscriptionDep,
    db: DatabaseDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[
        int | None,
        Query(ge=1, le=INT64_MAX, description="Only attempts older than this id (paging)."),
    ] = None,
    run_id: ShortText | None = None,
) -> WebhookDeliveryPage:
    """Every delivery attempt to this subscription, newest first, `limit` at a time."""
    query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription.id)
    if before is not None:
        # As a BIGINT: the column is an INTEGER, and a bound past its range is still a bound.
        query = query.where(col(WebhookDelivery.id) < bindparam("before", before, BigInteger))
    if run_id is not None:
        query = query.where(WebhookDelivery.run_id == run_id)
    async with db.session() as session:
        rows = list(
            (
                await session.execute(
                    query.order_by(col(WebhookDelivery.id).desc()).limit(limit + 1)
                )
            ).scalars()
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return WebhookDeliveryPage(
        items=[
            WebhookDeliveryView(
                id=row.id or 0,
                run_id=row.run_id,
                event=row.event_type,
                seq=row.event_seq,
                attempt=row.attempt,
                status_code=row.status_code,
                ok=row.ok,
                error=row.error,
                at=row.created_at,
            )
            for row in rows
        ],
        next_before=rows[-1].id if more and rows else None,
    )
