"""Who may call the API and how much: operator token, API keys, JWTs, roles, tenants, rate limits.

Everything goes over real HTTP to the app served by uvicorn on loopback, with PostgreSQL
behind it; runs used to check roles are real `GoalWorkflow`s on the Temporal dev server.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from temporalio.client import Client

from core.contracts import RunStatus, workflow_id_for
from core.infrastructure.temporal import start_run
from core.persistence import storage
from core.persistence.db import Database
from core.persistence.tenancy import OrgRole, create_key, create_org
from tests.api_harness import (
    ApiHarness,
    Tenant,
    api_settings,
    assert_json_error,
    serving_api,
    token,
)
from tests.helpers import TEMPLATES, make_plan, spend, wait_until

OPERATOR = {"Authorization": "Bearer operator-token"}


# --- the operator and an organization's keys --------------------------------------------


async def test_the_operator_creates_an_org_whose_admin_key_manages_keys(api: ApiHarness) -> None:
    http = api.http()
    body = {"name": "acme", "monthly_token_limit": 1000}
    assert_json_error(await http.post("/orgs", json=body), 401, "operator token")
    wrong = {"Authorization": "Bearer not-the-operator-token"}
    assert_json_error(await http.post("/orgs", json=body, headers=wrong), 401)

    created = await http.post("/orgs", json=body, headers=OPERATOR)
    assert created.status_code == 201, created.text
    org, first = created.json()["org"], created.json()["admin_key"]
    assert org["id"].startswith("org_") and org["name"] == "acme"
    assert (org["monthly_token_limit"], org["monthly_cost_limit_usd"]) == (1000, None)
    assert first["role"] == "admin" and first["secret"].startswith(f"orch_{first['prefix']}_")
    assert "key_hash" not in first
    assert_json_error(await http.post("/orgs", json=body, headers=OPERATOR), 400, "already exists")

    admin = api.http({"X-API-Key": first["secret"]})
    me = (await admin.get("/orgs/me")).json()
    assert (me["id"], me["name"], me["monthly_token_limit"]) == (org["id"], "acme", 1000)
    assert me["month"]["tokens"] == 0 and me["month"]["remaining_tokens"] == 1000
    assert me["month"]["remaining_cost_usd"] is None

    issued = await admin.post("/keys", json={"name": "dashboard", "role": "viewer"})
    assert issued.status_code == 201, issued.text
    viewer = issued.json()
    assert viewer["role"] == "viewer" and viewer["last_used_at"] is None

    listing = await admin.get("/keys")
    assert listing.status_code == 200
    assert first["secret"] not in listing.text and viewer["secret"] not in listing.text
    keys = {k["id"]: k for k in listing.json()}
    assert set(keys) == {first["id"], viewer["id"]}
    assert all(set(k) >= {"prefix", "name", "role", "created_at"} for k in keys.values())
    assert not any({"secret", "key_hash"} & set(k) for k in keys.values())
    assert keys[first["id"]]["last_used_at"] is not None
    assert keys[viewer["id"]]["last_used_at"] is None

    # The viewer key reads, and its use is recorded; administration is for admins only.
    as_viewer = api.http({"X-API-Key": viewer["secret"]})
    assert (await as_viewer.get("/orgs/me")).status_code == 200
    assert_json_error(await as_viewer.get("/keys"), 403, "admin")
    assert_json_error(await as_viewer.post("/keys", json={"name": "x"}), 403, "admin")
    used = {k["id"]: k for k in (await admin.get("/keys")).json()}[viewer["id"]]
    assert used["last_used_at"] is not None and used["revoked_at"] is None

    # Bearer works for keys too; a revoked key is refused from the next request on.
    bearer = api.http({"Authorization": f"Bearer {viewer['secret']}"})
    assert (await bearer.get("/orgs/me")).status_code == 200
    revoked = await admin.delete(f"/keys/{viewer['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert_json_error(await as_viewer.get("/orgs/me"), 401, "revoked")
    assert_json_error(await bearer.get("/orgs/me"), 401, "revoked")
    assert_json_error(await admin.delete("/keys/key_nope"), 404, "no API key")


async def test_without_an_operator_token_creating_orgs_is_off(
    postgres_db: Database, dev_client: Client
) -> None:
    settings = api_settings(ORCHESTRATOR_ADMIN_TOKEN=None)
    async with serving_api(postgres_db, dev_client, settings, with_workers=False) as api:
        refused = await api.http().post("/orgs", json={"name": "acme"}, headers=OPERATOR)
    assert_json_error(refused, 403, "ORCHESTRATOR_ADMIN_TOKEN is not set")


async def test_requests_without_valid_credentials_get_401_with_a_json_body(
    api: ApiHarness,
) -> None:
    http = api.http()
    for path in ("/orgs/me", "/keys", "/users"):
        response = await http.get(path)
        assert_json_error(response, 401, "missing credentials")
        assert response.headers["www-authenticate"] == "Bearer"
    for headers in (
        {"X-API-Key": "not-a-key"},
        {"X-API-Key": "orch_000000000000_guess"},
        {"Authorization": "Bearer orch_000000000000_guess"},
    ):
        assert_json_error(await http.get("/orgs/me", headers=headers), 401, "invalid")


async def test_another_tenant_can_neither_see_nor_revoke_keys_or_users(api: ApiHarness) -> None:
    ours, theirs = await api.tenant(), await api.tenant()
    mine, other = api.http(ours.headers), api.http(theirs.headers)
    key = (await mine.post("/keys", json={"name": "ci", "role": "member"})).json()
    user = (await mine.post("/users", json={"subject": "carol", "role": "member"})).json()
    team = (await mine.post("/teams", json={"name": "platform"})).json()

    their_keys = (await other.get("/keys")).json()
    assert key["id"] not in {k["id"] for k in their_keys}
    assert {k["prefix"] for k in their_keys} == {theirs.key.row.prefix}
    assert (await other.get("/users")).json() == []
    assert (await other.get("/teams")).json() == []
    assert_json_error(await other.delete(f"/keys/{key['id']}"), 404, "no API key")
    assert_json_error(await other.delete(f"/keys/{ours.key.row.id}"), 404)
    hijack = await other.patch(f"/users/{user['id']}", json={"role": "admin"})
    assert_json_error(hijack, 404, "no user")
    borrowed = await other.post("/users", json={"subject": "dave", "team_id": team["id"]})
    assert_json_error(borrowed, 400, "no team")

    # Nothing of ours changed: both keys still work, carol is still a member.
    assert (await mine.get("/orgs/me")).json()["id"] == ours.org_id
    assert (await api.http({"X-API-Key": key["secret"]}).get("/orgs/me")).status_code == 200
    assert [u["role"] for u in (await mine.get("/users")).json()] == ["member"]


# --- JWTs ------------------------------------------------------------------------------


async def test_jwts_are_verified_signature_expiry_issuer_and_audience(api: ApiHarness) -> None:
    tenant = await api.tenant()
    http = api.http()
    good = await http.get("/orgs/me", headers=token(tenant.org_id))
    assert good.status_code == 200, good.text
    assert good.json()["id"] == tenant.org_id

    refusals = {
        "expired": token(tenant.org_id, expires_in=-60),
        "signature": token(tenant.org_id, key="another-secret-of-at-least-32-bytes!!"),
        "audience": token(tenant.org_id, aud="someone-else"),
        "issuer": token(tenant.org_id, iss="https://evil.test"),
        "exp": token(tenant.org_id, exp=None),
        "unknown organization": token("org_nope"),
        "role": token(tenant.org_id, role="superuser"),
        "not enough segments": {"Authorization": "Bearer not.a-jwt"},
    }
    for fragment, headers in refusals.items():
        assert_json_error(await http.get("/orgs/me", headers=headers), 401, fragment)
    unsigned = jwt.encode(
        {"sub": "a", "org": tenant.org_id, "exp": int(time.time()) + 60}, None, algorithm="none"
    )
    refused = await http.get("/orgs/me", headers={"Authorization": f"Bearer {unsigned}"})
    assert_json_error(refused, 401, "invalid token")


async def test_roles_come_from_the_jwt_claim_unless_a_user_row_says_otherwise(
    api: ApiHarness,
) -> None:
    tenant = await api.tenant()
    admin = api.http(tenant.headers)
    plan = make_plan(template=str(TEMPLATES / "approval.yaml"), tenant=tenant.org_id)
    await storage.record_run_started(api.db, plan, workflow_id_for(plan.run_id))
    handle = await start_run(api.temporal, plan)
    decide = f"/runs/{plan.run_id}/decisions/approval"

    async def waiting() -> bool:
        return bool((await admin.get(f"/runs/{plan.run_id}/decisions")).json())

    await wait_until(waiting)
    http = api.http()
    approve = {"decision": "approve", "comment": "ok"}
    viewer_key = await api.key(tenant, OrgRole.VIEWER)
    assert_json_error(await http.post(decide, json=approve, headers=viewer_key), 403, "viewer")
    assert_json_error(await http.post(decide, json=approve), 401)

    # alice's token says viewer: refused; a user row making her a member overrides it.
    alice = token(tenant.org_id, "alice", role="viewer")
    assert_json_error(await http.post(decide, json=approve, headers=alice), 403, "viewer")
    created = await admin.post("/users", json={"subject": "alice", "role": "member"})
    assert created.status_code == 201, created.text
    accepted = await http.post(decide, json=approve, headers=alice)
    assert accepted.status_code == 202, accepted.text
    final = await handle.result()
    assert final.status == RunStatus.COMPLETED
    assert final.task("approval").verdicts[-1].decided_by.endswith("jwt:alice")

    # bob's token says admin, his row says viewer: the row wins, until an admin changes it.
    bob = token(tenant.org_id, "bob", role="admin")
    assert (await http.get("/keys", headers=bob)).status_code == 200
    row = (await admin.post("/users", json={"subject": "bob", "role": "viewer"})).json()
    assert_json_error(await http.get("/keys", headers=bob), 403, "admin")
    promoted = await admin.patch(f"/users/{row['id']}", json={"role": "admin"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    assert (await http.get("/keys", headers=bob)).status_code == 200
    # No role claim and no row: a member.
    carol = token(tenant.org_id, "carol")
    assert_json_error(await http.get("/keys", headers=carol), 403, "admin")
    assert (await http.get("/orgs/me", headers=carol)).status_code == 200


async def test_a_viewer_cannot_start_a_run(api: ApiHarness) -> None:
    tenant = await api.tenant()
    http = api.http()
    body = {"goal": "Build a todo API"}
    viewer_key = await api.key(tenant, OrgRole.VIEWER)
    assert_json_error(await http.post("/runs", json=body, headers=viewer_key), 403, "viewer")
    viewer_jwt = token(tenant.org_id, "vera", role="viewer")
    assert_json_error(await http.post("/runs", json=body, headers=viewer_jwt), 403, "viewer")
    assert_json_error(await http.post("/runs", json=body), 401)


async def test_rs256_tokens_verify_with_the_configured_public_key(
    postgres_db: Database, dev_client: Client, tmp_path: Path
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    pem_file = tmp_path / "jwt.pem"
    pem_file.write_text(pem)
    org = await create_org(postgres_db, "rsa-org")
    for configured in (pem, str(pem_file)):
        settings = api_settings(JWT_PUBLIC_KEY=configured, JWT_SECRET=None)
        async with serving_api(postgres_db, dev_client, settings, with_workers=False) as api:
            http = api.http()
            good = token(org.id, "rosa", role="admin", key=private, algorithm="RS256")
            me = await http.get("/orgs/me", headers=good)
            assert me.status_code == 200, me.text
            assert (await http.get("/keys", headers=good)).status_code == 200
            forged = token(org.id, "rosa", key=impostor, algorithm="RS256")
            assert_json_error(await http.get("/orgs/me", headers=forged), 401, "signature")
            hs256 = token(org.id, "rosa", key="test-jwt-secret-of-at-least-32-bytes!")
            assert_json_error(await http.get("/orgs/me", headers=hs256), 401, "invalid token")
    unreadable = api_settings(JWT_PUBLIC_KEY=str(tmp_path / "missing.pem"), JWT_SECRET=None)
    async with serving_api(postgres_db, dev_client, unreadable, with_workers=False) as api:
        good = token(org.id, "rosa", key=private, algorithm="RS256")
        response = await api.http(good).get("/orgs/me")
    assert_json_error(response, 500, "JWT_PUBLIC_KEY file cannot be read")


# --- rate limits -------------------------------------------------------------------------


async def test_the_fourth_request_in_a_minute_gets_429_with_retry_after(
    postgres_db: Database, dev_client: Client
) -> None:
    org = await create_org(postgres_db, "busy")
    first = await create_key(postgres_db, org.id, "one", OrgRole.ADMIN)
    second = await create_key(postgres_db, org.id, "two", OrgRole.ADMIN)
    settings = api_settings(RATE_LIMIT_PER_MINUTE=3)
    async with serving_api(postgres_db, dev_client, settings, with_workers=False) as api:
        http = api.http({"X-API-Key": first.secret})
        for _ in range(3):
            assert (await http.get("/orgs/me")).status_code == 200
        limited = await http.get("/orgs/me")
        assert_json_error(limited, 429, "rate limit of 3 requests per minute")
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        # Each key (or JWT subject) has its own bucket.
        assert (await http.get("/keys", headers={"X-API-Key": second.secret})).status_code == 200
        as_alice = api.http(token(org.id, "alice"))
        for _ in range(3):
            assert (await as_alice.get("/orgs/me")).status_code == 200
        assert_json_error(await as_alice.get("/orgs/me"), 429, "rate limit")

        # Guessing the operator token is throttled too.
        guess = {"Authorization": "Bearer guess"}
        operator = api.http()
        for _ in range(3):
            assert (
                await operator.post("/orgs", json={"name": "x"}, headers=guess)
            ).status_code == 401
        assert_json_error(await operator.post("/orgs", json={"name": "x"}, headers=OPERATOR), 429)

    unlimited = api_settings(RATE_LIMIT_PER_MINUTE=0)
    async with serving_api(postgres_db, dev_client, unlimited, with_workers=False) as api:
        http = api.http({"X-API-Key": first.secret})
        for _ in range(10):
            assert (await http.get("/orgs/me")).status_code == 200


async def test_the_same_jwt_subject_in_two_organizations_has_two_buckets(
    postgres_db: Database, dev_client: Client
) -> None:
    ours, theirs = await create_org(postgres_db, "ours"), await create_org(postgres_db, "theirs")
    settings = api_settings(RATE_LIMIT_PER_MINUTE=3)
    async with serving_api(postgres_db, dev_client, settings, with_workers=False) as api:
        alice_here, alice_there = api.http(token(ours.id)), api.http(token(theirs.id))
        for _ in range(3):
            assert (await alice_here.get("/orgs/me")).status_code == 200
        assert_json_error(await alice_here.get("/orgs/me"), 429, "rate limit")
        for _ in range(3):
            mine = await alice_there.get("/orgs/me")
            assert mine.status_code == 200 and mine.json()["id"] == theirs.id
        assert_json_error(await alice_there.get("/orgs/me"), 429, "rate limit")


async def test_failed_authentications_throttle_the_address_for_one_window(
    postgres_db: Database, dev_client: Client
) -> None:
    org = await create_org(postgres_db, "guessed")
    good = await create_key(postgres_db, org.id, "good", OrgRole.ADMIN)
    window = 3
    settings = api_settings(
        AUTH_FAILURE_LIMIT=5,
        AUTH_FAILURE_WINDOW_SECONDS=window,
        PAYLOAD_ENCRYPTION_KEY="k1:" + "A" * 43,
    )
    wrong_key = {"X-API-Key": "orch_000000000000_guess"}
    guesses = [  # every door that checks a credential counts its failures
        ("GET", "/orgs/me", wrong_key, 401),
        ("GET", "/orgs/me", token(org.id, key="not-the-secret-but-long-enough-for-hs256"), 401),
        ("POST", "/orgs", {"Authorization": "Bearer guess"}, 401),
        ("GET", "/metrics", {"Authorization": "Bearer guess"}, 200),  # without tenant figures
        ("POST", "/codec/decode", wrong_key, 401),
    ]
    async with serving_api(postgres_db, dev_client, settings, with_workers=False) as api:
        http = api.http()
        answers, refusals = [], []
        for attempt in range(60):
            method, path, headers, refusal = guesses[attempt % len(guesses)]
            body: dict[str, Any] = {"payloads": []} if path.startswith("/codec") else {"name": "x"}
            sent = await http.request(
                method, path, headers=headers, json=body if method == "POST" else None
            )
            answers.append(sent.status_code)
            refusals.append(refusal)
        assert answers == refusals[:5] + [429] * 55
        limited = await http.get("/orgs/me", headers=wrong_key)
        assert_json_error(limited, 429, "5 failed authentications from this address in 3 s")
        assert 1 <= int(limited.headers["retry-after"]) <= window

        # Right credentials from that address learn nothing while it is refused...
        assert (await http.get("/orgs/me", headers={"X-API-Key": good.secret})).status_code == 429
        assert (await http.post("/orgs", json={"name": "x"}, headers=OPERATOR)).status_code == 429
        # ...while other addresses are not affected,
        elsewhere = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(base_url=api.base_url, transport=elsewhere) as other:
            other_answer = await other.get("/orgs/me", headers={"X-API-Key": good.secret})
            assert other_answer.status_code == 200
        # ...and once the failures are a window old, the address is served again.
        await asyncio.sleep(window + 0.5)
        assert (await http.get("/orgs/me", headers={"X-API-Key": good.secret})).status_code == 200
        assert (await http.get("/orgs/me")).status_code == 401  # no credentials: no guess


# --- budgets, teams and users ------------------------------------------------------------


async def test_an_admin_sets_the_monthly_budget_and_sees_what_remains(api: ApiHarness) -> None:
    tenant = await api.tenant(monthly_cost_limit_usd=5.0)
    admin = api.http(tenant.headers)
    await spend(api.db, tenant.org_id, "r1", 0, tokens=400, cost=1.25)
    month = (await admin.get("/orgs/me")).json()["month"]
    assert (month["tokens"], month["cost_usd"]) == (400, 1.25)
    assert (month["remaining_tokens"], month["remaining_cost_usd"]) == (None, 3.75)

    member = api.http(await api.key(tenant, OrgRole.MEMBER))
    refused = await member.patch("/orgs/me/budget", json={"monthly_token_limit": 10})
    assert_json_error(refused, 403, "admin")

    changed = await admin.patch("/orgs/me/budget", json={"monthly_token_limit": 1000})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["monthly_token_limit"], body["monthly_cost_limit_usd"]) == (1000, 5.0)
    assert body["month"]["remaining_tokens"] == 600
    cleared = (await admin.patch("/orgs/me/budget", json={"monthly_cost_limit_usd": None})).json()
    assert (cleared["monthly_token_limit"], cleared["monthly_cost_limit_usd"]) == (1000, None)
    assert cleared["month"]["remaining_cost_usd"] is None
    under = (await admin.patch("/orgs/me/budget", json={"monthly_token_limit": 100})).json()
    assert under["month"]["remaining_tokens"] == 0
    assert_json_error(await admin.patch("/orgs/me/budget", json={}), 422, "nothing to change")
    negative = await admin.patch("/orgs/me/budget", json={"monthly_token_limit": -1})
    assert negative.status_code == 422
    assert (await member.get("/orgs/me")).json()["monthly_token_limit"] == 100


async def test_an_admin_manages_teams_and_users(api: ApiHarness) -> None:
    tenant: Tenant = await api.tenant()
    admin = api.http(tenant.headers)
    team = await admin.post("/teams", json={"name": "  platform "})
    assert team.status_code == 201 and team.json()["name"] == "platform"
    team_id = team.json()["id"]
    assert_json_error(await admin.post("/teams", json={"name": "platform"}), 400, "already exists")
    assert [t["id"] for t in (await admin.get("/teams")).json()] == [team_id]

    made = await admin.post(
        "/users", json={"subject": "dora", "role": "viewer", "team_id": team_id}
    )
    assert made.status_code == 201, made.text
    user = made.json()
    assert (user["subject"], user["role"], user["team_id"]) == ("dora", "viewer", team_id)
    again = await admin.post("/users", json={"subject": "dora"})
    assert_json_error(again, 400, "already exists")
    assert (await admin.post("/users", json={"subject": "eve", "role": "owner"})).status_code == 422
    assert_json_error(
        await admin.post("/users", json={"subject": "eve", "team_id": "team_nope"}), 400, "no team"
    )

    moved = await admin.patch(f"/users/{user['id']}", json={"team_id": None})
    assert moved.status_code == 200
    assert (moved.json()["team_id"], moved.json()["role"]) == (None, "viewer")
    assert_json_error(await admin.patch(f"/users/{user['id']}", json={"role": None}), 422, "role")
    assert_json_error(await admin.patch("/users/user_nope", json={"role": "admin"}), 404)
    assert [u["subject"] for u in (await admin.get("/users")).json()] == ["dora"]

    member = api.http(await api.key(tenant, OrgRole.MEMBER))
    for response in (
        await member.get("/users"),
        await member.get("/teams"),
        await member.post("/teams", json={"name": "rogue"}),
        await member.patch(f"/users/{user['id']}", json={"role": "admin"}),
    ):
        assert_json_error(response, 403, "admin")
