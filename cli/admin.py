"""Organizations (tenants) and their API keys, straight to the database: `orgs`, `keys`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from cli.runner import console, run_command
from core.infrastructure.settings import get_settings
from core.persistence import tenancy
from core.persistence.db import get_database
from core.persistence.tenancy import IssuedKey, OrgRole

orgs_app = typer.Typer(help="Organizations (tenants) of the API.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of an organization.", no_args_is_help=True)


def _role(value: str) -> OrgRole:
    try:
        return OrgRole(value.strip().lower())
    except ValueError:
        choices = ", ".join(role.value for role in OrgRole)
        raise ValueError(f"unknown role {value!r}: choose one of {choices}") from None


def _at(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def _print_secret(issued: IssuedKey) -> None:
    console.print(
        f"{issued.row.role} key {issued.row.id} ({issued.row.name}), shown once; store it now:",
        highlight=False,
    )
    console.print(issued.secret, markup=False, highlight=False)


@orgs_app.command("create")
def orgs_create(
    name: Annotated[str, typer.Argument(help="The organization's unique name.")],
    monthly_tokens: Annotated[
        int | None,
        typer.Option("--monthly-tokens", help="Input + output tokens per calendar month."),
    ] = None,
    monthly_cost_usd: Annotated[
        float | None, typer.Option("--monthly-cost-usd", help="Model cost per calendar month.")
    ] = None,
) -> None:
    """Create an organization and its first admin API key (the key is printed once)."""

    async def create() -> int:
        if not name.strip():
            raise ValueError("organization name is empty")
        if (monthly_tokens is not None and monthly_tokens < 0) or (
            monthly_cost_usd is not None and monthly_cost_usd < 0
        ):
            raise ValueError("monthly limits cannot be negative")
        db = get_database(get_settings().storage.resolved_database_url)
        org = await tenancy.create_org(
            db,
            name.strip(),
            monthly_token_limit=monthly_tokens,
            monthly_cost_limit_usd=monthly_cost_usd,
        )
        issued = await tenancy.create_key(db, org.id, "first admin key", OrgRole.ADMIN)
        console.print(f"organization {org.name}: {org.id}", highlight=False)
        _print_secret(issued)
        return 0

    run_command(create())


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Option("--org", help="Organization id or name.")],
    role: Annotated[str, typer.Option("--role", help="admin, member or viewer.")] = "member",
    name: Annotated[str | None, typer.Option("--name", help="What the key is for.")] = None,
) -> None:
    """Issue an API key (the key is printed once: only its hash is stored)."""

    async def create() -> int:
        chosen = _role(role)
        db = get_database(get_settings().storage.resolved_database_url)
        found = await tenancy.get_org(db, org)
        label = (name or "").strip() or f"{chosen.value} key"
        _print_secret(await tenancy.create_key(db, found.id, label, chosen))
        return 0

    run_command(create())


@keys_app.command("list")
def keys_list(
    org: Annotated[str, typer.Option("--org", help="Organization id or name.")],
) -> None:
    """List an organization's keys: never the key itself."""

    async def show() -> int:
        db = get_database(get_settings().storage.resolved_database_url)
        found = await tenancy.get_org(db, org)
        rows = await tenancy.list_keys(db, found.id)
        if not rows:
            console.print(f"organization {found.name} has no API keys", highlight=False)
            return 0
        console.print(
            f"{'ID':<36}  {'PREFIX':<12}  {'ROLE':<6}  {'CREATED':<20}  {'LAST USED':<20}  "
            f"{'REVOKED':<20}  NAME",
            highlight=False,
        )
        for row in rows:
            console.print(
                f"{row.id:<36}  {row.prefix:<12}  {row.role:<6}  {_at(row.created_at):<20}  "
                f"{_at(row.last_used_at):<20}  {_at(row.revoked_at):<20}  {row.name}",
                markup=False,
                highlight=False,
            )
        return 0

    run_command(show())


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (`orchestrator keys list`).")],
) -> None:
    """Revoke an API key: from its next request on it is refused (401)."""

    async def revoke() -> int:
        db = get_database(get_settings().storage.resolved_database_url)
        row = await tenancy.revoke_key(db, key_id)
        console.print(
            f"key {row.id} ({row.name}) of {row.org_id} revoked at {_at(row.revoked_at)}",
            highlight=False,
        )
        return 0

    run_command(revoke())
