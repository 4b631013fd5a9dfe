"""The FastAPI application: routers per resource, JSON errors, OpenAPI at `/docs` and `/redoc`.

Swagger UI and ReDoc load their scripts from this server (the `fastapi-offline` package
ships them), never from a CDN, so the docs work on a machine without internet.
`create_codec_app` is the codec server alone, which `orchestrator up` serves its Web UI.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from temporalio.client import Client

from api.errors import install_error_handlers
from api.limits import RequestLimits
from api.routers import (
    admin,
    artifacts,
    codec,
    decisions,
    health,
    metrics,
    plans,
    repositories,
    runs,
    webhooks,
)
from api.status import StatusCache
from core.infrastructure.settings import Settings, get_settings
from core.infrastructure.tracing import configured_provider
from core.persistence.db import Database, get_database
from core.persistence.key_cache import KeyCache
from core.persistence.spending_guard import SpendingGuard
from core.services.estimate import HistoryCache

DOCS_ASSETS = "/docs-assets"
"""Where Swagger UI's and ReDoc's scripts and styles are served."""


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    temporal: Client | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """The app; `tracer_provider` (else the process's, if tracing is on) traces requests."""
    settings = settings or get_settings()
    app = FastAPIOffline(
        title="Orchestrator API",
        version="0.1.0",
        description="Start goals, follow their runs, decide their gates, read what they built.",
        lifespan=_disposing_db,
        static_url=DOCS_ASSETS,
    )
    _prepare(app, settings, db, temporal)
    for router in (
        runs.polled,
        health.router,
        runs.router,
        artifacts.router,
        decisions.router,
        plans.router,
        admin.router,
        webhooks.router,
        repositories.router,
        codec.router,
        metrics.router,
    ):
        app.include_router(router)
    _limit_requests(app, settings)
    # Only when spans go somewhere: with the no-op provider the middleware would still run
    # on every request for nothing. The request's server span is the current span while
    # the route runs, so `StartWorkflow` (core/infrastructure/tracing.py's interceptor) becomes its child.
    tracer_provider = tracer_provider or configured_provider()
    if tracer_provider is not None:
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=tracer_provider,
            exclude_spans=["receive", "send"],  # one span per request, not per ASGI message
        )
    return app


def create_codec_app(settings: Settings, *, db: Database | None = None) -> FastAPI:
    """Only `/codec/*`, with the API's rules for who may call it (api/routers/codec.py)."""
    app = FastAPI(
        title="Orchestrator codec server", docs_url=None, redoc_url=None, lifespan=_disposing_db
    )
    _prepare(app, settings, db, None)
    app.include_router(codec.router)
    _limit_requests(app, settings)
    return app


@asynccontextmanager
async def _disposing_db(app: FastAPI) -> AsyncIterator[None]:
    # Everything made while starting (modules, the app, its schemas: some 400,000 objects)
    # lives as long as the process: out of the collector's sight, a full collection under
    # load takes milliseconds instead of a pause of a few hundred, felt by every request.
    gc.freeze()
    yield
    await app.state.db.dispose()


def _prepare(
    app: FastAPI, settings: Settings, db: Database | None, temporal: Client | None
) -> None:
    """What the dependencies in api/deps.py read from the app, and the JSON error handlers."""
    app.state.settings = settings
    app.state.db = db or get_database(settings.storage.resolved_database_url)
    app.state.api_keys = KeyCache()
    app.state.run_statuses = StatusCache()
    app.state.estimate_history = HistoryCache()
    app.state.spending_limits = SpendingGuard()
    app.state.temporal = temporal
    app.state.temporal_lock = asyncio.Lock()
    install_error_handlers(app)


def _limit_requests(app: FastAPI, settings: Settings) -> None:
    """CORS for the codec and the request size limits, once every router is in."""
    app.add_middleware(codec.CodecCORSMiddleware, origins=settings.temporal.codec_origins)
    # Added last, so it runs first: nothing reads a request before its size is known.
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.api.max_request_bytes,
        max_head_bytes=settings.api.max_header_bytes,
        body_limits={
            codec.PREFIX: codec.MAX_BODY_BYTES,
            "/repositories": settings.repositories.max_archive_bytes,
        },
    )
