"""Webhook subscriptions of the caller's organization and their delivery log (admins only).

A subscription of another organization is exactly as missing as one that never existed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status

from api.auth import AdminDep
from api.deps import DatabaseDep, NotificationSettingsDep
from api.paging import first_page
from api.schemas.fields import INT64_MAX, ShortText, Storable, Text
from api.schemas.webhooks import (
    WebhookCreate,
    WebhookDeliveryPage,
    WebhookDeliveryView,
    WebhookSubscriptionCreated,
    WebhookSubscriptionView,
)
from core.infrastructure.outbound import UnsafeTarget
from core.persistence.db import WebhookSubscription
from core.services import webhooks

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


def _view(row: WebhookSubscription) -> WebhookSubscriptionView:
    return WebhookSubscriptionView.model_validate(row, from_attributes=True)


async def owned_subscription(
    subscription_id: Text, caller: AdminDep, db: DatabaseDep
) -> WebhookSubscription:
    row = await webhooks.subscription(db, caller.org_id, subscription_id)
    if row is None:
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
    settings: NotificationSettingsDep,
) -> WebhookSubscriptionCreated:
    """Subscribe a URL to run events. The response holds the signing secret, once."""
    try:
        row = await webhooks.subscribe(
            db,
            caller.org_id,
            body.url,
            body.event_types,
            secret=body.secret,
            allow_private=settings.webhook_allow_private,
        )
    except UnsafeTarget as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"url: {exc}") from None
    return WebhookSubscriptionCreated(**_view(row).model_dump(), secret=row.secret)


@router.get("")
async def list_subscriptions(caller: AdminDep, db: DatabaseDep) -> list[WebhookSubscriptionView]:
    """The organization's subscriptions, oldest first (secrets are never shown again)."""
    return [_view(row) for row in await webhooks.subscriptions(db, caller.org_id)]


@router.get("/{subscription_id}")
async def get_subscription(subscription: OwnedSubscriptionDep) -> WebhookSubscriptionView:
    return _view(subscription)


@router.delete("/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_subscription(subscription: OwnedSubscriptionDep, db: DatabaseDep) -> None:
    """Stop deliveries to the URL; the subscription, its secret and its log are deleted."""
    await webhooks.unsubscribe(db, subscription.id)


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
    rows = await webhooks.deliveries(
        db, subscription.id, limit=limit + 1, before=before, run_id=run_id
    )
    page, more = first_page(rows, limit)
    return WebhookDeliveryPage(
        items=[WebhookDeliveryView.model_validate(row, from_attributes=True) for row in page],
        next_before=page[-1].id if more else None,
    )
