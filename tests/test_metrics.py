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
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
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
from core.persistence.db import Database, LedgerEntry
from tests.api_harness import api_settings, free_port, isolated_client, serving_api

ORCHESTRATOR = str(Path(sys.executable).parent / "orchestrator")
GOAL = "Build a bookstore inventory API"


def value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{(.*)\}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match[2] or "") for k, v in labels.items()):
            total += float(match[3])
    return total


async def scrape_until(url: str, ready: Callable[[str], bool], timeout: float = 60) -> str:
    """The exposition at `url` once `ready` holds for it (the SDK's exporter lags a little)."""
    deadline = time.monotonic() + timeout
    text = ""
    async with httpx.AsyncClient(timeout=10) as http:
        while True:
            try:
                response = await http.get(url)
                text = response.text
                if response.status_code == 200 and ready(text):
                    return text
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                names = sorted(set(re.findall(r"^(\w+)[{ ]", text, re.MULTILINE)))
                raise AssertionError(f"{url} not ready in {timeout}s; it has {names}")
            await asyncio.sleep(0.2)


async def test_a_run_shows_in_the_worker_and_api_metrics(
    dev_env: WorkflowEnvironment, postgres_db: Database, postgres_url: str, tmp_path: Path
) -> None:
    client = await isolated_client(dev_env.client)
    metrics_port = free_port()
    worker_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "OPENAI_", "LLM_", "OTEL_"))
        and k not in ("DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE")
    }
    env.update(
        {
            "ORCHESTRATOR_DATA_DIR": str(tmp_path / "data"),
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": client.namespace,
            "DATABASE_URL": postgres_url,
            "LLM_PROVIDER": "offline",
        }
    )
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [ORCHESTRATOR, "worker", "--metrics-port", str(metrics_port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        await scrape_until(worker_metrics, lambda text: True)
        async with serving_api(postgres_db, client, api_settings(), with_workers=False) as api:
            tenant = await api.tenant()
            accepted = await api.http(tenant.headers).post("/runs", json={"goal": GOAL})
            assert accepted.status_code == 202, accepted.text
            run_id = accepted.json()["id"]
            handle = client.get_workflow_handle(workflow_id_for(run_id), result_type=RunState)
            final = await asyncio.wait_for(handle.result(), timeout=240)
            assert final.status == RunStatus.COMPLETED

            worker_text = await scrape_until(
                worker_metrics,
                lambda text: (
                    value(text, "orchestrator_gate_verdicts_total") > 0
                    and value(text, "temporal_workflow_completed_total") > 0
                ),
            )
            http = api.http()
            anonymous, operator = await asyncio.gather(
                http.get("/metrics"),
                http.get("/metrics", headers={"Authorization": "Bearer operator-token"}),
            )
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=30)
        log.close()
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
    assert value(worker_text, "orchestrator_model_call_seconds_count") >= 1
    assert value(worker_text, "orchestrator_model_call_seconds_count", role="backend_engineer") >= 1
    assert value(worker_text, "orchestrator_tokens_total", kind="input", **mine) == input_tokens
    assert value(worker_text, "orchestrator_tokens_total", kind="output", **mine) == output_tokens
    assert value(worker_text, "orchestrator_gate_verdicts_total", gate="code_review") >= 1
    # ...and the Temporal SDK's own, through the same endpoint: this run and its activities.
    assert value(worker_text, "temporal_workflow_completed_total") == 1
    assert value(worker_text, "temporal_activity_execution_latency_count") >= calls

    # The API: figures from the database and from Temporal, tenants' only for the operator.
    assert anonymous.status_code == operator.status_code == 200
    assert value(anonymous.text, "orchestrator_runs", status="completed") == 1
    assert "orchestrator_pending_decisions" in anonymous.text
    assert "orchestrator_tenant_month_tokens" not in anonymous.text
    assert value(operator.text, "orchestrator_tenant_month_tokens", **mine) == (
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
        assert all(value(s.text, "orchestrator_runs", status="running") == 0 for s in scrapes)
        assert all("orchestrator_tenant_month_tokens" in s.text for s in scrapes[20:25])
        run_counts = [s for s in statements if "GROUP BY runs.status" in s]
        spending = [s for s in statements if "GROUP BY ledger" in s]
        assert len(run_counts) == 1 and len(spending) == 1
        assert temporal_calls.listings == 1

        # Once the period is over, the next scrape sees what changed meanwhile.
        accepted = await admin.post("/runs", json={"goal": GOAL})
        assert accepted.status_code == 202, accepted.text
        try:
            assert value((await anonymous.get("/metrics")).text, "orchestrator_runs") == 0
            await asyncio.sleep(4.1)
            fresh = (await anonymous.get("/metrics")).text
            assert value(fresh, "orchestrator_runs", status="running") == 1
            assert temporal_calls.listings == 2
        finally:
            await client.get_workflow_handle(workflow_id_for(accepted.json()["id"])).terminate()
