"""Keys and budgets on both databases: what the API's auth and the budget pause rely on."""

from __future__ import annotations

from datetime import UTC, datetime

from core.persistence import tenancy
from core.persistence.db import Database
from core.persistence.tenancy import OrgRole
from tests.helpers import spend


async def test_keys_verify_only_while_live_and_never_store_the_secret(any_db: Database) -> None:
    org = await tenancy.create_org(any_db, "acme")
    issued = await tenancy.create_key(any_db, org.id, "ci", OrgRole.MEMBER)
    assert issued.secret.startswith(f"orch_{issued.row.prefix}_")
    assert issued.secret not in {issued.row.key_hash, issued.row.prefix}

    found = await tenancy.verify_key(any_db, issued.secret)
    assert found is not None and found.last_used_at is not None
    assert await tenancy.verify_key(any_db, issued.secret + "x") is None
    assert await tenancy.verify_key(any_db, "orch_nope_nope") is None

    await tenancy.revoke_key(any_db, issued.row.id)
    assert await tenancy.verify_key(any_db, issued.secret) is None


async def test_budgets_count_the_tenants_month_and_the_run(any_db: Database) -> None:
    org = await tenancy.create_org(any_db, "acme", monthly_token_limit=1000)
    await spend(any_db, org.id, "a", 0, 600, 0.6)
    await spend(any_db, "someone-else", "b", 0, 5000, 5.0)

    month = await tenancy.tenant_spending(any_db, org.id)
    assert (month.tokens, month.cost_usd) == (600, 0.6)
    later = datetime.now(UTC).replace(year=datetime.now(UTC).year + 1)
    assert (await tenancy.tenant_spending(any_db, org.id, since=later)).tokens == 0

    def problem(**run: float | None) -> object:
        return tenancy.budget_problem(
            any_db,
            tenant=org.id,
            workflow_id="run-a",
            run_tokens=run.get("tokens"),  # type: ignore[arg-type]
            run_usd=run.get("usd"),
        )

    assert await problem() is None
    assert await problem(tokens=600) == "run token budget spent: 600 of 600 tokens"
    assert await problem(usd=0.5) == "run cost budget spent: $0.6000 of $0.5000"
    await spend(any_db, org.id, "a", 1, 400, 0.4)
    assert await problem() == "monthly token budget of acme spent: 1000 of 1000 tokens"
