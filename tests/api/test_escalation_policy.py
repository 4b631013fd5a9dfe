"""The escalation policy of `POST /runs` over real HTTP: strict in shape, and possible here.

A policy that cannot work must be refused when the run starts, with a 422 naming the
field, and start nothing: a misspelt field would silently keep a 24 h default, a delay past
Python's timedelta failed the workflow on every activation, a loopback URL reached the
worker's host, and email without a mail server could never be sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import Client

from core.contracts import RunPlan
from core.persistence.db import Database
from tests.api_harness import ApiHarness, api_settings, isolated_client, serving_api

GOAL = "Build a bookstore inventory API"
THIRTY_DAYS = 30 * 24 * 3600


@pytest.fixture
async def temporal(dev_client: Client) -> Client:
    """A namespace of its own: a run that should have been refused leaves no workflow
    for other tests' workers to pick up."""
    return await isolated_client(dev_client)


@pytest.fixture
async def strict_api(postgres_db: Database, temporal: Client) -> AsyncIterator[ApiHarness]:
    """What a production deployment has: no private targets, no mail server."""
    settings = api_settings(WEBHOOK_ALLOW_PRIVATE_TARGETS=False, SMTP_HOST=None)
    async with serving_api(postgres_db, temporal, settings, with_workers=False) as harness:
        yield harness


def assert_refused(response: Any, field: str, fragment: str) -> None:
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    named = [e for e in errors if e["loc"][:3] == ["body", "escalation", field]]
    assert named, errors
    assert any(fragment in e["msg"] for e in named), errors


@pytest.mark.parametrize(
    ("policy", "field", "fragment"),
    [
        pytest.param({"tier3_afer_seconds": 60}, "tier3_afer_seconds", "Extra", id="misspelt"),
        pytest.param(
            {"tier1_after_seconds": -5},
            "tier1_after_seconds",
            "greater than or equal to 0",
            id="negative",
        ),
        pytest.param(
            {"tier1_after_seconds": 1e300},
            "tier1_after_seconds",
            "less than or equal to 2592000",
            id="1e300",
        ),
        pytest.param(
            {"tier3_after_seconds": THIRTY_DAYS + 1},
            "tier3_after_seconds",
            "less than or equal to 2592000",
            id="31d",
        ),
        pytest.param({"email_to": ["lead@example.com"]}, "email_to", "SMTP_HOST", id="no-smtp"),
        pytest.param({"email_to": ["a@b.test\r\nBcc: x@y.test"]}, "email_to", "pattern", id="crlf"),
        pytest.param(
            {"webhook_url": "http://127.0.0.1:8080/hook"},
            "webhook_url",
            "non-public",
            id="loopback",
        ),
        pytest.param(
            {"webhook_url": "http://[::a9fe:a9fe]/latest/meta-data/"},
            "webhook_url",
            "non-public",
            id="v4-compatible-metadata",
        ),
        pytest.param(
            {"slack_webhook_url": "http://[::127.0.0.1]/services/T0/B0/x"},
            "slack_webhook_url",
            "non-public",
            id="slack-v4-compatible-loopback",
        ),
        pytest.param(
            {"slack_webhook_url": "http://192.0.0.9/services/T0/B0/x"},
            "slack_webhook_url",
            "non-public",
            id="slack-192.0.0.9",
        ),
        pytest.param({"webhook_url": "file:///etc/passwd"}, "webhook_url", "http(s)", id="file"),
    ],
)
async def test_a_policy_that_cannot_work_is_refused_and_starts_nothing(
    strict_api: ApiHarness, policy: dict[str, Any], field: str, fragment: str
) -> None:
    tenant = await strict_api.tenant()
    http = strict_api.http(tenant.headers)

    response = await http.post("/runs", json={"goal": GOAL, "escalation": policy})

    assert_refused(response, field, fragment)
    assert (await http.get("/runs")).json()["runs"] == []


async def test_email_tiers_start_where_a_mail_server_is_configured(
    postgres_db: Database, temporal: Client
) -> None:
    settings = api_settings(WEBHOOK_ALLOW_PRIVATE_TARGETS=False, SMTP_HOST="smtp.example.test")
    async with serving_api(postgres_db, temporal, settings, with_workers=False) as api:
        http = api.http((await api.tenant()).headers)
        policy = {"email_to": ["lead@example.test"], "tier2_after_seconds": THIRTY_DAYS}

        response = await http.post("/runs", json={"goal": GOAL, "escalation": policy})

        assert response.status_code == 202, response.text
        handle = temporal.get_workflow_handle(response.json()["workflow_id"])
        history = await handle.fetch_history()
        await handle.terminate("the plan was all this test needed")
    started = history.events[0].workflow_execution_started_event_attributes
    [plan] = await temporal.data_converter.decode(started.input.payloads, [RunPlan])
    assert plan.escalation.email_to == ["lead@example.test"]
    assert plan.escalation.tier2_after_seconds == THIRTY_DAYS
