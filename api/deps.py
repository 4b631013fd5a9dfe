"""What every endpoint depends on: settings, the database, Temporal, and the caller.

Endpoints take these as FastAPI dependencies, so tests build the app with their own
database and Temporal client and nothing reads globals. An endpoint takes the settings
section it needs (`ApiSettingsDep`, ...), not the whole `Settings`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from pydantic import BaseModel
from temporalio.client import Client

from agents.llm import ProviderConfigError
from agents.protocol import LLMProvider
from core.infrastructure.settings import (
    ApiSettings,
    NotificationSettings,
    Settings,
    TemporalSettings,
)
from core.infrastructure.temporal import TemporalUnavailable, connect
from core.persistence.db import Database
from core.persistence.tenancy import OrgRole
from core.services.providers import make_provider


class Principal(BaseModel):
    """Who is calling: one organization, one role, and the key or JWT subject it came as."""

    org_id: str
    role: OrgRole
    subject: str
    """`key:<id>` for an API key, `jwt:<sub>` for a JWT."""

    @property
    def can_write(self) -> bool:
        return self.role in (OrgRole.ADMIN, OrgRole.MEMBER)

    @property
    def rate_limit_bucket(self) -> str:
        """Per organization: a JWT `sub` is only unique within the issuer's organization."""
        return f"{self.org_id}:{self.subject}"


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_api_settings(request: Request) -> ApiSettings:
    return get_settings(request).api


def get_temporal_settings(request: Request) -> TemporalSettings:
    return get_settings(request).temporal


def get_notification_settings(request: Request) -> NotificationSettings:
    return get_settings(request).notifications


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_temporal(request: Request) -> Client:
    """The app's Temporal client, connected on first use (the API starts without Temporal)."""
    state = request.app.state
    if state.temporal is None:
        async with state.temporal_lock:
            if state.temporal is None:
                try:
                    state.temporal = await connect(state.settings)
                except TemporalUnavailable as exc:
                    raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    client: Client = state.temporal
    return client


async def get_optional_temporal(request: Request) -> Client | None:
    """Temporal if it answers: closed runs are read from the database without it."""
    try:
        return await get_temporal(request)
    except HTTPException:
        return None


def get_pricing_provider(request: Request) -> LLMProvider:
    """The configured provider, for its default model and its prices (it is never called)."""
    provider: LLMProvider | None = getattr(request.app.state, "pricing_provider", None)
    if provider is None:
        try:
            provider = make_provider(get_settings(request).provider)
        except ProviderConfigError as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, f"cannot price runs: {exc}"
            ) from None
        request.app.state.pricing_provider = provider
    return provider


SettingsDep = Annotated[Settings, Depends(get_settings)]
ApiSettingsDep = Annotated[ApiSettings, Depends(get_api_settings)]
TemporalSettingsDep = Annotated[TemporalSettings, Depends(get_temporal_settings)]
NotificationSettingsDep = Annotated[NotificationSettings, Depends(get_notification_settings)]
DatabaseDep = Annotated[Database, Depends(get_db)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
OptionalTemporalDep = Annotated[Client | None, Depends(get_optional_temporal)]
PricingDep = Annotated[LLMProvider, Depends(get_pricing_provider)]
