"""One trace follows a run: `POST /runs` -> StartWorkflow -> RunWorkflow -> every model call and check.

The API and the workers share one in-process `TracerProvider` with an in-memory exporter,
passed explicitly (the global provider can be set only once per process): to the API's
FastAPI instrumentation and to the Temporal client's `TracingInterceptor`, which the
workers built on that client inherit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import func
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from core.contracts import RunState, RunStatus, workflow_id_for
from core.infrastructure.settings import Settings
from core.infrastructure.tracing import temporal_interceptor, tracer_provider
from core.persistence.db import Database, LedgerEntry
from tests.api_harness import api_settings, isolated_client, serving_api

GOAL = "Build a bookstore inventory API"


def spans_of(spans: Sequence[ReadableSpan], name: str, workflow_id: str) -> list[ReadableSpan]:
    return [
        s
        for s in spans
        if s.name == name and (s.attributes or {}).get("temporalWorkflowID") == workflow_id
    ]


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


async def test_one_trace_links_the_request_the_workflow_and_every_model_call(
    dev_env: WorkflowEnvironment, postgres_db: Database
) -> None:
    exporter = InMemorySpanExporter()
    provider = tracer_provider("orchestrator-test", Settings(_env_file=None), exporter)  # type: ignore[call-arg]
    assert provider is not None
    # A namespace of its own: no run another test left behind wakes up on these workers.
    client = await isolated_client(dev_env.client, [temporal_interceptor(provider)])
    async with serving_api(postgres_db, client, api_settings(), tracer_provider=provider) as api:
        tenant = await api.tenant()
        accepted = await api.http(tenant.headers).post("/runs", json={"goal": GOAL})
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["id"]
        workflow_id = workflow_id_for(run_id)
        handle = client.get_workflow_handle(workflow_id, result_type=RunState)
        final = await asyncio.wait_for(handle.result(), timeout=240)
    assert final.status == RunStatus.COMPLETED
    provider.shutdown()

    async with postgres_db.session() as session:
        model_calls = (
            await session.execute(
                select(func.count()).select_from(LedgerEntry).where(LedgerEntry.run_id == run_id)
            )
        ).scalar_one()
    assert model_calls > 0
    # Each round of the sdlc gates (code and security review) runs the checks once.
    check_rounds = sum(len(t.verdicts) for t in final.tasks)
    assert check_rounds > 0

    spans = exporter.get_finished_spans()
    (request,) = [s for s in spans if s.kind == SpanKind.SERVER and s.name == "POST /runs"]
    trace = trace_id(request)

    (start,) = spans_of(spans, "StartWorkflow:GoalWorkflow", workflow_id)
    assert trace_id(start) == trace
    assert start.parent is not None and start.parent.span_id == span_id(request)

    (run,) = spans_of(spans, "RunWorkflow:GoalWorkflow", workflow_id)
    assert trace_id(run) == trace
    assert run.parent is not None and run.parent.span_id == span_id(start)

    calls = spans_of(spans, "RunActivity:call_model", workflow_id)
    assert len(calls) == model_calls  # one span per model call in the ledger
    checks = spans_of(spans, "RunActivity:run_checks", workflow_id)
    assert len(checks) >= check_rounds

    # Nothing of this run went to another trace: tool calls, storage and webhooks included.
    of_this_run = [
        s for s in spans if (s.attributes or {}).get("temporalWorkflowID") == workflow_id
    ]
    assert {trace_id(s) for s in of_this_run} == {trace}
