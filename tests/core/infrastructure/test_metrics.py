"""A whole offline run, then both `/metrics` endpoints scraped over HTTP: the platform's series.

The worker is the real command, `orchestrator worker --metrics-port N`, in a process of its
own: its Temporal runtime (the one exporting SDK metrics and the workflow's counters) and
its metrics server live and die with that process, not in the test process. The API is the
harness's uvicorn in this event loop, scraped with an async client.

Everything runs in a namespace of its own on the session's dev server. The API's /metrics
queries every waiting run of its namespace for its pending decisions; on the shared
namespace, runs other tests left waiting would each be queried, and with no worker polling
a query waits about 30 s for "no poller seen" (that made an earlier version of this test
hang in the full suite).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, func
from sqlmodel import select
from temporalio.client import (
    Interceptor,
    ListWorkflowsInput,
    OutboundInterceptor,
    WorkflowExecutionAsyncIterator,
)
from temporalio.testing import WorkflowEnvironment

from core.contracts import RunState, RunStatus, workflow_id_for
from core.infrastructure.local_stack import free_port
from core.persistence.db import Database, LedgerEntry
from tests.api_harness import api_settings, isolated_client, serving_api
from tests.helpers import metric_value
from tests.processes import joining, orchestrator_process, until_ready

GOAL = "Build a bookstore inventory API"


async def test_a_run_shows_in_the_worker_and_api_metrics(
    dev_env: WorkflowEnvironment, postgres_db: Database, postgres_url: str, tmp_path: Path
) -> None:
    client = await isolated_client(dev_env.client)
    metrics_port = free_port()
    worker_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    target = client.service_client.config.target_host
    env = joining(target, client.namespace, postgres_url, tmp_path / "data")
    with orchestrator_process(
        ["worker", "--metrics-port", str(metrics_port)], env, tmp_path / "worker.log"
    ) as worker:
        await until_ready(worker_metrics)
        async with serving_api(postgres_db, client, api_settings(), with_workers=False) as api:
            tenant = await api.tenant()
            accepted = await api.http(tenant.headers).post("/runs", json={"goal": GOAL})
            assert accepted.status_code == 202, accepted.text
            run_id = accepted.json()["id"]
            handle = client.get_workflow_handle(workflow_id_for(run_id), result_type=RunState)
            final = await asyncio.wait_for(handle.result(), timeout=240)
            assert final.status == RunStatus.COMPLETED

            worker_text = await until_ready(
                worker_metrics,
                lambda text: (
                    metric_value(text, "orchestrator_gate_verdicts_total") > 0
                    and metric_value(text, "temporal_workflow_completed_total") > 0
                ),
            )
            http = api.http()
            anonymous, operator = await asyncio.gather(
                http.get("/metrics"),
                http.get("/metrics", headers={"Authorization": "Bearer operator-token"}),
            )
    assert worker.returncode in (0, 130), (tmp_path / "worker.log").read_text()[-2000:]

    async with postgres_db.session() as session:
        calls, input_tokens, output_tokens = (
            await session.execute(
                select(
                    func.count(),
                    func.sum(LedgerEntry.input_tokens),
                    func.sum(LedgerEntry.output_tokens),
                ).where(LedgerEntry.run_id == run_id)
            )
        ).one()
    assert calls > 0 and output_tokens > 0
    mine = {"tenant": tenant.org_id}

    # The worker: the platform's series from its activities and its workflow...
    assert metric_value(worker_text, "orchestrator_model_call_seconds_count") >= 1
    assert (
        metric_value(worker_text, "orchestrator_model_call_seconds_count", role="backend_engineer")
        >= 1
    )
    assert (
        metric_value(worker_text, "orchestrator_tokens_total", kind="input", **mine) == input_tokens
    )
    assert (
        metric_value(worker_text, "orchestrator_tokens_total", kind="output", **mine)
        == output_tokens
    )
    assert metric_value(worker_text, "orchestrator_gate_verdicts_total", gate="code_review") >= 1
    # The backend engineer ran its tests in the sandbox: their CPU time is counted.
    commands = {"purpose": "command"}
    assert metric_value(worker_text, "orchestrator_sandbox_cpu_seconds_count", **commands) >= 1
    assert metric_value(worker_text, "orchestrator_sandbox_cpu_seconds_sum", **commands) > 0
    # ...and the Temporal SDK's own, through the same endpoint: this run and its activities.
    assert metric_value(worker_text, "temporal_workflow_completed_total") == 1
    assert metric_value(worker_text, "temporal_activity_execution_latency_count") >= calls

    # The API: figures from the database and from Temporal, tenants' only for the operator.
    assert anonymous.status_code == operator.status_code == 200
    assert metric_value(anonymous.text, "orchestrator_runs", status="completed") == 1
    assert "orchestrator_pending_decisions" in anonymous.text
    assert "orchestrator_tenant_month_tokens" not in anonymous.text
    assert metric_value(operator.text, "orchestrator_tenant_month_tokens", **mine) == (
        input_tokens + output_tokens
    )


class VisibilityCounter(Interceptor):
    """Counts the Temporal visibility listings a client makes."""

    def __init__(self) -> None:
        self.listings = 0

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        counter = self

        class Counting(OutboundInterceptor):
            def list_workflows(self, input: ListWorkflowsInput) -> WorkflowExecutionAsyncIterator:
                counter.listings += 1
                return super().list_workflows(input)

        return Counting(next)


@contextmanager
def statements_counted(db: Database) -> Iterator[list[str]]:
    """Every SQL statement the database's engine runs meanwhile."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def test_scrapes_within_the_cache_period_query_the_database_and_temporal_once(
    dev_env: WorkflowEnvironment, postgres_db: Database
) -> None:
    temporal_calls = VisibilityCounter()
    client = await isolated_client(dev_env.client, [temporal_calls])
    settings = api_settings(METRICS_CACHE_SECONDS=4)
    async with serving_api(postgres_db, client, settings, with_workers=False) as api:
        tenant = await api.tenant()
        anonymous, admin = api.http(), api.http(tenant.headers)
        with statements_counted(postgres_db) as statements:
            scrapes = await asyncio.gather(
                *(anonymous.get("/metrics") for _ in range(20)),
                *(admin.get("/metrics") for _ in range(5)),
            )
            scrapes.append(await anonymous.get("/metrics"))
        assert {s.status_code for s in scrapes} == {200}
        assert all(
            metric_value(s.text, "orchestrator_runs", status="running") == 0 for s in scrapes
        )
        assert all("orchestrator_tenant_month_tokens" in s.text for s in scrapes[20:25])
        run_counts = [s for s in statements if "GROUP BY runs.status" in s]
        spending = [s for s in statements if "GROUP BY ledger" in s]
        assert len(run_counts) == 1 and len(spending) == 1
        assert temporal_calls.listings == 1

        # Once the period is over, the next scrape sees what changed meanwhile.
        accepted = await admin.post("/runs", json={"goal": GOAL})
        assert accepted.status_code == 202, accepted.text
        try:
            assert metric_value((await anonymous.get("/metrics")).text, "orchestrator_runs") == 0
            await asyncio.sleep(4.1)
            fresh = (await anonymous.get("/metrics")).text
            assert metric_value(fresh, "orchestrator_runs", status="running") == 1
            assert temporal_calls.listings == 2
        finally:
            await client.get_workflow_handle(workflow_id_for(accepted.json()["id"])).terminate()
