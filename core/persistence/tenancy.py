"""Organizations, their API keys and their spending: the tenancy every request runs inside.

API keys look like `orch_<prefix>_<secret>`. Only the SHA-256 of the whole key is stored
(the key is 256 random bits, so a slow hash would add nothing); the prefix finds the row.

The API verifies keys through `core.persistence.key_cache.KeyCache`, which reads a key's
row once every few seconds and writes its `last_used_at` at most once a minute.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import TypeVar

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from core.persistence.db import ApiKey, Database, LedgerEntry, Organization, Team, User, utcnow

KEY_SCHEME = "orch"


class OrgRole(StrEnum):
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


class TenancyError(ValueError):
    """A tenancy request that cannot apply; the message names the problem."""


def new_id(kind: str) -> str:
    """Unguessable ids (128 random bits), typed by a readable prefix."""
    return f"{kind}_{secrets.token_hex(16)}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    """A key as created: `secret` is the whole key, shown once and never stored."""

    row: ApiKey
    secret: str


async def create_org(
    db: Database,
    name: str,
    *,
    monthly_token_limit: int | None = None,
    monthly_cost_limit_usd: float | None = None,
) -> Organization:
    async with db.session() as session:
        taken = await session.execute(select(Organization).where(Organization.name == name))
        if taken.first() is not None:
            raise TenancyError(f"an organization named {name!r} already exists")
        org = Organization(
            id=new_id("org"),
            name=name,
            monthly_token_limit=monthly_token_limit,
            monthly_cost_limit_usd=monthly_cost_limit_usd,
        )
        session.add(org)
        await session.commit()
        await session.refresh(org)
        return org


async def get_org(db: Database, org_ref: str) -> Organization:
    """By id or by name."""
    async with db.session() as session:
        org = await session.get(Organization, org_ref)
        if org is None:
            found = await session.execute(select(Organization).where(Organization.name == org_ref))
            org = found.scalars().first()
        if org is None:
            raise TenancyError(f"no organization {org_ref!r}")
        return org


async def create_key(db: Database, org_id: str, name: str, role: OrgRole) -> IssuedKey:
    prefix = secrets.token_hex(6)
    secret = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        id=new_id("key"),
        org_id=org_id,
        name=name,
        role=role.value,
        prefix=prefix,
        key_hash=hash_key(secret),
    )
    async with db.session() as session:
        session.add(row)
        await session.commit()
        await session.refresh(row)
    return IssuedKey(row=row, secret=secret)


async def live_key_row(session: AsyncSession, presented: str) -> ApiKey | None:
    """The key row a presented key matches, if it is not revoked; else None (no write)."""
    parts = presented.split("_")
    if len(parts) < 3 or parts[0] != KEY_SCHEME:
        return None
    found = await session.execute(select(ApiKey).where(ApiKey.prefix == parts[1]))
    row = found.scalars().first()
    if row is None or row.revoked_at is not None:
        return None
    return row if hmac.compare_digest(row.key_hash, hash_key(presented)) else None


async def verify_key(db: Database, presented: str) -> ApiKey | None:
    """The live key row for a presented key, with its last-used time updated; else None."""
    async with db.session() as session:
        row = await live_key_row(session, presented)
        if row is None:
            return None
        row.last_used_at = utcnow()
        session.add(row)
        await session.commit()
        await session.refresh(row)
        return row


async def list_keys(db: Database, org_id: str) -> list[ApiKey]:
    async with db.session() as session:
        found = await session.execute(
            select(ApiKey).where(ApiKey.org_id == org_id).order_by(col(ApiKey.created_at))
        )
        return list(found.scalars())


async def revoke_key(db: Database, key_id: str, org_id: str | None = None) -> ApiKey:
    """Revoke a key; with `org_id`, only a key of that organization (else: not found)."""
    async with db.session() as session:
        row = await session.get(ApiKey, key_id)
        if row is None or (org_id is not None and row.org_id != org_id):
            raise TenancyNotFound(f"no API key {key_id!r}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            session.add(row)
            await session.commit()
            await session.refresh(row)
        return row


# --- spending -------------------------------------------------------------------------


@dataclass(frozen=True)
class Spending:
    tokens: int
    cost_usd: float


def month_start(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def tenant_spending(db: Database, tenant: str, since: datetime | None = None) -> Spending:
    """Input + output tokens and cost of a tenant's model calls since the month began."""
    since = since or month_start()
    async with db.session() as session:
        row = (
            await session.execute(
                select(
                    func.coalesce(
                        func.sum(LedgerEntry.input_tokens + LedgerEntry.output_tokens), 0
                    ),
                    func.coalesce(func.sum(LedgerEntry.cost_usd), 0.0),
                ).where(
                    LedgerEntry.tenant == tenant,
                    col(LedgerEntry.created_at) >= since,
                )
            )
        ).one()
    return Spending(tokens=int(row[0]), cost_usd=float(row[1]))


async def run_spending(db: Database, workflow_id: str) -> Spending:
    async with db.session() as session:
        row = (
            await session.execute(
                select(
                    func.coalesce(
                        func.sum(LedgerEntry.input_tokens + LedgerEntry.output_tokens), 0
                    ),
                    func.coalesce(func.sum(LedgerEntry.cost_usd), 0.0),
                ).where(LedgerEntry.workflow_id == workflow_id)
            )
        ).one()
    return Spending(tokens=int(row[0]), cost_usd=float(row[1]))


async def budget_problem(
    db: Database,
    *,
    tenant: str,
    workflow_id: str,
    run_tokens: int | None,
    run_usd: float | None,
) -> str | None:
    """Why no more may be spent on this run (run limit or tenant's month), or None."""
    if run_tokens is not None or run_usd is not None:
        spent = await run_spending(db, workflow_id)
        if run_tokens is not None and spent.tokens >= run_tokens:
            return f"run token budget spent: {spent.tokens} of {run_tokens} tokens"
        if run_usd is not None and spent.cost_usd >= run_usd:
            return f"run cost budget spent: ${spent.cost_usd:.4f} of ${run_usd:.4f}"
    async with db.session() as session:
        org = await session.get(Organization, tenant)
    if org is None or (org.monthly_token_limit is None and org.monthly_cost_limit_usd is None):
        return None
    month = await tenant_spending(db, tenant)
    if org.monthly_token_limit is not None and month.tokens >= org.monthly_token_limit:
        return (
            f"monthly token budget of {org.name} spent: "
            f"{month.tokens} of {org.monthly_token_limit} tokens"
        )
    if org.monthly_cost_limit_usd is not None and month.cost_usd >= org.monthly_cost_limit_usd:
        return (
            f"monthly cost budget of {org.name} spent: "
            f"${month.cost_usd:.4f} of ${org.monthly_cost_limit_usd:.4f}"
        )
    return None


# --- administration: budgets, teams, users --------------------------------------------


class TenancyNotFound(TenancyError):
    """The object does not exist in the organization asked about (another tenant's counts)."""


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP
"""An update argument left as it is (None would clear it)."""


async def _commit_unique(session: AsyncSession, conflict: str) -> None:
    """Commit; a unique constraint lost to a concurrent writer becomes `conflict`."""
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise TenancyError(conflict) from None


async def update_org_limits(
    db: Database,
    org_id: str,
    *,
    monthly_token_limit: int | _Keep | None = KEEP,
    monthly_cost_limit_usd: float | _Keep | None = KEEP,
) -> Organization:
    """Set or (with None) remove an organization's monthly limits; KEEP leaves one alone."""
    async with db.session() as session:
        org = await session.get(Organization, org_id)
        if org is None:
            raise TenancyNotFound(f"no organization {org_id!r}")
        if monthly_token_limit is not KEEP:
            org.monthly_token_limit = monthly_token_limit
        if monthly_cost_limit_usd is not KEEP:
            org.monthly_cost_limit_usd = monthly_cost_limit_usd
        session.add(org)
        await session.commit()
        await session.refresh(org)
        return org


OrgRow = TypeVar("OrgRow", Team, User)


async def create_team(db: Database, org_id: str, name: str) -> Team:
    conflict = f"a team named {name!r} already exists"
    async with db.session() as session:
        taken = await session.execute(select(Team).where(Team.org_id == org_id, Team.name == name))
        if taken.first() is not None:
            raise TenancyError(conflict)
        team = Team(id=new_id("team"), org_id=org_id, name=name)
        session.add(team)
        await _commit_unique(session, conflict)
        await session.refresh(team)
        return team


async def list_teams(db: Database, org_id: str) -> list[Team]:
    return await _of_org(db, Team, org_id)


async def _of_org(db: Database, table: type[OrgRow], org_id: str) -> list[OrgRow]:
    """An organization's rows of `table`, oldest first."""
    async with db.session() as session:
        found = await session.execute(
            select(table).where(table.org_id == org_id).order_by(col(table.created_at))
        )
        return list(found.scalars())


async def _team_of(session: AsyncSession, org_id: str, team_id: str) -> Team:
    team = await session.get(Team, team_id)
    if team is None or team.org_id != org_id:
        raise TenancyError(f"no team {team_id!r}")
    return team


async def create_user(
    db: Database, org_id: str, subject: str, role: OrgRole, team_id: str | None = None
) -> User:
    """A person known by their JWT `sub`; their row's role overrides the token's claim."""
    conflict = f"a user with subject {subject!r} already exists"
    async with db.session() as session:
        if team_id is not None:
            await _team_of(session, org_id, team_id)
        taken = await session.execute(
            select(User).where(User.org_id == org_id, User.subject == subject)
        )
        if taken.first() is not None:
            raise TenancyError(conflict)
        user = User(
            id=new_id("user"), org_id=org_id, team_id=team_id, subject=subject, role=role.value
        )
        session.add(user)
        await _commit_unique(session, conflict)
        await session.refresh(user)
        return user


async def list_users(db: Database, org_id: str) -> list[User]:
    return await _of_org(db, User, org_id)


async def update_user(
    db: Database,
    org_id: str,
    user_id: str,
    *,
    role: OrgRole | _Keep = KEEP,
    team_id: str | _Keep | None = KEEP,
) -> User:
    """Change a user's role or team (None: no team); another organization's user is not found."""
    async with db.session() as session:
        user = await session.get(User, user_id)
        if user is None or user.org_id != org_id:
            raise TenancyNotFound(f"no user {user_id!r}")
        if role is not KEEP:
            user.role = role.value
        if team_id is not KEEP:
            if team_id is not None:
                await _team_of(session, org_id, team_id)
            user.team_id = team_id
        session.add(user)
        await session.commit()
        await session.refresh(user)
        return user
