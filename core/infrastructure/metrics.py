"""Prometheus metrics: the platform's own series and the Temporal SDK's, on one `/metrics`.

Activities count into the prometheus-client registry below (model call latency, tokens,
cost). Workflow code cannot (it replays), so gate verdicts and revisions go through
`workflow.metric_meter()`, which Temporal's runtime exports with its own SDK metrics on
an internal loopback port; `TemporalSdkMetrics` re-exposes that endpoint through this
registry, so a worker has a single `/metrics` on `--metrics-port`.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from core.contracts import GATE_VERDICTS_METRIC, REVISIONS_METRIC, Usage

REGISTRY = CollectorRegistry()

MODEL_CALL_SECONDS = Histogram(
    "orchestrator_model_call_seconds",
    "Latency of model calls that reached the provider.",
    ["role", "model", "provider"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320),
    registry=REGISTRY,
)
TOKENS = Counter(
    "orchestrator_tokens",
    "Tokens of model calls, by kind (input, output, cache_read, cache_write).",
    ["tenant", "role", "model", "kind"],
    registry=REGISTRY,
)
COST_USD = Counter(
    "orchestrator_cost_usd",
    "Cost of model calls in USD at the pricing table's rates.",
    ["tenant", "role", "model"],
    registry=REGISTRY,
)
SANDBOX_CPU_SECONDS = Histogram(
    "orchestrator_sandbox_cpu_seconds",
    "CPU time of each sandboxed run (the command and the processes it waited for), by "
    "purpose: command (an agent's), tests and test_command (checks), probe.",
    ["purpose"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)

# The counters the workflow records with workflow.metric_meter(): named in the contracts,
# since workflow code may import nothing else from core.
GATE_VERDICTS = GATE_VERDICTS_METRIC
REVISIONS = REVISIONS_METRIC


def record_model_call(
    *, tenant: str, role: str, model: str, provider: str, seconds: float, usage: Usage, cost: float
) -> None:
    MODEL_CALL_SECONDS.labels(role, model, provider).observe(seconds)
    for kind, count in (
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
        ("cache_read", usage.cache_read_input_tokens),
        ("cache_write", usage.cache_creation_input_tokens),
    ):
        if count:
            TOKENS.labels(tenant, role, model, kind).inc(count)
    COST_USD.labels(tenant, role, model).inc(cost)


def record_sandbox_run(purpose: str, cpu_seconds: float) -> None:
    SANDBOX_CPU_SECONDS.labels(purpose).observe(cpu_seconds)


class TemporalSdkMetrics(Collector):
    """The Temporal runtime's Prometheus endpoint, read at scrape time and passed through."""

    def __init__(self, address: str) -> None:
        self.url = f"http://{address}/metrics"

    def collect(self) -> Iterator[Metric]:
        try:
            with urllib.request.urlopen(self.url, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return  # the runtime is not up yet: the platform's own series still answer
        yield from text_string_to_metric_families(text)


def metrics_runtime(sdk_address: str) -> Runtime:
    """A Temporal runtime exporting SDK metrics (and workflow meters) on `sdk_address`."""
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=sdk_address, counters_total_suffix=False, durations_as_seconds=True
            )
        )
    )


_sdk_collectors: dict[str, TemporalSdkMetrics] = {}


def serve_worker_metrics(port: int, sdk_address: str, host: str = "0.0.0.0") -> None:
    """`/metrics` on `port`: this registry plus the SDK endpoint at `sdk_address`."""
    if sdk_address not in _sdk_collectors:
        _sdk_collectors[sdk_address] = TemporalSdkMetrics(sdk_address)
        REGISTRY.register(_sdk_collectors[sdk_address])
    start_http_server(port, addr=host, registry=REGISTRY)
