"""What every endpoint depends on: settings, the database, Temporal, and the caller.

Endpoints take these as FastAPI dependencies, so tests build the app with their own
database and Temporal client and nothing reads globals.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from pydantic import BaseModel
from temporalio.client import Client

from core.infrastructure.settings import Settings
from core.infrastructure.temporal import TemporalUnavailable, connect
from core.persistence.db import Database
from core.persistence.tenancy import OrgRole


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


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_db)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
