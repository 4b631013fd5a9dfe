"""Probes: liveness always, readiness only when the database and Temporal answer."""

from __future__ import annotations

from temporalio.client import Client

from core.persistence.db import Database
from tests.api_harness import ApiHarness, api_settings, serving_api


async def test_healthz_and_readyz_answer_when_everything_is_up(api: ApiHarness) -> None:
    http = api.http()
    assert (await http.get("/healthz")).json() == {"status": "ok", "checks": {}}
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "temporal": "ok"}


async def test_readyz_names_the_database_when_it_is_down(dev_client: Client) -> None:
    unreachable = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    async with serving_api(unreachable, dev_client, api_settings(), with_workers=False) as api:
        ready = await api.http().get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["temporal"] == "ok"
    assert body["checks"]["database"].startswith("unavailable")
