"""Long-running processes: workers (`worker`), the whole local stack (`up`), the REST API
(`api`)."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from cli.runner import console, fast_event_loop, run_command
from cli.stack import dev_server, listening_socket
from core.infrastructure.local_stack import free_port
from core.infrastructure.logs import configure_logging, settings_secrets
from core.infrastructure.metrics import metrics_runtime, serve_worker_metrics
from core.infrastructure.settings import Settings, get_settings
from core.infrastructure.temporal import connect, ensure_search_attributes
from core.infrastructure.tracing import configure_tracing
from workers.main import parse_queues, run_workers

workers_app = typer.Typer()
api_app = typer.Typer()


def _serve_logs(settings: Settings, service: str) -> None:
    """What a serving process logs (LOG_LEVEL, LOG_FORMAT, secrets masked) and traces."""
    log_format = settings.telemetry.log_format
    configure_logging(
        None if log_format is None else log_format == "json",
        settings.telemetry.log_level,
        settings_secrets(settings),
    )
    configure_tracing(service, settings)


@workers_app.command()
def worker(
    queues: Annotated[
        list[str] | None,
        typer.Option(
            "--queues",
            help="Task queues to serve (comma-separated or repeated; default all).",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus /metrics (platform and Temporal SDK) on this port."),
    ] = None,
) -> None:
    """Serve task queues: the orchestrator queue, checks, and/or agent.<role> queues."""

    async def serve() -> int:
        settings = get_settings()
        selected = parse_queues(queues)
        _serve_logs(settings, "orchestrator-worker")
        runtime = None
        if metrics_port is not None:
            sdk_address = f"127.0.0.1:{free_port()}"
            runtime = metrics_runtime(sdk_address)
            serve_worker_metrics(metrics_port, sdk_address)
            console.print(f"metrics on http://0.0.0.0:{metrics_port}/metrics")
        client = await connect(settings, runtime=runtime)
        await ensure_search_attributes(client)
        console.print(f"worker serving {', '.join(selected)} on {settings.temporal.target_address}")
        await run_workers(client, settings, selected)
        return 0

    run_command(serve(), loop_factory=fast_event_loop())


@workers_app.command()
def up() -> None:
    """Start the local stack (Temporal dev server with Web UI, a worker for all queues) and keep it running."""

    async def serve() -> int:
        settings = get_settings()
        async with dev_server(settings) as server:
            client = await connect(settings)
            await ensure_search_attributes(client)
            console.print(
                f"Temporal dev server on {server.address} (history in {settings.temporal_db_file})"
            )
            console.print(f"Temporal Web UI: {settings.temporal.ui_url}")
            codec = server.settings.temporal.ui_codec_endpoint
            if codec:
                console.print(f"Payload codec for the Web UI and `temporal`: {codec}")
            console.print(f"Database: {settings.storage.resolved_database_url}")
            console.print("Worker serving all queues. Ctrl-C stops the stack.")
            await run_workers(client, settings)
        return 0

    run_command(serve(), loop_factory=fast_event_loop())


@api_app.command("api")
def serve_api(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: all).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Serve the REST API (OpenAPI at /docs) until Ctrl-C."""

    async def serve() -> int:
        import uvicorn

        from api.app import create_app
        from api.server import server_config

        settings = get_settings()
        _serve_logs(settings, "orchestrator-api")
        sock = listening_socket(host, port)
        server = uvicorn.Server(
            server_config(create_app(settings), settings.api, host=host, port=port, log_config=None)
        )
        database = make_url(settings.storage.resolved_database_url).render_as_string(
            hide_password=True
        )
        console.print(f"API on http://{host}:{port} (docs at /docs), database {database}")
        try:
            await server.serve(sockets=[sock])
        finally:
            sock.close()
        return 0

    run_command(serve(), loop_factory=fast_event_loop())
