"""The REST API served over real HTTP on loopback, on PostgreSQL and the Temporal dev server.

The `api` fixture runs uvicorn in the test's event loop with workers for every queue
(offline model unless a test passes its own provider), so a test drives whole runs
with an `httpx.AsyncClient` exactly as a user's script would. Beside it, what API tests
share: JWT bearer headers (`token`), a JSON error check (`assert_json_error`), a tenant's
run started as `POST /runs` starts it (`start_for`) and its pending decisions over REST.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from google.protobuf.duration_pb2 import Duration
from opentelemetry.sdk.trace import TracerProvider
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client, Interceptor, WorkflowHandle

from agents.protocol import LLMProvider
from api.app import create_app
from api.server import server_config
from core.contracts import RunPlan, RunState, workflow_id_for
from core.infrastructure.local_stack import free_port
from core.infrastructure.settings import Settings
from core.infrastructure.temporal import ensure_search_attributes, start_run
from core.persistence import storage
from core.persistence.db import Database
from core.persistence.tenancy import IssuedKey, OrgRole, create_key, create_org
from core.services.providers import make_provider
from workers.main import serving


async def isolated_client(server: Client, interceptors: list[Interceptor] | None = None) -> Client:
    """A client on a fresh namespace of `server`'s Temporal: no other test's runs, queues
    or waiting workflows in sight (a dev server namespace is usable once registered)."""
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    await server.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    client = await Client.connect(
        server.service_client.config.target_host,
        namespace=namespace,
        data_converter=server.data_converter,
        interceptors=interceptors or [],
    )
    await ensure_search_attributes(client)
    return client


def api_settings(**overrides: Any) -> Settings:
    """Settings for a test API: loopback webhooks allowed, generous rate limits (every test
    client shares one address, so failed authentications of one test must not throttle it)."""
    values: dict[str, Any] = {
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": True,
        "RATE_LIMIT_PER_MINUTE": 100_000,
        "AUTH_FAILURE_LIMIT": 100_000,
        "JWT_SECRET": "test-jwt-secret-of-at-least-32-bytes!",
        "JWT_ISSUER": "https://issuer.test",
        "JWT_AUDIENCE": "orchestrator",
        "ORCHESTRATOR_ADMIN_TOKEN": "operator-token",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def token(
    org: str,
    sub: str = "alice",
    *,
    role: str | None = None,
    key: Any = None,
    algorithm: str = "HS256",
    expires_in: float = 300,
    **claims: Any,
) -> dict[str, str]:
    """Bearer headers for a JWT; by default one the test API accepts (api_settings)."""
    settings = api_settings()
    payload: dict[str, Any] = {
        "sub": sub,
        "org": org,
        "iss": settings.api.jwt_issuer,
        "aud": settings.api.jwt_audience,
        "exp": int(time.time() + expires_in),
        **claims,
    }
    if role is not None:
        payload["role"] = role
    payload = {k: v for k, v in payload.items() if v is not None}
    if key is None:
        assert settings.api.jwt_secret is not None
        key = settings.api.jwt_secret.get_secret_value()
    return {"Authorization": f"Bearer {jwt.encode(payload, key, algorithm=algorithm)}"}


def assert_json_error(response: httpx.Response, status_code: int, fragment: str = "") -> None:
    """The API refused with `status_code` and a JSON `detail` that names `fragment`."""
    assert response.status_code == status_code, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert fragment.lower() in str(detail).lower(), detail


@dataclass
class Tenant:
    org_id: str
    name: str
    key: IssuedKey

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key.secret}


@dataclass
class ApiHarness:
    base_url: str
    db: Database
    temporal: Client
    settings: Settings
    _clients: list[httpx.AsyncClient] = field(default_factory=list)

    async def tenant(
        self, name: str | None = None, role: OrgRole = OrgRole.ADMIN, **limits: Any
    ) -> Tenant:
        """A fresh organization and a key with `role` in it."""
        name = name or f"org-{free_port()}-{id(limits)}"
        org = await create_org(self.db, name, **limits)
        return Tenant(org.id, name, await create_key(self.db, org.id, f"{role}-key", role))

    async def key(self, tenant: Tenant, role: OrgRole) -> dict[str, str]:
        """Headers for another key of the same organization."""
        issued = await create_key(self.db, tenant.org_id, f"{role}-key", role)
        return {"X-API-Key": issued.secret}

    def http(self, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=self.base_url, headers=headers or {}, timeout=60)
        self._clients.append(client)
        return client


async def start_for(
    api: ApiHarness, tenant: Tenant, plan: RunPlan
) -> WorkflowHandle[Any, RunState]:
    """A run of `tenant`, started the way `POST /runs` does: run row first, then workflow."""
    plan = plan.model_copy(update={"tenant": tenant.org_id})
    await storage.record_run_started(api.db, plan, workflow_id_for(plan.run_id))
    return await start_run(api.temporal, plan)


async def pending_over_http(api: ApiHarness, tenant: Tenant, run_id: str) -> list[dict[str, Any]]:
    """The run's pending decisions as `tenant` reads them over REST."""
    response = await api.http(tenant.headers).get(f"/runs/{run_id}/decisions")
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


@asynccontextmanager
async def serving_api(
    db: Database,
    temporal: Client,
    settings: Settings,
    provider: LLMProvider | None = None,
    with_workers: bool = True,
    tracer_provider: TracerProvider | None = None,
) -> AsyncIterator[ApiHarness]:
    """`tracer_provider` traces the API's requests; `temporal`'s interceptors trace the rest."""
    app = create_app(settings, db=db, temporal=temporal, tracer_provider=tracer_provider)
    port = free_port()
    server = uvicorn.Server(
        server_config(
            app, settings.api, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    serve = asyncio.create_task(server.serve())
    while not server.started:
        if serve.done():
            serve.result()
        await asyncio.sleep(0.02)
    harness = ApiHarness(f"http://127.0.0.1:{port}", db, temporal, settings)
    try:
        if with_workers:
            async with serving(
                temporal,
                db=db,
                provider=provider or make_provider(settings.provider),
                settings=settings,
            ):
                yield harness
        else:
            yield harness
    finally:
        for client in harness._clients:
            await client.aclose()
        server.should_exit = True
        await serve


@pytest.fixture
async def api(postgres_db: Database, dev_client: Client) -> AsyncIterator[ApiHarness]:
    async with serving_api(postgres_db, dev_client, api_settings()) as harness:
        yield harness
