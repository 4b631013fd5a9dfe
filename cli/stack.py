"""Find or start what a CLI command needs: Temporal (embedded if nothing runs) and a worker.

The embedded dev server's Web UI shows payloads as they are stored: plain JSON by
default. With the payload codec on it needs a codec server, so unless
`ORCHESTRATOR_UI_CODEC_ENDPOINT` names one (the API's `/codec`), the stack serves its own
on loopback and starts the dev server wired to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import uvicorn
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from core.contracts import TASK_QUEUE
from core.infrastructure.local_stack import DevServer, LocalStackError, is_listening
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
    embedded = not settings.temporal.temporal_address and not is_listening(
        "127.0.0.1", settings.temporal.temporal_port
    )
    async with contextlib.AsyncExitStack() as started:
        if embedded:
            await started.enter_async_context(dev_server(settings))
        client = await connect(settings)
        await ensure_search_attributes(client)
        worker_task: asyncio.Task[None] | None = None
        stop = asyncio.Event()
        if with_worker and (embedded or not await has_workflow_pollers(client)):
            worker_task = asyncio.create_task(run_workers(client, settings, ALL_QUEUES, stop))
        try:
            yield Stack(client=client, embedded=embedded, in_process_worker=worker_task is not None)
        finally:
            if worker_task is not None:
                stop.set()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(worker_task, timeout=15)


@contextlib.asynccontextmanager
async def dev_server(settings: Settings) -> AsyncIterator[DevServer]:
    """The embedded dev server, its Web UI wired to a codec server when the codec is on."""
    async with web_ui_codec(settings) as wired:
        server = DevServer(wired)
        await server.start()
        try:
            yield server
        finally:
            server.stop()


class ListenError(ValueError):
    pass


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside another command: Ctrl-C and SIGTERM stay that command's to handle."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@contextlib.asynccontextmanager
async def web_ui_codec(settings: Settings) -> AsyncIterator[Settings]:
    """`settings` with `ui_codec_endpoint` naming a codec server the Web UI can use.

    Nothing to serve when payloads are plain JSON or an endpoint is configured. Otherwise
    a codec server of our own listens on 127.0.0.1:ORCHESTRATOR_CODEC_PORT for the life of
    the block; with the endpoint set, it serves the local UI without credentials (see
    api/routers/codec.py).
    """
    temporal = settings.temporal
    if not temporal.encodes_payloads or temporal.ui_codec_endpoint:
        yield settings
        return
    # Imported here, as `orchestrator api` does: other commands never load the API.
    from api.app import create_codec_app
    from api.server import server_config

    sock = listening_socket("127.0.0.1", temporal.codec_port)
    endpoint = f"http://127.0.0.1:{temporal.codec_port}/codec"
    wired = settings.model_copy(
        update={"temporal": temporal.model_copy(update={"ui_codec_endpoint": endpoint})}
    )
    server = EmbeddedServer(
        server_config(create_codec_app(wired), wired.api, log_config=None, log_level="warning")
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if serving.done():
                serving.result()  # its own error, if it raised one
                raise LocalStackError(f"the codec server on {endpoint} did not start")
            await asyncio.sleep(0.02)
        yield wired
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await serving
        sock.close()
