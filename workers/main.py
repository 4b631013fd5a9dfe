"""Worker processes: which workflows and activities run on which task queues.

One process can serve every queue (the local default) or a subset, so production
scales the orchestration queue and each role's model-call queue apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Interceptor, Worker

from activities.checks import CheckActivities
from activities.heartbeat import MAX_HEARTBEAT_THROTTLE
from activities.model_calls import ModelActivities
from activities.notifications import NotificationActivities
from activities.runs import RunActivities
from activities.webhooks import WebhookActivities
from activities.workspace import WorkspaceActivities
from agents.protocol import LLMProvider
from agents.roles import ROLES
from checks.sandbox import sandbox_report
from checks.warmup import warm_in_background
from core.contracts import CHECKS_QUEUE, TASK_QUEUE, agent_queue
from core.infrastructure.local_stack import private_data_dir
from core.infrastructure.logs import LogContextInterceptor, get_logger
from core.infrastructure.settings import Settings
from core.persistence.db import Database, get_database
from core.services.providers import make_provider
from workers.in_flight import (
    InFlightInterceptor,
    InFlightLog,
    hand_back,
    slots_directory,
    watch_dead_slots,
)
from workflows.goal import GoalWorkflow

ALL_QUEUES = (TASK_QUEUE, CHECKS_QUEUE, *(agent_queue(role) for role in ROLES))

STICKY_TIMEOUT = timedelta(seconds=1)
"""How long a workflow task waits on this worker's sticky queue before any worker may take
it (the SDK's default is 10 s): after a crash, the runs it held move on within a second."""

log = get_logger(__name__)
_reported_sandbox: set[str] = set()


class UnknownQueueError(ValueError):
    pass


def parse_queues(spec: Iterable[str] | None) -> list[str]:
    """`None` or `all` -> every queue; otherwise the named ones, checked."""
    names = [q.strip() for item in (spec or ["all"]) for q in item.split(",") if q.strip()]
    if not names or "all" in names:
        return list(ALL_QUEUES)
    unknown = [q for q in names if q not in ALL_QUEUES]
    if unknown:
        raise UnknownQueueError(
            f"unknown task queue {unknown[0]!r}; known: {', '.join(ALL_QUEUES)}"
        )
    return names


def build_workers(
    client: Client,
    *,
    db: Database,
    provider: LLMProvider,
    settings: Settings,
    queues: Iterable[str] = ALL_QUEUES,
    max_concurrent_activities: int = 100,
    in_flight: InFlightLog | None = None,
) -> list[Worker]:
    workspace = WorkspaceActivities(db)
    models = ModelActivities(db, provider, settings.provider, tools=workspace)
    runs = RunActivities(db)
    notifications = NotificationActivities(settings.notifications)
    webhooks = WebhookActivities(db, settings.notifications)
    # On shutdown (SIGTERM) activities get this long to finish before they fail over.
    grace = timedelta(seconds=settings.temporal.worker_shutdown_seconds)
    interceptors: list[Interceptor] = [LogContextInterceptor()]
    if in_flight is not None:
        interceptors.append(InFlightInterceptor(in_flight))
    workers = []
    for queue in queues:
        if queue == TASK_QUEUE:
            workers.append(
                Worker(
                    client,
                    task_queue=queue,
                    interceptors=interceptors,
                    workflows=[GoalWorkflow],
                    activities=[
                        workspace.run_tool_calls,
                        runs.record_run_started,
                        runs.record_run_finished,
                        runs.record_run_status,
                        notifications.notify,
                        webhooks.deliver_webhooks,
                        webhooks.webhook_event_types_wanted,
                    ],
                    max_concurrent_activities=max_concurrent_activities,
                    sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
                    graceful_shutdown_timeout=grace,
                )
            )
        elif queue == CHECKS_QUEUE:
            # Checks and agents' commands run untrusted generated code: few at a time,
            # each in its own sandbox.
            report_sandbox_in_background(settings.sandbox.backend)
            warm_in_background()
            checks = CheckActivities(db, settings.sandbox)
            commands = WorkspaceActivities(db, settings.sandbox)
            workers.append(
                Worker(
                    client,
                    task_queue=queue,
                    interceptors=interceptors,
                    activities=[checks.run_checks, commands.run_tool_calls],
                    max_concurrent_activities=settings.sandbox.max_concurrent_checks,
                    graceful_shutdown_timeout=grace,
                )
            )
        else:
            # Provider rate limits are enforced by Temporal: per worker (concurrency) and
            # per queue across all workers (activities per second).
            workers.append(
                Worker(
                    client,
                    task_queue=queue,
                    interceptors=interceptors,
                    activities=[models.call_model],
                    max_concurrent_activities=settings.provider.agent_max_concurrent_activities
                    or max_concurrent_activities,
                    max_task_queue_activities_per_second=settings.provider.agent_activities_per_second,
                    max_heartbeat_throttle_interval=MAX_HEARTBEAT_THROTTLE,
                    graceful_shutdown_timeout=grace,
                )
            )
    return workers


def report_sandbox_in_background(backend: str) -> None:
    """Probe the sandbox off the worker's start (a first check waits for the probe)."""
    threading.Thread(
        target=report_sandbox, args=(backend,), name="sandbox-probe", daemon=True
    ).start()


def report_sandbox(backend: str) -> None:
    """Say once per process how generated code is isolated and which limits cannot apply."""
    if backend in _reported_sandbox:
        return
    _reported_sandbox.add(backend)
    for line in sandbox_report(backend):
        if "not applied" in line or "unavailable" in line:
            log.warning(line)
        else:
            log.info(line)


@asynccontextmanager
async def serving(
    client: Client,
    *,
    db: Database,
    provider: LLMProvider,
    settings: Settings,
    queues: Iterable[str] = ALL_QUEUES,
    in_flight: InFlightLog | None = None,
) -> AsyncIterator[list[Worker]]:
    """Poll the queues for as long as the block runs."""
    workers = build_workers(
        client, db=db, provider=provider, settings=settings, queues=queues, in_flight=in_flight
    )
    async with AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(worker)
        yield workers


async def run_workers(
    client: Client,
    settings: Settings,
    queues: Iterable[str] = ALL_QUEUES,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve the queues until `stop` is set, or without one until SIGTERM.

    Then every worker shuts down at once, gracefully: it stops polling, tells the server
    its sticky queue is gone (its runs' next workflow tasks go to any worker), lets running
    activities finish for ORCHESTRATOR_WORKER_SHUTDOWN_SECONDS and fails the rest over to
    other workers, so a deploy never waits for a heartbeat timeout. A worker killed instead
    leaves its activities in flight to the next worker started on its data directory
    (`workers.in_flight`).
    """
    if settings.storage.database_url is None:
        private_data_dir(settings.storage.data_dir)
    stopped_by_signal = stop is None
    stop = stop or asyncio.Event()
    with _stopping_on(signal.SIGTERM, stop, enabled=stopped_by_signal):
        async with _slot(client, settings) as in_flight:
            db = get_database(settings.storage.resolved_database_url)
            await db.ensure_schema()
            async with serving(
                client,
                db=db,
                provider=make_provider(settings.provider),
                settings=settings,
                queues=queues,
                in_flight=in_flight,
            ) as workers:
                await stop.wait()
                log.info(
                    "worker stopping",
                    grace_seconds=settings.temporal.worker_shutdown_seconds,
                )
                await asyncio.gather(*(worker.shutdown() for worker in workers))
    log.info("worker stopped")


@asynccontextmanager
async def _slot(client: Client, settings: Settings) -> AsyncIterator[InFlightLog | None]:
    """This process's in-flight slot, once what dead workers left in theirs is handed back
    (first of all: it is retried while this worker starts), watching for more; without a
    writable data directory, none (a dead worker's activities then wait for timeouts)."""
    directory = slots_directory(
        settings.storage.data_dir, client.service_client.config.target_host, client.namespace
    )
    try:
        slot, orphaned = InFlightLog.claim(directory)
    except OSError as error:
        log.warning(
            "no in-flight slot: a successor cannot hand back this worker's activities",
            error=str(error),
        )
        yield None
        return
    try:
        await hand_back(client, orphaned)
        watching = asyncio.create_task(watch_dead_slots(client, slot))
        try:
            yield slot
        finally:
            watching.cancel()
    finally:
        slot.release()


@contextlib.contextmanager
def _stopping_on(signum: int, stop: asyncio.Event, *, enabled: bool) -> Iterator[None]:
    """`stop` set by the signal while the block runs (on the main thread's event loop)."""
    loop = asyncio.get_running_loop()
    installed = False
    if enabled:
        try:
            loop.add_signal_handler(signum, stop.set)
            installed = True
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass
    try:
        yield
    finally:
        if installed:
            loop.remove_signal_handler(signum)
