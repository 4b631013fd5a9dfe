"""A whole offline run, then both `/metrics` endpoints scraped over HTTP: the platform's series."""

from __future__ import annotations

import re
import urllib.request

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from agents.providers.offline import OfflineProvider
from core import storage
from core.contracts import RunStatus, workflow_id_for
from core.db import Database
from core.metrics import metrics_runtime, serve_worker_metrics
from core.settings import Settings
from core.temporal import data_converter, start_run
from tests.api_harness import api_settings, free_port, serving_api
from tests.helpers import make_plan
from workers.main import serving


def scrape(url: str, headers: dict[str, str] | None = None) -> str:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        text: str = response.read().decode()
        return text


def value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{(.*)\}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match[2] or "") for k, v in labels.items()):
            total += float(match[3])
    return total


async def test_a_run_shows_in_the_worker_and_api_metrics(
    dev_env: WorkflowEnvironment, postgres_db: Database
) -> None:
    sdk_address = f"127.0.0.1:{free_port()}"
    client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        data_converter=data_converter(Settings(_env_file=None)),  # type: ignore[call-arg]
        runtime=metrics_runtime(sdk_address),
    )
    metrics_port = free_port()
    serve_worker_metrics(metrics_port, sdk_address, host="127.0.0.1")

    async with serving_api(postgres_db, client, api_settings(), with_workers=False) as api:
        tenant = await api.tenant()
        plan = make_plan(tenant=tenant.org_id)
        await storage.record_run_started(postgres_db, plan, workflow_id_for(plan.run_id))
        async with serving(client, db=postgres_db, provider=OfflineProvider(), settings=Settings()):
            final = await (await start_run(client, plan)).result()
        assert final.status == RunStatus.COMPLETED

        worker = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
        # the API serves on this event loop: scrape it without blocking the loop
        http = api.http()
        anonymous = (await http.get("/metrics")).text
        operator = (
            await http.get("/metrics", headers={"Authorization": "Bearer operator-token"})
        ).text

    mine = {"tenant": tenant.org_id}
    assert value(worker, "orchestrator_model_call_seconds_count", role="backend_engineer") >= 1
    assert value(worker, "orchestrator_tokens_total", kind="output", **mine) == sum(
        t.usage.output_tokens for t in final.tasks
    )
    assert value(worker, "orchestrator_gate_verdicts_total", gate="code_review") >= 1
    assert "temporal_" in worker  # the SDK's own series, through the same endpoint

    assert value(anonymous, "orchestrator_runs", status="completed") >= 1
    assert "orchestrator_pending_decisions" in anonymous
    assert "orchestrator_tenant_month_tokens" not in anonymous
    assert value(
        operator, "orchestrator_tenant_month_tokens", **mine
    ) == final.usage.input_tokens + (final.usage.output_tokens)
