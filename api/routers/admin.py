"""Administration: organizations, and each organization's API keys, teams and users.

Creating an organization is the platform operator's act (`Authorization: Bearer
<ORCHESTRATOR_ADMIN_TOKEN>`); it returns the organization's first admin key. Everything
else is scoped to the caller's own organization: an id of another organization's key or
user answers 404, exactly like an id that does not exist.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import UNAUTHORIZED_HEADERS, AdminDep, CallerDep
from api.deps import ApiSettingsDep, DatabaseDep, KeyCacheDep, SpendingLimitsDep
from api.rate_limit import (
    count_failed_authentication,
    enforce_rate_limit,
    refuse_guessing_client,
)
from api.schemas.admin import (
    BudgetUpdate,
    Key,
    KeyCreate,
    KeyCreated,
    MonthSpending,
    Org,
    OrgCreate,
    OrgCreated,
    OrgStatus,
    Team,
    TeamCreate,
    User,
    UserCreate,
    UserUpdate,
)
from api.schemas.fields import Storable, Text
from core.persistence import tenancy
from core.persistence.db import Database, Organization
from core.persistence.tenancy import KEEP, IssuedKey, OrgRole, TenancyNotFound
from core.services import budgets

operator_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="OperatorToken",
    description="The platform operator's ORCHESTRATOR_ADMIN_TOKEN.",
)


async def require_operator(
    request: Request,
    settings: ApiSettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(operator_bearer)],
) -> None:
    """The operator token, compared in constant time; guesses count against a rate limit."""
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if not token:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "creating organizations over the API is disabled: ORCHESTRATOR_ADMIN_TOKEN is not set",
        )
    client = request.client.host if request.client else "unknown"
    await enforce_rate_limit(request, f"operator:{client}", settings)
    await refuse_guessing_client(request, settings)
    presented = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(presented.encode(), token.encode()):
        await count_failed_authentication(request, settings)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "send the operator token as Authorization: Bearer <ORCHESTRATOR_ADMIN_TOKEN>",
            headers=UNAUTHORIZED_HEADERS,
        )


def not_found(exc: TenancyNotFound) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))


def issued_key(issued: IssuedKey) -> KeyCreated:
    key = Key.model_validate(issued.row, from_attributes=True)
    return KeyCreated(**key.model_dump(), secret=issued.secret)


async def org_status(db: Database, org: Organization) -> OrgStatus:
    budget = await budgets.month_budget(db, org)
    month = MonthSpending(
        since=budget.since,
        tokens=budget.spent.tokens,
        cost_usd=budget.spent.cost_usd,
        remaining_tokens=budget.remaining_tokens,
        remaining_cost_usd=budget.remaining_cost_usd,
    )
    return OrgStatus(**Org.model_validate(org, from_attributes=True).model_dump(), month=month)


# --- organizations -----------------------------------------------------------------------

orgs = APIRouter(prefix="/orgs", tags=["organizations"])


@orgs.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(require_operator)],
    responses={
        401: {"description": "No or a wrong operator token."},
        403: {"description": "ORCHESTRATOR_ADMIN_TOKEN is not set: this endpoint is off."},
    },
)
async def create_org(body: Annotated[OrgCreate, Storable], db: DatabaseDep) -> OrgCreated:
    """Create an organization and its first admin key (the secret is shown only here)."""
    org = await tenancy.create_org(
        db,
        body.name,
        monthly_token_limit=body.monthly_token_limit,
        monthly_cost_limit_usd=body.monthly_cost_limit_usd,
    )
    issued = await tenancy.create_key(db, org.id, "first admin key", OrgRole.ADMIN)
    return OrgCreated(
        org=Org.model_validate(org, from_attributes=True), admin_key=issued_key(issued)
    )


@orgs.get("/me")
async def my_org(caller: CallerDep, db: DatabaseDep) -> OrgStatus:
    """The caller's organization: its limits, this month's spending and what remains."""
    return await org_status(db, await tenancy.get_org(db, caller.org_id))


@orgs.patch("/me/budget")
async def update_budget(
    body: Annotated[BudgetUpdate, Storable],
    caller: AdminDep,
    db: DatabaseDep,
    limits: SpendingLimitsDep,
) -> OrgStatus:
    """Set the monthly limits; `null` removes a limit, a field left out is kept. This API
    process applies them to the next run started; other replicas within 5 seconds."""
    sent = body.model_fields_set
    org = await tenancy.update_org_limits(
        db,
        caller.org_id,
        monthly_token_limit=body.monthly_token_limit if "monthly_token_limit" in sent else KEEP,
        monthly_cost_limit_usd=(
            body.monthly_cost_limit_usd if "monthly_cost_limit_usd" in sent else KEEP
        ),
    )
    limits.forget(caller.org_id)
    return await org_status(db, org)


# --- API keys ----------------------------------------------------------------------------

keys = APIRouter(prefix="/keys", tags=["api keys"])


@keys.post("", status_code=status.HTTP_201_CREATED)
async def create_key(
    body: Annotated[KeyCreate, Storable], caller: AdminDep, db: DatabaseDep
) -> KeyCreated:
    """Issue a key of this organization; its secret is in this response and nowhere else."""
    return issued_key(await tenancy.create_key(db, caller.org_id, body.name, body.role))


@keys.get("")
async def list_keys(caller: AdminDep, db: DatabaseDep) -> list[Key]:
    """This organization's keys, revoked ones included (never a secret or a hash)."""
    return [
        Key.model_validate(row, from_attributes=True)
        for row in await tenancy.list_keys(db, caller.org_id)
    ]


@keys.delete("/{key_id}")
async def revoke_key(key_id: Text, caller: AdminDep, db: DatabaseDep, keys: KeyCacheDep) -> Key:
    """Revoke a key: from now on it answers 401. Revoking twice is harmless."""
    try:
        row = await tenancy.revoke_key(db, key_id, caller.org_id)
    except TenancyNotFound as exc:
        raise not_found(exc) from None
    keys.forget(key_id)
    return Key.model_validate(row, from_attributes=True)


# --- teams -------------------------------------------------------------------------------

teams = APIRouter(prefix="/teams", tags=["teams"])


@teams.post("", status_code=status.HTTP_201_CREATED)
async def create_team(
    body: Annotated[TeamCreate, Storable], caller: AdminDep, db: DatabaseDep
) -> Team:
    row = await tenancy.create_team(db, caller.org_id, body.name)
    return Team.model_validate(row, from_attributes=True)


@teams.get("")
async def list_teams(caller: AdminDep, db: DatabaseDep) -> list[Team]:
    return [
        Team.model_validate(row, from_attributes=True)
        for row in await tenancy.list_teams(db, caller.org_id)
    ]


# --- users -------------------------------------------------------------------------------

users = APIRouter(prefix="/users", tags=["users"])


@users.post("", status_code=status.HTTP_201_CREATED)
async def create_user(
    body: Annotated[UserCreate, Storable], caller: AdminDep, db: DatabaseDep
) -> User:
    """Register a person by their JWT `sub`; their role here overrides their tokens' claim."""
    row = await tenancy.create_user(db, caller.org_id, body.subject, body.role, body.team_id)
    return User.model_validate(row, from_attributes=True)


@users.get("")
async def list_users(caller: AdminDep, db: DatabaseDep) -> list[User]:
    return [
        User.model_validate(row, from_attributes=True)
        for row in await tenancy.list_users(db, caller.org_id)
    ]


@users.patch("/{user_id}")
async def update_user(
    user_id: Text, body: Annotated[UserUpdate, Storable], caller: AdminDep, db: DatabaseDep
) -> User:
    """Change a user's role (effective on their next request) or team."""
    sent = body.model_fields_set
    try:
        row = await tenancy.update_user(
            db,
            caller.org_id,
            user_id,
            role=body.role if body.role is not None else KEEP,
            team_id=body.team_id if "team_id" in sent else KEEP,
        )
    except TenancyNotFound as exc:
        raise not_found(exc) from None
    return User.model_validate(row, from_attributes=True)


router = APIRouter()
for resource in (orgs, keys, teams, users):
    router.include_router(resource)
