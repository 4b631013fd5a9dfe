"""What `GoalWorkflow`'s collaborators share: the plan, the run's state, its events, storage.

The agent loop, the review and the humans never see the workflow itself: each takes this
context, so each reads as its own part of the process and none can reach into another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from core.contracts import (
        CHECKS_QUEUE,
        DELIVER_WEBHOOKS,
        RECORD_RUN_STATUS,
        SEARCH_ATTRIBUTE_RUN_STATUS,
        TASK_QUEUE,
        WEBHOOK_EVENT_TYPES,
        WEBHOOK_EVENT_TYPES_WANTED,
        EventType,
        PendingDecision,
        RunEvent,
        RunPlan,
        RunState,
        RunStatus,
        RunStatusChange,
        TaskState,
        TaskStatus,
        WebhookDeliveryInput,
    )
    from workflows.details import current_details

RUN_STATUS = SearchAttributeKey.for_keyword(SEARCH_ATTRIBUTE_RUN_STATUS)

STORAGE_TIMEOUT = timedelta(seconds=60)
STORAGE_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))
WEBHOOK_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=2))
CHECKS_TIMEOUT = timedelta(minutes=15)
CHECKS_HEARTBEAT_TIMEOUT = timedelta(seconds=20)
"""Checks and commands beat every 5 s; a killed checks worker's work moves on within 20 s."""
DELIVERY_GIVE_UP = timedelta(minutes=15)
"""The run ends only after its notifications and webhooks: a dead receiver holds it this long
at most, instead of for hours of retries."""

# workflow.patched ids: histories recorded before each change replay the old path.
PATCH_WEBHOOKS = "webhook-deliveries"
PATCH_STATUS_ROW = "status-row"
PATCH_WEBHOOKS_WANTED = "webhooks-when-subscribed"
"""Deliveries only of the event types the tenant's subscriptions want, asked once per
execution; the events of one workflow task go in one delivery."""

T = TypeVar("T")


class RunContext:
    """One run's plan and state, and the bookkeeping every part of the process does."""

    def __init__(self, plan: RunPlan, state: RunState) -> None:
        self.plan = plan
        self.state = state
        self.fail_reason: str | None = None
        """Why the run must stop: once set, no task starts and the run fails with it."""
        self._side_effects: list[asyncio.Task[None]] = []
        """Notifications and webhook deliveries in flight; the run ends only after them."""
        self.pending: dict[str, PendingDecision] = {}
        """What the run waits on people for, by gate, `budget` or dead-lettered task."""
        self._row_status = RunStatus.RUNNING
        """The status the run's database row has: it starts `running`."""
        self._row_writes = asyncio.Lock()
        self._hooks_want: asyncio.Task[frozenset[str]] | None = None
        """The event types the tenant's webhook subscriptions want, asked at the first
        webhook event of this execution (so at the run's start) and kept."""
        self._unsent: list[RunEvent] = []
        """Webhook events waiting for the delivery that takes them together."""

    def publish_status(self, status: RunStatus) -> None:
        """The run's status, in its state, in the search attribute the Web UI filters by and,
        while the run is open, in its database row (`orchestrator runs`, `/metrics`)."""
        changed = status != self.state.status
        self.state.status = status
        workflow.upsert_search_attributes([RUN_STATUS.value_set(status.value)])
        self.show_progress()
        # The final status is written with the final state; an open one only on a change.
        open_ = status in (RunStatus.RUNNING, RunStatus.WAITING)
        if changed and open_ and workflow.patched(PATCH_STATUS_ROW):
            self.spawn(self._record_status())

    async def _record_status(self) -> None:
        """Bring the row to the run's status now: one write at a time, none if already there."""
        async with self._row_writes:
            status = self.state.status
            if status == self._row_status or status not in (RunStatus.RUNNING, RunStatus.WAITING):
                return
            change = RunStatusChange(run_id=self.plan.run_id, status=status)
            await self.storage(RECORD_RUN_STATUS, change, summary=f"run status: {status.value}")
            self._row_status = status

    def show_progress(self) -> None:
        """What the run is doing and waits for, as the Web UI's current details show it."""
        workflow.set_current_details(current_details(self.plan, self.state, self.pending.values()))

    @property
    def test_command(self) -> str | None:
        """A change run's repository's own test command, which every check run also runs."""
        return self.plan.repository.test_command if self.plan.repository else None

    def statuses(self) -> dict[str, TaskStatus]:
        return {t.id: t.status for t in self.state.tasks}

    def emit(self, type_: EventType, task: str | None = None, **data: Any) -> None:
        """Record an event for the `events` query; deliver webhook types to the tenant's hooks."""
        state = self.state
        event = RunEvent(
            seq=state.events[-1].seq + 1 if state.events else 1,
            type=type_,
            at=workflow.now(),
            task=task,
            data={
                **data,
                "cost_usd": round(state.cost_usd, 6),
                "tokens": state.usage.input_tokens + state.usage.output_tokens,
            },
        )
        state.events.append(event)
        self.show_progress()
        if type_ in WEBHOOK_EVENT_TYPES and workflow.patched(PATCH_WEBHOOKS):
            if not workflow.patched(PATCH_WEBHOOKS_WANTED):
                self.spawn(self._deliver(event))
                return
            self._unsent.append(event)
            if len(self._unsent) == 1:
                self.spawn(self._deliver_unsent())

    async def _deliver_unsent(self) -> None:
        """The webhook events emitted meanwhile, in one delivery, if the tenant wants them.

        Whether it does is asked once, at the run's first webhook event: a tenant without
        subscriptions gets no delivery activities at all. A subscription added while the
        run is open is not asked about again; it hears from the runs started after it (and
        from this one after a continue-as-new, which asks again).
        """
        if self._hooks_want is None:
            self._hooks_want = asyncio.create_task(self._wanted_event_types())
        wanted = await self._hooks_want
        # A condition is checked once every coroutine woken by this workflow task has run:
        # the events they emit join the batch (a task's completion and the run's, say).
        await workflow.wait_condition(lambda: True)
        batch = [e for e in self._unsent if e.type.value in wanted]
        self._unsent = []
        if not batch:
            return
        await deliver(
            DELIVER_WEBHOOKS,
            WebhookDeliveryInput(
                tenant=self.plan.tenant,
                run_id=self.plan.run_id,
                event=batch[0],
                more_events=batch[1:],
            ),
            what="webhook delivery",
            retry_policy=WEBHOOK_RETRY,
            give_up=DELIVERY_GIVE_UP,
            summary=f"webhooks: {', '.join(e.type.value for e in batch)}"[:200],
        )

    async def _wanted_event_types(self) -> frozenset[str]:
        wanted = await self.storage(
            WEBHOOK_EVENT_TYPES_WANTED,
            self.plan.tenant,
            result_type=list[str],
            summary="webhook subscriptions",
        )
        return frozenset(wanted)

    async def _deliver(self, event: RunEvent) -> None:
        await deliver(
            DELIVER_WEBHOOKS,
            WebhookDeliveryInput(tenant=self.plan.tenant, run_id=self.plan.run_id, event=event),
            what="webhook delivery",
            retry_policy=WEBHOOK_RETRY,
            give_up=DELIVERY_GIVE_UP,
            summary=f"webhooks: {event.type.value}",
        )

    def emit_task_outcome(self, task_state: TaskState) -> None:
        if task_state.status == TaskStatus.COMPLETED:
            self.emit(
                EventType.TASK_COMPLETED,
                task_state.id,
                role=task_state.role,
                turns=task_state.turns,
                task_cost_usd=task_state.cost_usd,
                artifacts=[ref.path for ref in task_state.artifacts],
            )
        elif task_state.status == TaskStatus.SKIPPED:
            self.emit(EventType.TASK_SKIPPED, task_state.id, reason=task_state.summary)
        else:
            self.emit(EventType.TASK_FAILED, task_state.id, error=task_state.error)

    async def storage(
        self,
        activity: str,
        arg: object,
        *,
        result_type: type | None = None,
        summary: str | None = None,
    ) -> Any:
        """Storage and tool calls: quick, idempotent database work, run as local activities.

        They execute on the worker that runs this workflow task, which saves a server
        round trip per turn; their results are still recorded in history.
        """
        return await workflow.execute_local_activity(
            activity,
            arg,
            result_type=result_type,
            start_to_close_timeout=STORAGE_TIMEOUT,
            retry_policy=STORAGE_RETRY,
            summary=summary,
        )

    async def sandboxed(
        self,
        activity: str,
        arg: object,
        *,
        result_type: type,
        summary: str,
        attempts: int = 3,
    ) -> Any:
        """Work that runs generated code: an activity on the checks queue, where the
        sandbox is, heartbeating so a dead checks worker's work moves on within seconds."""
        return await workflow.execute_activity(
            activity,
            arg,
            result_type=result_type,
            task_queue=CHECKS_QUEUE,
            start_to_close_timeout=CHECKS_TIMEOUT,
            heartbeat_timeout=CHECKS_HEARTBEAT_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=attempts),
            summary=summary,
        )

    @property
    def side_effects(self) -> int:
        """Side effects the run still holds: in flight, or failed with a bug `drain` raises."""
        return len(self._side_effects)

    def spawn(self, effect: Coroutine[Any, Any, None]) -> None:
        """Start a side effect the run does not wait for now, but before it ends.

        Finished ones are dropped, so a long run does not hold every delivery it ever made;
        one that raised stays, so `drain` re-raises the bug instead of hiding it.
        """
        self._side_effects = [t for t in self._side_effects if not _finished_cleanly(t)]
        self._side_effects.append(asyncio.create_task(effect))

    async def drain(self) -> None:
        """Wait for the side effects in flight: their retries must not die with this run."""
        await asyncio.gather(*self._side_effects)


async def deliver(
    activity: str,
    arg: object,
    *,
    what: str,
    retry_policy: RetryPolicy,
    give_up: timedelta | None,
    summary: str,
) -> None:
    """A message the run sends but does not depend on: failing for good is logged, not raised."""
    try:
        await workflow.execute_activity(
            activity,
            arg,
            task_queue=TASK_QUEUE,
            start_to_close_timeout=timedelta(seconds=60),
            schedule_to_close_timeout=give_up,
            retry_policy=retry_policy,
            summary=summary,
        )
    except ActivityError as exc:
        workflow.logger.warning("%s failed for good: %s", what, describe_failure(exc))


def _finished_cleanly(task: asyncio.Task[None]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


def describe_failure(exc: BaseException) -> str:
    """The root cause of an activity's failure, as a person reads it in the run's state."""
    cause: BaseException | None = exc
    while cause is not None and isinstance(cause, ActivityError):
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'error'}: {cause.message}"
    return str(cause or exc)


def expect(value: object, kind: type[T]) -> T:
    """`value` as a `kind`, or a failed run: never an exception that retries the task forever.

    An AssertionError or TypeError fails the workflow task, which Temporal retries without
    end; a non-retryable ApplicationError fails the run, with this message in its history.
    """
    if not isinstance(value, kind):
        raise ApplicationError(
            f"expected a {kind.__name__}, got {type(value).__name__}: {value!r}",
            type="WorkflowInvariant",
            non_retryable=True,
        )
    return value
