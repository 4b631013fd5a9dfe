"""No request answers 500, hangs, or holds up other tenants: hostile input over real HTTP.

Each class of input here once answered a 500 or stalled the server: NUL characters and
lone surrogates, moments outside Python's years, integers past 32 bits, non-finite
numbers, deep nesting, and sheer size. Each must get a JSON 4xx naming the problem
without quoting the value back, and quickly.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from core.contracts import RunPlan, workflow_id_for
from core.persistence import storage
from core.persistence.db import Database, WebhookDelivery
from tests.api_harness import ApiHarness, Tenant, api_settings, serving_api

GOAL = "Build a bookstore inventory API"
INT32_PAST = 2**31
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
async def edge_api(postgres_url: str, dev_env: WorkflowEnvironment) -> AsyncIterator[ApiHarness]:
    """One server for the module; nothing here gets as far as a worker."""
    db = Database(postgres_url)
    async with serving_api(db, dev_env.client, api_settings(), with_workers=False) as harness:
        yield harness
    await db.dispose()


@dataclass
class World:
    tenant: Tenant
    http: httpx.AsyncClient
    run_id: str
    """A run of the tenant (a row only: refusals come before any workflow is asked)."""
    subscription_id: str
    delivery_id: int


@pytest.fixture(scope="module")
async def world(edge_api: ApiHarness) -> World:
    tenant = await edge_api.tenant()
    http = edge_api.http(tenant.headers)
    run_id = uuid.uuid4().hex
    plan = RunPlan(run_id=run_id, goal=GOAL, template="sdlc", tasks=[], tenant=tenant.org_id)
    await storage.record_run_started(edge_api.db, plan, workflow_id_for(run_id))
    created = await http.post("/webhooks", json={"url": "http://127.0.0.1:9/hook"})
    assert created.status_code == 201, created.text
    delivery = WebhookDelivery(
        subscription_id=created.json()["id"],
        org_id=tenant.org_id,
        run_id=run_id,
        event_seq=1,
        event_type="run.started",
        ok=True,
        status_code=200,
    )
    async with edge_api.db.session() as session:
        session.add(delivery)
        await session.commit()
        await session.refresh(delivery)
    assert delivery.id is not None
    return World(tenant, http, run_id, created.json()["id"], delivery.id)


def assert_refused(response: httpx.Response, status: int, *fragments: str) -> None:
    """A JSON error with `detail` naming the problem, the offending value not quoted back."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    detail = json.dumps(response.json()["detail"])
    for fragment in fragments:
        assert fragment.lower() in detail.lower(), detail
    assert "\\u0000" not in response.text and "\\ud800" not in response.text.lower()


def raw(body: str) -> dict[str, Any]:
    """Request arguments for a JSON body written by hand (`NaN`, escapes httpx would not send)."""
    return {"content": body.encode(), "headers": JSON}


Call = Callable[[World], Awaitable[httpx.Response]]


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


# --- NUL characters and lone surrogates ---------------------------------------------------

STRINGS: dict[str, tuple[Call, str]] = {
    "goal with NUL": (
        lambda w: w.http.post("/runs", json={"goal": "a\x00b"}),
        "goal: must not contain NUL",
    ),
    "goal with a lone surrogate": (
        lambda w: w.http.post("/runs", **raw('{"goal": "a\\ud800b"}')),
        "goal: must be valid Unicode",
    ),
    "template filter with NUL": (
        lambda w: w.http.get("/runs", params={"template": "sd\x00lc"}),
        "must not contain NUL",
    ),
    "run id with NUL": (lambda w: w.http.get("/runs/ab%00cd"), "must not contain NUL"),
    "artifact path with NUL": (
        lambda w: w.http.get(f"/runs/{w.run_id}/artifacts/app%00.py"),
        "must not contain NUL",
    ),
    "gate with NUL": (
        lambda w: w.http.post(
            f"/runs/{w.run_id}/decisions/re%00view", json={"decision": "approve"}
        ),
        "must not contain NUL",
    ),
    "added task with a lone surrogate": (
        lambda w: w.http.post(
            f"/runs/{w.run_id}/tasks",
            **raw('{"id": "extra", "role": "tech_lead", "description": "\\udfff"}'),
        ),
        "unicode",  # pydantic's own check, as the field has a length limit
    ),
    "key id with NUL": (lambda w: w.http.delete("/keys/key%00"), "must not contain NUL"),
    "key name with NUL": (
        lambda w: w.http.post("/keys", json={"name": "ci\x00"}),
        "name: must not contain NUL",
    ),
    "user id with NUL": (
        lambda w: w.http.patch("/users/usr%00", json={"role": "viewer"}),
        "must not contain NUL",
    ),
    "subscription id with NUL": (lambda w: w.http.get("/webhooks/whk%00"), "must not contain NUL"),
    "delivery filter with NUL": (
        lambda w: w.http.get(
            f"/webhooks/{w.subscription_id}/deliveries", params={"run_id": "r\x00"}
        ),
        "must not contain NUL",
    ),
    "inline YAML escaping a NUL": (
        lambda w: w.http.post(
            "/runs/estimate",
            json={
                "goal": GOAL,
                "inline_template": 'name: t\ntasks:\n  - {id: a, role: tech_lead, description: "x\\0"}\n',
            },
        ),
        "tasks.0.description: must not contain NUL",
    ),
    "inline YAML escaping a surrogate": (
        lambda w: w.http.post(
            "/runs/estimate",
            json={
                "goal": GOAL,
                "inline_template": 'name: "t\\ud800"\ntasks:\n  - {id: a, role: tech_lead}\n',
            },
        ),
        "inline_template",  # refused by libyaml itself, or after parsing without it
    ),
    "inline object with a lone surrogate": (
        lambda w: w.http.post(
            "/runs/estimate",
            **raw('{"goal": "g", "inline_template": {"name": "\\ud800", "tasks": []}}'),
        ),
        "inline_template.name: must be valid Unicode",
    ),
    "inline object with a lone surrogate in a key": (
        lambda w: w.http.post(
            "/runs/estimate", **raw('{"goal": "g", "inline_template": {"\\ud800": 1}}')
        ),
        "inline_template: a key must be valid Unicode",
    ),
}


@pytest.mark.parametrize("case", list(STRINGS))
async def test_nul_and_lone_surrogates_are_refused(world: World, case: str) -> None:
    call, fragment = STRINGS[case]
    assert_refused(await call(world), 422, fragment)


# --- moments ------------------------------------------------------------------------------


def cursor(created: str, run_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created, run_id]).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "params",
    [
        {"created_after": "9999-12-31T23:59:59-14:00"},
        {"created_before": "0001-01-01T00:00:00+14:00"},
    ],
)
async def test_filters_past_the_years_python_counts_are_refused(
    world: World, params: dict[str, str]
) -> None:
    assert_refused(await world.http.get("/runs", params=params), 422, "out of range")


async def test_cursors_are_read_as_utc_or_refused(world: World) -> None:
    async def page(token: str) -> httpx.Response:
        return await world.http.get("/runs", params={"cursor": token})

    for hostile in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+01:00"):
        assert_refused(await page(cursor(hostile, "z")), 422, "invalid cursor")
    assert_refused(await page(cursor("2026-01-01T00:00:00+00:00", "r\x00")), 422, "invalid cursor")
    # No offset is UTC, as in the filters: the tenant's run (created now) is older than 9999.
    naive = await page(cursor("9999-12-31T00:00:00", "z"))
    assert naive.status_code == 200, naive.text
    assert [r["id"] for r in naive.json()["runs"]] == [world.run_id]


# --- integers past 32 bits ----------------------------------------------------------------


async def test_integers_past_32_bits_are_served_and_past_64_bits_refused(
    edge_api: ApiHarness, world: World
) -> None:
    deliveries = f"/webhooks/{world.subscription_id}/deliveries"
    listed = await world.http.get(deliveries, params={"before": INT32_PAST})
    assert listed.status_code == 200, listed.text
    assert [d["id"] for d in listed.json()["items"]] == [world.delivery_id]
    assert_refused(await world.http.get(deliveries, params={"before": 2**63}), 422, "before")

    budget = await world.http.patch("/orgs/me/budget", json={"monthly_token_limit": 2**40})
    assert budget.status_code == 200, budget.text
    assert budget.json()["monthly_token_limit"] == 2**40
    assert budget.json()["month"]["remaining_tokens"] == 2**40
    assert (await world.http.get("/orgs/me")).json()["monthly_token_limit"] == 2**40
    too_big = await world.http.patch("/orgs/me/budget", json={"monthly_token_limit": 2**63})
    assert_refused(too_big, 422, "monthly_token_limit")

    operator = edge_api.http({"Authorization": "Bearer operator-token"})
    org = await operator.post(
        "/orgs", json={"name": f"big-{uuid.uuid4().hex[:8]}", "monthly_token_limit": INT32_PAST}
    )
    assert org.status_code == 201, org.text
    assert org.json()["org"]["monthly_token_limit"] == INT32_PAST
    run = await world.http.post("/runs", json={"goal": GOAL, "budget_tokens": 2**64})
    assert_refused(run, 422, "budget_tokens")


# --- numbers that are not finite ----------------------------------------------------------

NOT_FINITE = ["NaN", "-Infinity", "1e999"]


@pytest.mark.parametrize("number", NOT_FINITE)
async def test_non_finite_budgets_are_refused(world: World, number: str) -> None:
    run = await world.http.post("/runs", **raw(f'{{"goal": "g", "budget_usd": {number}}}'))
    assert_refused(run, 422, "budget_usd", "finite")
    month = await world.http.patch(
        "/orgs/me/budget", **raw(f'{{"monthly_cost_limit_usd": {number}}}')
    )
    assert_refused(month, 422, "monthly_cost_limit_usd", "finite")
    assert (await world.http.get("/orgs/me")).json()["monthly_cost_limit_usd"] is None
    raised = await world.http.post(
        f"/runs/{world.run_id}/decisions/budget",
        **raw(f'{{"decision": "raise", "budget_usd": {number}}}'),
    )
    assert_refused(raised, 422, "budget_usd", "finite")
    template = await world.http.post(
        "/runs/estimate",
        **raw(f'{{"goal": "g", "inline_template": {{"name": "t", "x": {number}}}}}'),
    )
    assert_refused(template, 422, "inline_template.x: must be a finite number")


# --- nesting ------------------------------------------------------------------------------


async def test_deep_nesting_is_refused_by_depth_not_by_the_stack(world: World) -> None:
    async def estimate(inline: Any) -> httpx.Response:
        return await world.http.post(
            "/runs/estimate", json={"goal": GOAL, "inline_template": inline}
        )

    assert_refused(await estimate("[" * 5000 + "]" * 5000), 422, "not valid YAML at line 1")
    # Each task depends on the next: a recursive cycle search goes 3000 calls deep at once.
    chain = {
        "name": "chain",
        "tasks": [
            {"id": f"t{i}", "role": "tech_lead", "depends_on": [f"t{i + 1}"] if i < 2999 else []}
            for i in range(3000)
        ],
    }
    assert_refused(await estimate(chain), 422, "at most 200 items")
    assert_refused(await estimate(nested(900)), 422, "nested deeper than 32 levels")
    unparseable = '{"goal": "g", "inline_template": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert_refused(await world.http.post("/runs/estimate", **raw(unparseable)), 400, "body")


# --- size ---------------------------------------------------------------------------------


async def test_a_huge_body_is_refused_at_once_and_holds_up_no_other_tenant(
    edge_api: ApiHarness, world: World
) -> None:
    """A 15 MB template once held the event loop for 17 s, and everyone else with it."""
    other = edge_api.http((await edge_api.tenant()).headers)
    rows = "".join(
        f"  - {{id: t{i}, role: tech_lead, description: {'x' * 140}}}\n" for i in range(90_000)
    )
    huge = f"name: huge\ntasks:\n{rows}"
    assert len(huge) > 15_000_000
    waits: list[float] = []

    async def meanwhile(done: asyncio.Event) -> None:
        while not done.is_set():
            started = time.monotonic()
            assert (await other.get("/runs")).status_code == 200
            waits.append(time.monotonic() - started)
            await asyncio.sleep(0.05)

    done = asyncio.Event()
    pinging = asyncio.create_task(meanwhile(done))
    started = time.monotonic()
    refused = await world.http.post("/runs/estimate", json={"goal": GOAL, "inline_template": huge})
    took = time.monotonic() - started
    done.set()
    await pinging
    assert_refused(refused, 413, "larger than 2097152 bytes")
    assert took < 10, f"the refusal took {took:.1f}s"
    assert waits and max(waits) < 2, f"another tenant waited {max(waits):.1f}s"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):  # 4 MB with no Content-Length: counted as it arrives
            yield b" " * 100_000

    streamed = await world.http.post("/runs/estimate", content=chunks(), headers=JSON)
    assert_refused(streamed, 413, "larger than 2097152 bytes")
    # The codec keeps its own, larger limit: 3 MB of payloads are read (and found wanting).
    codec = await world.http.post("/codec/decode", content=b" " * 3_000_000, headers=JSON)
    assert_refused(codec, 400, "not Payloads JSON")


async def exchange(api: ApiHarness, *pieces: bytes) -> tuple[bytes, dict[str, Any]]:
    """Send `pieces` over a bare connection, a moment apart: the answer's head and JSON body."""
    host, port = api.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.01)
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), answer
    return head, json.loads(body)


async def test_oversized_headers_answer_json_431_however_they_arrive(edge_api: ApiHarness) -> None:
    whole = await edge_api.http().get("/healthz", headers={"X-Filler": "a" * 100_000})
    assert_refused(whole, 431, "at most 16384 are accepted")
    # In pieces, the head outgrows uvicorn's parser buffer before it is complete. 20 kB and
    # no more: writing on after the answer would reset the connection before it is read.
    filler = b"X-Filler: " + b"a" * 4000 + b"\r\n"
    head, body = await exchange(edge_api, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", *[filler] * 5)
    assert head.startswith(b"HTTP/1.1 431 "), head
    assert "larger than 16384 bytes" in body["detail"]


async def test_a_request_that_is_not_http_answers_json(edge_api: ApiHarness) -> None:
    head, body = await exchange(edge_api, b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), head
    assert "not a valid HTTP/1.1 request" in body["detail"]
