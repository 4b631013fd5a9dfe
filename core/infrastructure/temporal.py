"""Connecting to Temporal the one way every process does: our codec'd converter, our search attributes."""

from __future__ import annotations

import dataclasses
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from core.contracts import (
    SEARCH_ATTRIBUTE_RUN_STATUS,
    SEARCH_ATTRIBUTE_TEMPLATE,
    SEARCH_ATTRIBUTE_TENANT,
    SEARCH_ATTRIBUTES,
    TASK_QUEUE,
    RunPlan,
    RunState,
    RunStatus,
    workflow_id_for,
)
from core.infrastructure.codec import codec_from_settings
from core.infrastructure.settings import Settings
from core.infrastructure.tracing import temporal_interceptor


class TemporalUnavailable(ConnectionError):
    pass


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic payloads through our codec (core/infrastructure/codec.py): every client and worker uses this."""
    return dataclasses.replace(
        pydantic_data_converter, payload_codec=codec_from_settings(settings.temporal)
    )


async def connect(
    settings: Settings, address: str | None = None, runtime: Runtime | None = None
) -> Client:
    target = address or settings.temporal.target_address
    converter = data_converter(settings)
    try:
        return await Client.connect(
            target,
            namespace=settings.temporal.temporal_namespace,
            data_converter=converter,
            runtime=runtime,
            interceptors=[temporal_interceptor()],
        )
    except Exception as exc:  # the SDK raises RuntimeError for connection failures
        raise TemporalUnavailable(
            f"cannot reach Temporal at {target}: {str(exc).splitlines()[0]}"
        ) from None


async def ensure_search_attributes(client: Client) -> None:
    """Register our Keyword search attributes where missing (a no-op on a prepared server).

    The time-skipping test server cannot list attributes, only add them; there every
    attribute is added and "already exists" is fine.
    """
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        names = [n for n in SEARCH_ATTRIBUTES if n not in existing.custom_attributes]
    except RPCError as exc:
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        names = list(SEARCH_ATTRIBUTES)
    if not names:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={n: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for n in names},
            )
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.ALREADY_EXISTS:
            raise


def run_search_attributes(plan: RunPlan) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(SearchAttributeKey.for_keyword(name), value)
            for name, value in (
                (SEARCH_ATTRIBUTE_RUN_STATUS, RunStatus.RUNNING.value),
                (SEARCH_ATTRIBUTE_TEMPLATE, plan.template),
                (SEARCH_ATTRIBUTE_TENANT, plan.tenant),
            )
        ]
    )


SUMMARY_CHARS = 120
"""The Web UI shows a run's summary on one line of its list: the goal, cut at a word."""

GOAL_DETAIL_CHARS = 2000


def run_summary(goal: str) -> str:
    """The goal on one line, cut at the last whole word that fits."""
    line = " ".join(goal.split())
    if len(line) <= SUMMARY_CHARS:
        return line
    cut = line[: SUMMARY_CHARS - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"


def run_details(plan: RunPlan) -> str:
    """Markdown for the run's static details: what it is, where to follow it."""
    where = plan.addresses
    goal = plan.goal if len(plan.goal) <= GOAL_DETAIL_CHARS else plan.goal[:GOAL_DETAIL_CHARS] + "…"
    return "\n".join(
        [
            f"**Goal:** {goal}",
            "",
            f"- run: `{plan.run_id}`",
            f"- template: `{plan.template}`",
            f"- tenant: `{plan.tenant}`",
            f"- model: {f'`{plan.model}`' if plan.model else 'the provider default'}",
            "",
            f"Status over REST: {where.api_url.rstrip('/')}/runs/{plan.run_id}/status"
            if where.api_url
            else f"Status over REST: `GET /runs/{plan.run_id}/status` (`orchestrator api`)",
            "",
            f"With the CLI: `orchestrator status {plan.run_id}`",
        ]
    )


def with_addresses(client: Client, plan: RunPlan, api_url: str | None = None) -> RunPlan:
    """The plan knowing where people reach its run: this client's Temporal, the API's URL."""
    where = plan.addresses.model_copy(
        update={
            "temporal_address": plan.addresses.temporal_address
            or client.service_client.config.target_host,
            "temporal_namespace": client.namespace,
            "api_url": plan.addresses.api_url or api_url,
        }
    )
    return plan.model_copy(update={"addresses": where})


async def start_run(
    client: Client, plan: RunPlan, *, api_url: str | None = None
) -> WorkflowHandle[Any, RunState]:
    """Start `GoalWorkflow` for a compiled plan: id `run-<run_id>` on the orchestrator queue,
    with its User Metadata (summary: the goal; details: what it is, where to follow it).

    `api_url` is the REST API's base URL when the API starts the run: the commands the
    run prints to answer its gates use it. Idempotent per run id: starting a run that
    already exists, open or closed, answers its handle instead of a second execution, so a
    caller that does not know whether its first start reached Temporal can simply start
    again.
    """
    workflow_id = workflow_id_for(plan.run_id)
    plan = with_addresses(client, plan, api_url)
    try:
        return await client.start_workflow(
            "GoalWorkflow",
            plan,
            id=workflow_id,
            task_queue=TASK_QUEUE,
            search_attributes=run_search_attributes(plan),
            static_summary=run_summary(plan.goal),
            static_details=run_details(plan),
            result_type=RunState,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # A closed run is never run a second time: that would pay for its goal again.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            # Where this client also serves the orchestrator queue (`orchestrator up`, the
            # API with its in-process worker), the run's first workflow task comes back in
            # the start's answer instead of through the task queue; elsewhere a no-op.
            request_eager_start=True,
        )
    except WorkflowAlreadyStartedError:
        # No run id: the latest execution is the run (a reset continues it in a new one).
        return client.get_workflow_handle(workflow_id, result_type=RunState)
