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
from api.status import StatusCache
from core.infrastructure.settings import (
    ApiSettings,
    NotificationSettings,
    Settings,
    TemporalSettings,
)
from core.infrastructure.temporal import TemporalUnavailable, connect
from core.persistence.db import Database
from core.persistence.key_cache import KeyCache
from core.persistence.spending_guard import SpendingGuard
from core.persistence.tenancy import OrgRole
from core.services.estimate import HistoryCache
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


# What the app holds, for dependencies that need several of these: reading them here costs
# nothing, while each dependency FastAPI resolves costs a little on every request.


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def app_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def app_keys(request: Request) -> KeyCache:
    """The API keys this process verified lately (`core/persistence/key_cache.py`)."""
    keys: KeyCache = request.app.state.api_keys
    return keys


def app_statuses(request: Request) -> StatusCache:
    """Run statuses this process rendered lately (`api/status.py`)."""
    statuses: StatusCache = request.app.state.run_statuses
    return statuses


# The dependencies are `async def` though they do not wait: FastAPI runs a plain `def`
# dependency in its thread pool, a thread hop per request for reading an attribute.


async def get_settings(request: Request) -> Settings:
    return app_settings(request)


async def get_api_settings(request: Request) -> ApiSettings:
    return app_settings(request).api


async def get_temporal_settings(request: Request) -> TemporalSettings:
    return app_settings(request).temporal


async def get_notification_settings(request: Request) -> NotificationSettings:
    return app_settings(request).notifications


async def get_db(request: Request) -> Database:
    return app_db(request)


async def get_key_cache(request: Request) -> KeyCache:
    return app_keys(request)


async def get_status_cache(request: Request) -> StatusCache:
    return app_statuses(request)


async def get_history_cache(request: Request) -> HistoryCache:
    """The template histories this process's estimates read lately."""
    history: HistoryCache = request.app.state.estimate_history
    return history


async def get_spending_limits(request: Request) -> SpendingGuard:
    """The organizations' monthly limits this process read lately (for a few seconds)."""
    limits: SpendingGuard = request.app.state.spending_limits
    return limits


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


async def get_pricing_provider(request: Request) -> LLMProvider:
    """The configured provider, for its default model and its prices (it is never called)."""
    provider: LLMProvider | None = getattr(request.app.state, "pricing_provider", None)
    if provider is None:
        try:
            provider = make_provider(app_settings(request).provider)
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
KeyCacheDep = Annotated[KeyCache, Depends(get_key_cache)]
StatusCacheDep = Annotated[StatusCache, Depends(get_status_cache)]
HistoryCacheDep = Annotated[HistoryCache, Depends(get_history_cache)]
SpendingLimitsDep = Annotated[SpendingGuard, Depends(get_spending_limits)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
OptionalTemporalDep = Annotated[Client | None, Depends(get_optional_temporal)]
PricingDep = Annotated[LLMProvider, Depends(get_pricing_provider)]
