"""Webhooks: signatures, the SSRF guard, the subscriptions API, and signed run events
delivered over real HTTP to loopback receivers by real runs on the Temporal dev server."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import pytest
from sqlmodel import select
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.webhooks import WebhookActivities, sign, verify
from core.contracts import (
    WEBHOOK_EVENT_TYPES,
    EventType,
    RunEvent,
    RunState,
    RunStatus,
    WebhookDeliveryInput,
)
from core.persistence.db import Database, WebhookDelivery, WebhookSubscription, utcnow
from core.persistence.tenancy import OrgRole, create_org, new_id
from tests.api_harness import ApiHarness, Tenant, api_settings, serving_api, start_for
from tests.fakes.receivers import WebhookReceiver, verify_signature
from tests.helpers import TEMPLATES, make_plan

ALL_TYPES = sorted(t.value for t in WEBHOOK_EVENT_TYPES)
SECRET = "whsec_test-secret-of-some-length"
BODY = b'{"type": "run.started", "seq": 1}'

# --------------------------------------------------------------------------- signatures


def test_a_signature_verifies_and_matches_the_documented_format() -> None:
    now = int(time.time())
    header = sign(SECRET, now, BODY)
    assert header.startswith(f"t={now},v1=")
    assert verify(SECRET, header, BODY)
    # The receivers' own check, written from the README, agrees with the sender.
    assert verify_signature(SECRET, header, BODY)
    assert verify(SECRET, header.replace(",", ", "), BODY)


def test_a_tampered_body_or_another_secret_fails() -> None:
    header = sign(SECRET, int(time.time()), BODY)
    tampered = BODY.replace(b"run.started", b"run.failed")
    assert not verify(SECRET, header, tampered)
    assert not verify_signature(SECRET, header, tampered)
    assert not verify("another-secret-entirely", header, BODY)
    assert not verify_signature("another-secret-entirely", header, BODY)


def test_a_stale_or_future_timestamp_fails() -> None:
    stale = int(time.time()) - 301
    assert not verify(SECRET, sign(SECRET, stale, BODY), BODY)
    assert not verify_signature(SECRET, sign(SECRET, stale, BODY), BODY)
    future = int(time.time()) + 301
    assert not verify(SECRET, sign(SECRET, future, BODY), BODY)
    # Inside the tolerance it still verifies.
    assert verify(SECRET, sign(SECRET, int(time.time()) - 200, BODY), BODY)


@pytest.mark.parametrize(
    "header",
    ["", "garbage", "t=abc,v1=00", "v1=00", "t=,v1=", "t=1²,v1=00", "t=1,v1=é", "t=1;v1=00"],
)
def test_malformed_signature_headers_fail_without_raising(header: str) -> None:
    assert not verify(SECRET, header, BODY)
    assert not verify_signature(SECRET, header, BODY)


def test_a_header_carrying_several_signatures_verifies_when_one_matches() -> None:
    now = int(time.time())
    good = sign(SECRET, now, BODY).split(",v1=")[1]
    assert verify(SECRET, f"t={now},v1={'0' * 64},v1={good}", BODY)
    assert verify_signature(SECRET, f"t={now},v1={'0' * 64},v1={good}", BODY)


# --------------------------------------------------------------------------- SSRF guard
# Which addresses may be targets: tests/core/infrastructure/test_outbound.py.


async def test_delivery_refuses_a_private_target_stored_before_the_rule_applied(
    postgres_db: Database,
) -> None:
    """The guard also runs at delivery: a subscription row that points at loopback (made
    while private targets were allowed) gets nothing once they are not."""
    org = await new_org(postgres_db)
    with WebhookReceiver(SECRET) as receiver:
        await add_subscription(postgres_db, org, f"{receiver.url}/hook")
        activities = WebhookActivities(
            postgres_db, api_settings(WEBHOOK_ALLOW_PRIVATE_TARGETS=False).notifications
        )
        event = RunEvent(seq=1, type=EventType.RUN_STARTED, at=utcnow())
        with pytest.raises(ApplicationError, match="non-public"):
            await ActivityEnvironment().run(
                activities.deliver_webhooks,
                WebhookDeliveryInput(tenant=org, run_id="r1", event=event),
            )
        assert receiver.requests == []
    [logged] = await deliveries_in_db(postgres_db, org)
    assert (logged.ok, logged.status_code, logged.event_type) == (False, None, "run.started")
    assert logged.error is not None and "127.0.0.1" in logged.error


async def test_delivery_fans_out_concurrently_and_reports_each_failure(
    postgres_db: Database,
) -> None:
    """One event, three subscribers: the healthy ones take it, a dead one is named in the
    error and logged; the retry posts only to the one still missing."""
    org = await new_org(postgres_db)
    activities = WebhookActivities(postgres_db, api_settings().notifications)
    event = RunEvent(seq=7, type=EventType.TASK_COMPLETED, at=utcnow(), task="t")
    delivery = WebhookDeliveryInput(tenant=org, run_id="r2", event=event)
    with WebhookReceiver(SECRET) as one, WebhookReceiver(SECRET) as two:
        two.respond_with(503)
        await add_subscription(postgres_db, org, f"{one.url}/a")
        await add_subscription(postgres_db, org, f"{two.url}/b")
        await add_subscription(postgres_db, org, f"{two.url}/only-runs", ["run.completed"])
        with pytest.raises(ApplicationError, match=r"/b: HTTP 503"):
            await ActivityEnvironment().run(activities.deliver_webhooks, delivery)
        assert await ActivityEnvironment().run(activities.deliver_webhooks, delivery) == 1
        assert [e.status for e in one.events] == [200]
        assert [e.status for e in two.events] == [503, 200]
        assert all(e.signature_valid for e in one.events + two.events)
        assert one.events[0].raw == two.events[1].raw
        assert one.events[0].event["id"] == "r2:7"
        assert one.events[0].headers["x-orchestrator-event-id"] == "r2:7"
    logged = await deliveries_in_db(postgres_db, org)
    assert sorted((d.ok, d.status_code) for d in logged) == [(False, 503), (True, 200), (True, 200)]


# --------------------------------------------------------------------------- subscriptions API


async def test_subscriptions_are_created_listed_and_deleted_by_admins_of_their_org(
    api: ApiHarness,
) -> None:
    tenant, other = await api.tenant(), await api.tenant()
    admin = api.http(tenant.headers)

    created = await admin.post(
        "/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "event_types": ["run.completed", "run.started"]},
    )
    assert created.status_code == 201, created.text
    first = created.json()
    assert first["secret"].startswith("whsec_") and len(first["secret"]) > 40
    assert first["event_types"] == ["run.completed", "run.started"]
    assert first["active"] is True

    chosen = await admin.post(
        "/webhooks", json={"url": "http://127.0.0.1:9/two", "secret": "my-own-secret-1234567"}
    )
    assert chosen.status_code == 201, chosen.text
    second = chosen.json()
    assert second["secret"] == "my-own-secret-1234567"
    assert second["event_types"] == ALL_TYPES  # the default: every webhook event

    listed = await admin.get("/webhooks")
    assert listed.status_code == 200
    assert [s["id"] for s in listed.json()] == [first["id"], second["id"]]
    assert all("secret" not in s for s in listed.json())
    one = await admin.get(f"/webhooks/{first['id']}")
    assert one.status_code == 200 and "secret" not in one.json()
    assert one.json()["url"] == "http://127.0.0.1:9/hook"

    # Another organization sees nothing and can touch nothing.
    stranger = api.http(other.headers)
    assert (await stranger.get("/webhooks")).json() == []
    for call in (
        stranger.get(f"/webhooks/{first['id']}"),
        stranger.delete(f"/webhooks/{first['id']}"),
        stranger.get(f"/webhooks/{first['id']}/deliveries"),
    ):
        response = await call
        assert response.status_code == 404
        assert first["id"] in response.json()["detail"]

    # Members and viewers of the same organization are not admins.
    for role in (OrgRole.VIEWER, OrgRole.MEMBER):
        client = api.http(await api.key(tenant, role))
        assert (await client.get("/webhooks")).status_code == 403
        refused = await client.post("/webhooks", json={"url": "http://127.0.0.1:9/x"})
        assert refused.status_code == 403
        assert "admin" in refused.json()["detail"]
        assert (await client.delete(f"/webhooks/{first['id']}")).status_code == 403
    assert (await api.http().get("/webhooks")).status_code == 401

    deleted = await admin.delete(f"/webhooks/{first['id']}")
    assert deleted.status_code == 204
    assert (await admin.get(f"/webhooks/{first['id']}")).status_code == 404
    assert (await admin.delete(f"/webhooks/{first['id']}")).status_code == 404
    assert [s["id"] for s in (await admin.get("/webhooks")).json()] == [second["id"]]


async def test_unknown_event_types_and_bad_secrets_are_refused_by_name(api: ApiHarness) -> None:
    admin = api.http((await api.tenant()).headers)
    url = "http://127.0.0.1:9/hook"

    unknown = await admin.post(
        "/webhooks", json={"url": url, "event_types": ["run.completed", "run.exploded"]}
    )
    assert unknown.status_code == 422
    assert "'run.exploded'" in json.dumps(unknown.json())
    not_for_webhooks = await admin.post(
        "/webhooks", json={"url": url, "event_types": ["task.started"]}
    )
    assert not_for_webhooks.status_code == 422
    assert "'task.started'" in json.dumps(not_for_webhooks.json())
    assert (await admin.post("/webhooks", json={"url": url, "event_types": []})).status_code == 422
    short = await admin.post("/webhooks", json={"url": url, "secret": "short"})
    assert short.status_code == 422
    assert (await admin.get("/webhooks")).json() == []


async def test_private_targets_are_refused_at_creation_when_not_allowed(
    postgres_db: Database, dev_client: Client
) -> None:
    settings = api_settings(WEBHOOK_ALLOW_PRIVATE_TARGETS=False)
    async with serving_api(postgres_db, dev_client, settings, with_workers=False) as api:
        admin = api.http((await api.tenant()).headers)
        for url, reason in [
            ("http://127.0.0.1:8080/hook", "resolves to 127.0.0.1, a non-public address"),
            ("http://10.0.0.7/hook", "resolves to 10.0.0.7, a non-public address"),
            ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, a non-public"),
            ("http://[::1]:8080/hook", "resolves to ::1, a non-public address"),
            ("file:///etc/passwd", "must be http(s) with a host"),
            ("http://does-not-exist.invalid/hook", "does not resolve"),
        ]:
            refused = await admin.post("/webhooks", json={"url": url})
            assert refused.status_code == 422, url
            assert reason in refused.json()["detail"], refused.json()
            if "non-public" in reason:  # and says how to allow it
                assert "WEBHOOK_ALLOW_PRIVATE_TARGETS=true" in refused.json()["detail"]
        assert (await admin.get("/webhooks")).json() == []
        public = await admin.post("/webhooks", json={"url": "https://93.184.215.14/hook"})
        assert public.status_code == 201, public.text


# --------------------------------------------------------------------------- end to end


async def test_a_run_delivers_each_webhook_event_once_signed(api: ApiHarness) -> None:
    tenant, other = await api.tenant(), await api.tenant()
    with (
        WebhookReceiver() as receiver,
        WebhookReceiver() as narrow,
        WebhookReceiver() as outsider,
    ):
        # `localhost`, not the address: the request goes to the checked address with the
        # name in its Host header.
        created = await subscribe(api, tenant, f"http://localhost:{receiver.port}/hook", ALL_TYPES)
        receiver.secret = created["secret"]
        narrowed = await subscribe(api, tenant, f"{narrow.url}/done", ["run.completed"])
        narrow.secret = narrowed["secret"]
        outsider.secret = (await subscribe(api, other, f"{outsider.url}/x", ALL_TYPES))["secret"]

        handle = await start_for(api, tenant, make_plan(template=str(TEMPLATES / "branches.yaml")))
        final = await finished(handle)  # the run ends only after its deliveries
        assert final.status == RunStatus.COMPLETED

        expected = [e for e in final.events if e.type in WEBHOOK_EVENT_TYPES]
        assert (expected[0].type, expected[-1].type) == (
            EventType.RUN_STARTED,
            EventType.RUN_COMPLETED,
        )
        assert Counter(e.type for e in expected)[EventType.TASK_COMPLETED] == len(final.tasks)
        queried = await handle.query("events", result_type=list[RunEvent])
        assert [e for e in queried if e.type in WEBHOOK_EVENT_TYPES] == expected

        got = receiver.events
        assert all(e.signature_valid for e in got)
        assert [e.status for e in got] == [200] * len(got)
        assert sorted(e.event["seq"] for e in got) == [e.seq for e in expected]  # each once
        by_seq = {e.event["seq"]: e for e in got}
        for event in expected:
            body = by_seq[event.seq].event
            assert body["id"] == f"{final.run_id}:{event.seq}"
            assert (body["type"], body["run_id"], body["task"]) == (
                event.type.value,
                final.run_id,
                event.task,
            )
            assert RunEvent.model_validate(body) == event
            headers = by_seq[event.seq].headers
            assert headers["x-orchestrator-event"] == event.type.value
            assert headers["host"] == f"localhost:{receiver.port}"
            assert headers["content-type"] == "application/json"

        assert [e.event["type"] for e in narrow.events] == ["run.completed"]
        assert narrow.events[0].signature_valid
        assert outsider.events == []  # another organization's hook hears nothing of this run

    log = await delivery_log(api, tenant, created["id"], run_id=final.run_id)
    assert sorted(d["seq"] for d in log) == [e.seq for e in expected]
    assert all(d["ok"] and d["status_code"] == 200 and d["attempt"] == 1 for d in log)


async def test_a_receiver_that_fails_twice_gets_every_event_once_and_the_log_shows_it(
    api: ApiHarness,
) -> None:
    tenant = await api.tenant()
    with WebhookReceiver() as flaky, WebhookReceiver() as healthy:
        flaky.respond_with(500, "down for a moment", times=2)
        flaky_sub = await subscribe(api, tenant, f"{flaky.url}/hook", ALL_TYPES)
        flaky.secret = flaky_sub["secret"]
        healthy.secret = (await subscribe(api, tenant, f"{healthy.url}/hook", ALL_TYPES))["secret"]

        handle = await start_for(api, tenant, make_plan(template=str(TEMPLATES / "branches.yaml")))
        final = await finished(handle)
        assert final.status == RunStatus.COMPLETED
        expected = sorted(e.seq for e in final.events if e.type in WEBHOOK_EVENT_TYPES)

        assert flaky.pending == 0
        assert [e.status for e in flaky.events].count(500) == 2
        assert len(flaky.events) == len(expected) + 2
        assert all(e.signature_valid for e in flaky.events)
        assert sorted(e.event["seq"] for e in flaky.accepted) == expected  # each once
        # The retries of the failed events skipped the subscriber that already took them.
        assert sorted(e.event["seq"] for e in healthy.events) == expected

    log = await delivery_log(api, tenant, flaky_sub["id"])
    failed = [d for d in log if not d["ok"]]
    assert [(d["status_code"], d["error"]) for d in failed] == [(500, "HTTP 500")] * 2
    succeeded = [d for d in log if d["ok"]]
    assert sorted(d["seq"] for d in succeeded) == expected
    for failure in failed:
        [retry] = [d for d in succeeded if d["seq"] == failure["seq"]]
        assert retry["attempt"] > failure["attempt"]
        assert retry["status_code"] == 200
        assert retry["at"] > failure["at"]

    # The log pages newest first, `limit` at a time, and the pages add up to the whole.
    admin = api.http(tenant.headers)
    paged: list[dict[str, Any]] = []
    before: int | None = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"before": before} if before else {})
        page = (await admin.get(f"/webhooks/{flaky_sub['id']}/deliveries", params=params)).json()
        assert len(page["items"]) <= 3
        paged += page["items"]
        before = page["next_before"]
        if before is None:
            break
    assert paged == log
    assert [d["id"] for d in paged] == sorted((d["id"] for d in paged), reverse=True)
    too_many = await admin.get(f"/webhooks/{flaky_sub['id']}/deliveries", params={"limit": 501})
    assert too_many.status_code == 422


# --------------------------------------------------------------------------- helpers


async def subscribe(
    api: ApiHarness, tenant: Tenant, url: str, event_types: list[str]
) -> dict[str, Any]:
    response = await api.http(tenant.headers).post(
        "/webhooks", json={"url": url, "event_types": event_types}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def finished(handle: WorkflowHandle[Any, RunState]) -> RunState:
    """The run's result; a run held open by deliveries that keep failing fails the test
    within a minute instead of retrying for hours."""
    return await asyncio.wait_for(handle.result(), timeout=60)


async def delivery_log(
    api: ApiHarness, tenant: Tenant, subscription_id: str, **params: Any
) -> list[dict[str, Any]]:
    response = await api.http(tenant.headers).get(
        f"/webhooks/{subscription_id}/deliveries", params={"limit": 500, **params}
    )
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_before"] is None
    items: list[dict[str, Any]] = page["items"]
    return items


async def new_org(db: Database) -> str:
    return (await create_org(db, new_id("org-name"))).id


async def add_subscription(
    db: Database, org_id: str, url: str, event_types: list[str] | None = None
) -> None:
    async with db.session() as session:
        session.add(
            WebhookSubscription(
                id=new_id("whk"),
                org_id=org_id,
                url=url,
                secret=SECRET,
                event_types=json.dumps(event_types or ALL_TYPES),
            )
        )
        await session.commit()


async def deliveries_in_db(db: Database, org_id: str) -> list[WebhookDelivery]:
    async with db.session() as session:
        rows = await session.execute(
            select(WebhookDelivery).where(WebhookDelivery.org_id == org_id)
        )
        return list(rows.scalars())
