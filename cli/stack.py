"""Find or start what a CLI command needs: Temporal (embedded if nothing runs) and a worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from core.contracts import TASK_QUEUE
from core.infrastructure.local_stack import DevServer, is_listening
from core.infrastructure.settings import Settings
from core.infrastructure.temporal import connect, ensure_search_attributes
from workers.main import ALL_QUEUES, run_workers


@dataclass
class Stack:
    client: Client
    embedded: bool
    in_process_worker: bool


async def has_workflow_pollers(client: Client) -> bool:
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=TASK_QUEUE),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return bool(response.pollers)


@contextlib.asynccontextmanager
async def temporal_stack(settings: Settings, *, with_worker: bool) -> AsyncIterator[Stack]:
    """Connect to Temporal; with no TEMPORAL_ADDRESS and nothing listening, start the dev server.

    With `with_worker`, serve every queue in this process unless a worker already
    polls the orchestrator queue, so a run always makes progress.
    """
    server: DevServer | None = None
    if not settings.temporal.temporal_address and not is_listening(
        "127.0.0.1", settings.temporal.temporal_port
    ):
        server = DevServer(settings)
        await server.start()
    stop = asyncio.Event()
    worker_task: asyncio.Task[None] | None = None
    try:
        client = await connect(settings)
        await ensure_search_attributes(client)
        if with_worker and (server is not None or not await has_workflow_pollers(client)):
            worker_task = asyncio.create_task(run_workers(client, settings, ALL_QUEUES, stop))
        yield Stack(
            client=client,
            embedded=server is not None,
            in_process_worker=worker_task is not None,
        )
    finally:
        if worker_task is not None:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker_task, timeout=15)
        if server is not None:
            server.stop()
