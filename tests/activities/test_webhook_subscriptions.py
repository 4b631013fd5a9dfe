"""A run asks once which webhook events its tenant wants and schedules deliveries only for
those, the events of one workflow task in one delivery: read from the runs' histories on the
dev server, with real receivers over loopback HTTP."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

from temporalio.api.enums.v1 import EventType as HistoryEvent
from temporalio.api.history.v1 import HistoryEvent as Event
from temporalio.client import WorkflowHandle
from temporalio.worker import Replayer

from core.contracts import (
    DELIVER_WEBHOOKS,
    WEBHOOK_EVENT_TYPES,
    WEBHOOK_EVENT_TYPES_WANTED,
    EventType,
    RunState,
    RunStatus,
    WebhookDeliveryInput,
)
from tests.activities.test_webhooks import ALL_TYPES, delivery_log, subscribe
from tests.api_harness import ApiHarness, start_for
from tests.fakes.receivers import WebhookReceiver
from tests.helpers import TEMPLATES, make_plan
from workflows.goal import GoalWorkflow


async def run_branches(
    api: ApiHarness, tenant: Any
) -> tuple[WorkflowHandle[Any, RunState], RunState]:
    handle = await start_for(api, tenant, make_plan(template=str(TEMPLATES / "branches.yaml")))
    final = await asyncio.wait_for(handle.result(), timeout=120)
    assert final.status == RunStatus.COMPLETED
    return handle, final


async def deliveries(
    api: ApiHarness, handle: WorkflowHandle[Any, RunState]
) -> list[WebhookDeliveryInput]:
    """The inputs of the run's `deliver_webhooks` activities, in the order scheduled."""
    converter = api.temporal.data_converter
    found = []
    for event in (await handle.fetch_history()).events:
        if event.event_type != HistoryEvent.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        scheduled = event.activity_task_scheduled_event_attributes
        if scheduled.activity_type.name == DELIVER_WEBHOOKS:
            [delivery] = await converter.decode(scheduled.input.payloads, [WebhookDeliveryInput])
            found.append(delivery)
    return found


def asked(events: Sequence[Event]) -> int:
    """Local activities the run ran to ask for the tenant's wanted event types."""
    return sum(
        event.event_type == HistoryEvent.EVENT_TYPE_MARKER_RECORDED
        and any(
            WEBHOOK_EVENT_TYPES_WANTED.encode() in payload.data
            for payloads in event.marker_recorded_event_attributes.details.values()
            for payload in payloads.payloads
        )
        for event in events
    )


async def replays(api: ApiHarness, handle: WorkflowHandle[Any, RunState]) -> bool:
    """The run's history replays against the workflow code (the new path is deterministic)."""
    replayer = Replayer(workflows=[GoalWorkflow], data_converter=api.temporal.data_converter)
    result = await replayer.replay_workflow(await handle.fetch_history())
    return result.replay_failure is None


def webhook_events(final: RunState) -> list[int]:
    return [e.seq for e in final.events if e.type in WEBHOOK_EVENT_TYPES]


async def test_a_run_of_a_tenant_without_subscriptions_schedules_no_delivery(
    api: ApiHarness,
) -> None:
    tenant = await api.tenant()
    handle, final = await run_branches(api, tenant)

    assert len(webhook_events(final)) >= 7  # run.started, 5 x task.completed, run.completed
    history = (await handle.fetch_history()).events
    scheduled = Counter(
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history
        if e.event_type == HistoryEvent.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    )
    assert scheduled[DELIVER_WEBHOOKS] == 0, scheduled
    assert scheduled["call_model"] == sum(t.turns for t in final.tasks)
    assert asked(history) == 1  # once, at the run's start
    assert await replays(api, handle)


async def test_a_subscription_to_one_event_type_gets_one_delivery_per_run(
    api: ApiHarness,
) -> None:
    tenant = await api.tenant()
    with WebhookReceiver() as receiver:
        created = await subscribe(api, tenant, f"{receiver.url}/done", ["run.completed"])
        receiver.secret = created["secret"]
        handle, final = await run_branches(api, tenant)

        [delivery] = await deliveries(api, handle)
        assert [e.type for e in delivery.events] == [EventType.RUN_COMPLETED]
        assert [e.event["type"] for e in receiver.events] == ["run.completed"]
        assert receiver.events[0].signature_valid
    assert asked((await handle.fetch_history()).events) == 1
    [logged] = await delivery_log(api, tenant, created["id"], run_id=final.run_id)
    assert logged["ok"] and logged["seq"] == final.events[-1].seq


async def test_a_subscribed_tenant_gets_every_event_once_in_batched_deliveries(
    api: ApiHarness,
) -> None:
    tenant = await api.tenant()
    with WebhookReceiver() as receiver:
        receiver.secret = (await subscribe(api, tenant, f"{receiver.url}/all", ALL_TYPES))["secret"]
        handle, final = await run_branches(api, tenant)
        batches = await deliveries(api, handle)

        expected = webhook_events(final)
        delivered = [e.seq for batch in batches for e in batch.events]
        assert sorted(delivered) == expected  # every event in exactly one delivery
        assert sorted(e.event["seq"] for e in receiver.events) == expected
        assert all(e.signature_valid and e.status == 200 for e in receiver.events)
        # The last task's completion and the run's went out together.
        assert len(batches) < len(expected)
        assert [e.type for e in batches[-1].events][-1] == EventType.RUN_COMPLETED
        assert EventType.TASK_COMPLETED in [e.type for e in batches[-1].events]
    assert await replays(api, handle)
