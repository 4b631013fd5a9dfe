"""OpenTelemetry tracing: one trace from the API request through the workflow to each activity.

The API's FastAPI instrumentation opens a server span per request (api/app.py), and
Temporal's `TracingInterceptor` carries the span context in workflow and activity
headers, so the API's span of `POST /runs` is the parent of `StartWorkflow`, which is the
ancestor of `RunWorkflow` and of every `RunActivity:call_model` on whichever worker runs it.
Spans go to an OTLP/HTTP collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; without
it nothing is exported and tracing costs next to nothing.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from temporalio.contrib.opentelemetry import TracingInterceptor

from core.infrastructure.settings import Settings

TRACER_NAME = "orchestrator"


def tracer_provider(
    service: str, settings: Settings, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """A provider exporting to `exporter` (tests) or OTLP when configured; else None."""
    if exporter is None and not settings.telemetry.otel_exporter_otlp_endpoint:
        return None
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (and headers) itself.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def configure_tracing(service: str, settings: Settings) -> TracerProvider | None:
    """Install the process-wide provider (once per process, as OpenTelemetry requires)."""
    provider = tracer_provider(service, settings)
    if provider is not None:
        trace.set_tracer_provider(provider)
    return provider


def configured_provider() -> TracerProvider | None:
    """The process's provider when `configure_tracing` installed one; None when not tracing."""
    provider = trace.get_tracer_provider()
    return provider if isinstance(provider, TracerProvider) else None


def temporal_interceptor(provider: TracerProvider | None = None) -> TracingInterceptor:
    """For a Temporal client; workers built on that client trace their tasks too."""
    tracer = (provider or trace.get_tracer_provider()).get_tracer(TRACER_NAME)
    return TracingInterceptor(tracer)
