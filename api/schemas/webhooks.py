"""Bodies of the webhook subscriptions API: subscriptions and their delivery log."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, JsonValue, field_validator

from core.contracts import WEBHOOK_EVENT_TYPES

WEBHOOK_EVENT_NAMES = sorted(t.value for t in WEBHOOK_EVENT_TYPES)
_EVENT_NAME_ENUM: list[JsonValue] = list(WEBHOOK_EVENT_NAMES)


class WebhookCreate(BaseModel):
    url: str = Field(
        min_length=1,
        max_length=2000,
        description="http(s) URL the events are POSTed to; private, loopback and link-local "
        "hosts are refused unless WEBHOOK_ALLOW_PRIVATE_TARGETS is set.",
        examples=["https://hooks.example.com/orchestrator"],
    )
    event_types: list[str] = Field(
        default_factory=lambda: list(WEBHOOK_EVENT_NAMES),
        min_length=1,
        description="The events to deliver; default: all of them.",
        json_schema_extra={"items": {"type": "string", "enum": _EVENT_NAME_ENUM}},
    )
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        description="Signing secret; generated when absent. Returned once, in this response.",
    )

    @field_validator("event_types")
    @classmethod
    def known_event_types(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in WEBHOOK_EVENT_NAMES]
        if unknown:
            raise ValueError(
                f"unknown webhook event type(s) {', '.join(map(repr, unknown))}; "
                f"choose from {', '.join(WEBHOOK_EVENT_NAMES)}"
            )
        return sorted(set(value))


class WebhookSubscriptionView(BaseModel):
    """A subscription as listed: never its secret."""

    id: str
    url: str
    event_types: list[str]
    active: bool
    created_at: datetime

    @field_validator("event_types", mode="before")
    @classmethod
    def _from_column(cls, value: Any) -> Any:
        """The row keeps the list as JSON text."""
        return json.loads(value) if isinstance(value, str) else value


class WebhookSubscriptionCreated(WebhookSubscriptionView):
    secret: str = Field(
        description="The signing secret. Shown only here: keep it, it cannot be read again."
    )


class WebhookDeliveryView(BaseModel):
    """One attempt to deliver one event to the subscription."""

    id: int
    run_id: str
    event: str = Field(validation_alias="event_type")
    """The event type, e.g. `task.completed`."""
    seq: int = Field(validation_alias="event_seq")
    """The event's number within its run."""
    attempt: int
    """The delivery activity's attempt (1 for the first try)."""
    status_code: int | None
    """The receiver's HTTP status; None when there was no answer."""
    ok: bool
    error: str | None
    at: datetime = Field(validation_alias="created_at")


class WebhookDeliveryPage(BaseModel):
    items: list[WebhookDeliveryView]
    """Newest first."""
    next_before: int | None
    """Pass as `before` for the next (older) page; None on the last page."""
