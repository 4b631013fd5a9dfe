"""Worker processes: which workflows and activities run on which task queues.

One process can serve every queue (the local default) or a subset, so production
scales the orchestration queue and each role's model-call queue apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager

from temporalio.client import Client
from temporalio.worker import Worker

from activities.checks import CheckActivities
from activities.model_calls import ModelActivities
from activities.notifications import NotificationActivities
from activities.runs import RunActivities
from activities.webhooks import WebhookActivities
from activities.workspace import WorkspaceActivities
from agents.protocol import LLMProvider
from agents.roles import ROLES
from checks.sandbox import sandbox_report
from core.contracts import CHECKS_QUEUE, TASK_QUEUE, agent_queue
from core.infrastructure.local_stack import private_data_dir
from core.infrastructure.logs import LogContextInterceptor, get_logger
from core.infrastructure.settings import Settings
from core.persistence.db import Database, get_database
from core.services.providers import make_provider
from workflows.goal import GoalWorkflow

ALL_QUEUES = (TASK_QUEUE, CHECKS_QUEUE, *(agent_queue(role) for role in ROLES))

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
) -> list[Worker]:
    models = ModelActivities(db, provider, settings.provider)
    workspace = WorkspaceActivities(db)
    runs = RunActivities(db)
    notifications = NotificationActivities(settings.notifications)
    webhooks = WebhookActivities(db, settings.notifications)
    workers = []
    for queue in queues:
        if queue == TASK_QUEUE:
            workers.append(
                Worker(
                    client,
                    task_queue=queue,
                    interceptors=[LogContextInterceptor()],
                    workflows=[GoalWorkflow],
                    activities=[
                        workspace.run_tool_calls,
                        runs.record_run_started,
                        runs.record_run_finished,
                        runs.record_run_status,
                        notifications.notify,
                        webhooks.deliver_webhooks,
                    ],
                    max_concurrent_activities=max_concurrent_activities,
                )
            )
        elif queue == CHECKS_QUEUE:
            # Checks and agents' commands run untrusted generated code: few at a time,
            # each in its own sandbox.
            report_sandbox(settings.sandbox.backend)
            checks = CheckActivities(db, settings.sandbox)
            commands = WorkspaceActivities(db, settings.sandbox)
            workers.append(
                Worker(
                    client,
                    task_queue=queue,
                    interceptors=[LogContextInterceptor()],
                    activities=[checks.run_checks, commands.run_tool_calls],
                    max_concurrent_activities=settings.sandbox.max_concurrent_checks,
                )
            )
        else:
            # Provider rate limits are enforced by Temporal: per worker (concurrency) and
            # per queue across all workers (activities per second).
            workers.append(
                Worker(
                    client,
                    task_queue=queue,
                    interceptors=[LogContextInterceptor()],
                    activities=[models.call_model],
                    max_concurrent_activities=settings.provider.agent_max_concurrent_activities
                    or max_concurrent_activities,
                    max_task_queue_activities_per_second=settings.provider.agent_activities_per_second,
                )
            )
    return workers


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
) -> AsyncIterator[list[Worker]]:
    """Poll the queues for as long as the block runs."""
    workers = build_workers(client, db=db, provider=provider, settings=settings, queues=queues)
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
    """Serve the queues until `stop` is set (or forever)."""
    if settings.storage.database_url is None:
        private_data_dir(settings.storage.data_dir)
    db = get_database(settings.storage.resolved_database_url)
    await db.ensure_schema()
    async with serving(
        client, db=db, provider=make_provider(settings.provider), settings=settings, queues=queues
    ):
        await (stop or asyncio.Event()).wait()
