"""The logs of a whole run: JSON lines, activity context on every activity line, no secrets.

`orchestrator api` and `orchestrator worker` run as real processes with `LOG_FORMAT=json`
and `LOG_LEVEL=debug` against the session's Temporal dev server and PostgreSQL; a client
authenticates with the operator token, an API key and a JWT, subscribes a webhook with a
secret, and runs a goal to completion. Then every captured byte of both processes is
searched for each secret.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
from temporalio.testing import WorkflowEnvironment

from core.infrastructure.local_stack import free_port
from core.infrastructure.logs import redact, register_secrets, settings_secrets
from core.infrastructure.settings import Settings
from core.persistence.db import Database
from tests.api_harness import isolated_client
from tests.fakes.receivers import WebhookReceiver
from tests.processes import joining, orchestrator_process, until_ready

OPERATOR_TOKEN = "operator-token-for-the-logs-test-7f3a9c"
JWT_SECRET = "jwt-signing-secret-for-the-logs-test-0123456789"
WEBHOOK_SECRET = "whsec_logs-test-webhook-secret-5b7d"
ANTHROPIC_KEY = "sk-ant-api03-fake-key-for-the-logs-test-abcdefghijklmnop"
ISSUER, AUDIENCE = "https://issuer.test", "orchestrator"

# Bound by core/infrastructure/logs.py's LogContextInterceptor inside every activity.
ACTIVITY_CONTEXT = ("run_id", "task", "role", "attempt")


async def finished(
    http: httpx.AsyncClient, run_id: str, headers: dict[str, str], timeout: float = 240
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await http.get(f"/runs/{run_id}", headers=headers)
        assert response.status_code == 200, response.text
        if response.json()["status"] != "running":
            return dict(response.json())
        await asyncio.sleep(0.3)
    raise AssertionError(f"run {run_id} still running after {timeout}s")


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON log, parsed; a line that is not a JSON object fails the test."""
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"{path.name}:{number} is not JSON: {line[:200]}") from None
        assert isinstance(record, dict), f"{path.name}:{number}: {line[:200]}"
        records.append(record)
    return records


async def test_a_full_run_logs_json_with_activity_context_and_no_secrets(
    dev_env: WorkflowEnvironment, postgres_db: Database, postgres_url: str, tmp_path: Path
) -> None:
    # A namespace of its own: the worker meets no run another test left behind.
    temporal = await isolated_client(dev_env.client)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = joining(
        temporal.service_client.config.target_host,
        temporal.namespace,
        postgres_url,
        tmp_path / "data",
        LOG_FORMAT="json",
        LOG_LEVEL="debug",
        ANTHROPIC_API_KEY=ANTHROPIC_KEY,
        JWT_SECRET=JWT_SECRET,
        JWT_ISSUER=ISSUER,
        JWT_AUDIENCE=AUDIENCE,
        ORCHESTRATOR_ADMIN_TOKEN=OPERATOR_TOKEN,
        WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
        RATE_LIMIT_PER_MINUTE="100000",
    )
    with (
        WebhookReceiver(WEBHOOK_SECRET) as receiver,
        orchestrator_process(
            ["api", "--port", str(port)], env, tmp_path / "api.stdout", tmp_path / "api.stderr"
        ),
        orchestrator_process(
            ["worker"], env, tmp_path / "worker.stdout", tmp_path / "worker.stderr"
        ),
    ):
        await until_ready(f"{base}/healthz")
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
            created = await http.post("/orgs", json={"name": "logs-org"}, headers=operator)
            assert created.status_code == 201, created.text
            org_id, api_key = created.json()["org"]["id"], created.json()["admin_key"]["secret"]
            admin = {"X-API-Key": api_key}

            hook = await http.post(
                "/webhooks",
                json={
                    "url": f"{receiver.url}/hook",
                    "secret": WEBHOOK_SECRET,
                    "event_types": ["run.completed"],
                },
                headers=admin,
            )
            assert hook.status_code == 201, hook.text

            token = jwt.encode(
                {
                    "sub": "alice",
                    "org": org_id,
                    "role": "admin",
                    "iss": ISSUER,
                    "aud": AUDIENCE,
                    "exp": int(time.time() + 600),
                },
                JWT_SECRET,
                algorithm="HS256",
            )
            as_alice = {"Authorization": f"Bearer {token}"}
            started = await http.post(
                "/runs", json={"goal": "Build a bookstore inventory API"}, headers=as_alice
            )
            assert started.status_code == 202, started.text
            run_id = started.json()["id"]
            # the JWT started the run, the API key follows it
            final = await finished(http, run_id, admin)
            assert final["status"] == "completed", final
        # The webhook secret signed a real delivery (the receiver verifies the signature).
        events = await asyncio.to_thread(receiver.wait_for_events, 1, 60)
        assert events[0].event["type"] == "run.completed"
        assert all(e.signature_valid for e in events)

    files = sorted(tmp_path.glob("*.std*"))
    secrets = {
        "API key": api_key,
        "JWT": token,
        "JWT secret": JWT_SECRET,
        "webhook secret": WEBHOOK_SECRET,
        "operator token": OPERATOR_TOKEN,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
    }
    for path in files:
        text = path.read_text()
        for what, secret in secrets.items():
            assert secret not in text, f"the {what} is in {path.name}"

    api_records = json_lines(tmp_path / "api.stderr")
    worker_records = json_lines(tmp_path / "worker.stderr")
    assert api_records and worker_records
    assert all({"event", "level", "timestamp"} <= set(r) for r in api_records + worker_records)
    assert any(r["level"] == "debug" for r in worker_records)  # LOG_LEVEL reached the process

    # lines our interceptor bound, and the SDK's own activity lines (temporalio.activity)
    activity_lines = [r for r in worker_records if "activity" in r or "temporal_activity" in r]
    model_calls = [r for r in activity_lines if r["event"] == "model call"]
    assert model_calls and all(r["run_id"] == run_id for r in model_calls)
    missing = [r for r in activity_lines if not all(k in r for k in ACTIVITY_CONTEXT)]
    assert not missing, f"activity lines without {ACTIVITY_CONTEXT}: {missing[:3]}"
    # A task's activities name the task and its role on every line, but the SDK's own
    # "Starting activity", logged before any interceptor has seen the activity's input.
    of_tasks = [
        r
        for r in activity_lines
        if r["activity"] in ("call_model", "run_tool_calls")
        and not r["event"].startswith("Starting activity")
    ]
    unnamed = [r for r in of_tasks if not (r["task"] and r["role"])]
    assert of_tasks and not unnamed, unnamed[:3]


def test_configured_secrets_and_secret_shaped_strings_are_masked() -> None:
    """The safety net under the test above: what a process is configured with, by value,
    and what looks like a key, a JWT or a bearer token, by shape."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        ORCHESTRATOR_ADMIN_TOKEN="an-operator-token-3141",
        SMTP_PASSWORD="smtp-password-2718",
        ANTHROPIC_API_KEY="any-shape-of-anthropic-key-1618",
        JWT_PUBLIC_KEY="not-a-secret-public-key",
    )
    configured = settings_secrets(settings)
    assert "not-a-secret-public-key" not in configured
    register_secrets(configured)
    token = jwt.encode({"sub": "alice"}, JWT_SECRET, algorithm="HS256")
    line = redact(
        "operator an-operator-token-3141, smtp smtp-password-2718, "
        "key any-shape-of-anthropic-key-1618, api key orch_0123456789ab_abcdefghijklmnopqrst, "
        f"{ANTHROPIC_KEY}, jwt {token}, {WEBHOOK_SECRET}, Authorization: Bearer opaque.value.123"
    )
    for secret in (
        *configured,
        "orch_0123456789ab_abcdefghijklmnopqrst",
        ANTHROPIC_KEY,
        token,
        WEBHOOK_SECRET,
        "opaque.value.123",
    ):
        assert secret not in line, line
    assert line.startswith("operator [redacted], smtp [redacted]")
