"""Request and response bodies of the administration endpoints (organizations, keys, teams, users).

Responses are read from the table rows (`model_validate(row, from_attributes=True)`), so
a column that is not declared here (an API key's hash) can never reach a client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from pydantic import BaseModel, Field, StringConstraints, model_validator

from api.schemas.fields import Tokens, Usd
from core.persistence.tenancy import OrgRole

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class _Changes(BaseModel):
    """A PATCH body: the fields sent are changed, so at least one must be sent."""

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.model_fields_set:
            names = ", ".join(type(self).model_fields)
            raise ValueError(f"nothing to change: send at least one of {names}")
        return self


# --- organizations -----------------------------------------------------------------------


class OrgCreate(BaseModel):
    name: Name
    monthly_token_limit: Tokens | None = Field(
        default=None, description="Input + output tokens per calendar month (UTC)."
    )
    monthly_cost_limit_usd: Usd | None = None


class Org(BaseModel):
    id: str
    name: str
    monthly_token_limit: int | None
    monthly_cost_limit_usd: float | None
    created_at: datetime


class MonthSpending(BaseModel):
    since: datetime = Field(description="The start of the calendar month (UTC).")
    tokens: int
    cost_usd: float
    remaining_tokens: int | None = Field(description="None: no token limit.")
    remaining_cost_usd: float | None = Field(description="None: no cost limit.")


class OrgStatus(Org):
    month: MonthSpending


class BudgetUpdate(_Changes):
    """The fields sent are changed; null removes that limit; a field left out stays."""

    monthly_token_limit: Tokens | None = None
    monthly_cost_limit_usd: Usd | None = None


# --- API keys ----------------------------------------------------------------------------


class KeyCreate(BaseModel):
    name: Name
    role: OrgRole = OrgRole.MEMBER


class Key(BaseModel):
    """An API key as listed: never its secret or its hash."""

    id: str
    name: str
    role: OrgRole
    prefix: str = Field(description="The part after `orch_` that identifies the key.")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(Key):
    secret: str = Field(
        description="The whole key, shown in this response only: it is not stored and "
        "cannot be shown again. Send it as `X-API-Key` or `Authorization: Bearer`."
    )


class OrgCreated(BaseModel):
    org: Org
    admin_key: KeyCreated


# --- teams and users ---------------------------------------------------------------------


class TeamCreate(BaseModel):
    name: Name


class Team(BaseModel):
    id: str
    name: str
    created_at: datetime


class UserCreate(BaseModel):
    subject: Name = Field(description="The `sub` claim of the person's JWTs.")
    role: OrgRole = OrgRole.MEMBER
    team_id: str | None = None


class User(BaseModel):
    id: str
    subject: str
    role: OrgRole = Field(description="Overrides the `role` claim of the person's JWTs.")
    team_id: str | None
    created_at: datetime


class UserUpdate(_Changes):
    """The fields sent are changed; `team_id: null` takes the user out of their team."""

    role: OrgRole | None = None
    team_id: str | None = None

    @model_validator(mode="after")
    def _role_not_null(self) -> UserUpdate:
        if "role" in self.model_fields_set and self.role is None:
            raise ValueError("role cannot be null: choose admin, member or viewer")
        return self
