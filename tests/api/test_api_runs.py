"""The runs API over real HTTP: start, follow (SSE), read, download, cancel; bad input; tenancy.

One API server, PostgreSQL database and worker set serve the whole module, and one
offline `sdlc` run of the bookstore goal is shared by the tests that read a finished
run; the cancel test starts a second run that waits at a human approval gate.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from agents.roles import ROLES
from core.contracts import EventType, RunEvent, RunPlan, RunState, workflow_id_for
from core.infrastructure.local_stack import free_port
from core.persistence import storage, tenancy
from core.persistence.db import Database
from core.persistence.spending_guard import LIMITS_TTL_SECONDS
from core.persistence.tenancy import OrgRole
from core.services.export import export_repository
from core.services.templates import load_template
from tests.api_harness import ApiHarness, Tenant, api_settings, serving_api
from tests.helpers import TEMPLATES, wait_until
from workflows.dsl import compile_plan

GOAL = "Build a bookstore inventory API"
APPROVAL_TEMPLATE = (TEMPLATES / "approval.yaml").read_text()
CYCLE_TEMPLATE = """
name: loop
tasks:
  - id: a
    role: tech_lead
    depends_on: [c]
  - id: b
    role: tech_lead
    depends_on: [a]
  - id: c
    role: tech_lead
    depends_on: [b]
"""


@pytest.fixture(scope="module")
async def runs_api(postgres_url: str, dev_env: WorkflowEnvironment) -> AsyncIterator[ApiHarness]:
    """One server for the module; every test works in organizations of its own."""
    db = Database(postgres_url)
    async with serving_api(db, dev_env.client, api_settings()) as harness:
        yield harness
    await db.dispose()


@dataclass
class Started:
    tenant: Tenant
    member: dict[str, str]
    run_id: str
    accepted: dict[str, Any]


@pytest.fixture(scope="module")
async def bookstore(runs_api: ApiHarness) -> Started:
    """The shared run, started by a member of a fresh organization."""
    tenant = await runs_api.tenant()
    member = await runs_api.key(tenant, OrgRole.MEMBER)
    response = await runs_api.http(member).post("/runs", json={"goal": GOAL})
    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["location"] == f"/runs/{body['id']}"
    return Started(tenant, member, body["id"], body)


async def finished(http: httpx.AsyncClient, run_id: str, timeout: float = 180) -> dict[str, Any]:
    """The run's record once it has closed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await http.get(f"/runs/{run_id}")
        assert response.status_code == 200, response.text
        if response.json()["status"] not in ("running", "waiting"):
            return dict(response.json())
        await asyncio.sleep(0.3)
    raise AssertionError(f"run {run_id} still running after {timeout}s")


@dataclass
class Received:
    id: str
    event: str
    data: str
    at: float
    """time.monotonic() when the client read it."""


async def read_events(
    http: httpx.AsyncClient,
    run_id: str,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> list[Received]:
    """Every event of the stream, as a browser's EventSource parses them, until it ends."""
    events: list[Received] = []
    fields: dict[str, str] = {}
    async with http.stream(
        "GET", f"/runs/{run_id}/events", headers=headers, params=params
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line == "":
                if fields:
                    events.append(Received(at=time.monotonic(), **fields))
                fields = {}
            elif not line.startswith(":"):  # comments are keep-alive pings
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
    return events


def assert_json_error(response: httpx.Response, status_code: int, *fragments: str) -> Any:
    assert response.status_code == status_code, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    for fragment in fragments:
        assert fragment.lower() in json.dumps(detail).lower(), detail
    return detail


# --- the life of a run ----------------------------------------------------------------


async def test_a_run_streams_its_events_live_until_it_completes(
    runs_api: ApiHarness, bookstore: Started
) -> None:
    http = runs_api.http(bookstore.member)
    accepted = bookstore.accepted
    run_id = accepted["id"]
    assert len(run_id) == 32 and accepted["workflow_id"] == f"run-{run_id}"
    assert accepted["status"] == "running"
    assert accepted["links"] == {
        "self": f"/runs/{run_id}",
        "status": f"/runs/{run_id}/status",
        "events": f"/runs/{run_id}/events",
        "artifacts": f"/runs/{run_id}/artifacts",
        "archive": f"/runs/{run_id}/archive",
        "patch": f"/runs/{run_id}/patch",
        "bundle": f"/runs/{run_id}/bundle",
        "pull_request": f"/runs/{run_id}/pull-request",
        "web_ui": f"http://127.0.0.1:8233/namespaces/default/workflows/run-{run_id}",
    }
    assert accepted["estimate"]["template"] == "sdlc"

    events = await read_events(http, run_id)
    stream_ended = time.monotonic()
    parsed = [RunEvent.model_validate_json(e.data) for e in events]
    assert [e.id for e in events] == [str(p.seq) for p in parsed]
    assert [p.seq for p in parsed] == list(range(1, len(parsed) + 1))
    assert [e.event for e in events] == [p.type.value for p in parsed]
    assert parsed[0].type == EventType.RUN_STARTED and parsed[0].data["goal"] == GOAL
    assert parsed[-1].type == EventType.RUN_COMPLETED
    assert [p.type for p in parsed].count(EventType.RUN_COMPLETED) == 1
    started: set[str] = set()
    for event in parsed:
        if event.type == EventType.TASK_STARTED:
            started.add(str(event.task))
        elif event.type == EventType.TASK_COMPLETED:
            assert event.task in started, f"{event.task} completed before it started"
    assert {"requirements", "backend", "frontend", "security_review"} <= started

    # The stream was live: events arrived well before the run's last one.
    assert stream_ended - events[0].at > 1.0
    record = await finished(http, run_id)
    assert record["status"] == "completed"

    # A client that reconnects with the last id it saw gets exactly what followed.
    middle = len(events) // 2
    rest = [(e.id, e.event, e.data) for e in events[middle:]]
    seen = events[middle - 1].id
    resumed = await read_events(http, run_id, headers={"Last-Event-ID": seen})
    assert [(e.id, e.event, e.data) for e in resumed] == rest
    by_param = await read_events(http, run_id, params={"after": seen})
    assert [(e.id, e.event, e.data) for e in by_param] == rest
    header_wins = await read_events(
        http, run_id, headers={"Last-Event-ID": seen}, params={"after": 0}
    )
    assert [(e.id, e.event, e.data) for e in header_wins] == rest
    assert await read_events(http, run_id, headers={"Last-Event-ID": events[-1].id}) == []
    bad = await http.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": "soon"})
    assert_json_error(bad, 422, "last-event-id")


async def test_a_closed_run_is_read_from_the_database(
    runs_api: ApiHarness, bookstore: Started
) -> None:
    http = runs_api.http(bookstore.member)
    run_id = bookstore.run_id
    record = await finished(http, run_id)
    assert (record["goal"], record["template"], record["status"]) == (GOAL, "sdlc", "completed")
    assert record["totals"]["input_tokens"] > 0 and record["totals"]["output_tokens"] > 0
    assert record["totals"]["cost_usd"] == 0.0  # the offline model is free
    assert record["completed_at"] is not None and record["error"] is None
    created = datetime.fromisoformat(record["created_at"])
    assert created <= datetime.fromisoformat(record["completed_at"])

    progress = (await http.get(f"/runs/{run_id}/status")).json()
    assert progress["source"] == "database"
    row = await storage.get_run(runs_api.db, run_id)
    assert row is not None and row.final_state is not None
    stored = RunState.model_validate_json(row.final_state)
    assert progress["status"] == "completed"
    assert progress["tasks"] == [t.model_dump(mode="json") for t in stored.tasks]
    assert progress["last_event_seq"] == stored.events[-1].seq
    assert "events" not in progress
    sdlc = [t.id for t in load_template("sdlc", ROLES).tasks]
    assert [t["id"] for t in progress["tasks"]] == sdlc
    assert {t["status"] for t in progress["tasks"]} <= {"completed", "skipped"}


async def test_without_temporal_a_closed_run_still_answers(
    runs_api: ApiHarness, bookstore: Started
) -> None:
    await finished(runs_api.http(bookstore.member), bookstore.run_id)
    other = await runs_api.tenant()
    open_run = compile_plan(
        load_template("sdlc", ROLES),
        goal=GOAL,
        run_id=f"open{bookstore.run_id[:8]}",
        tenant=other.org_id,
    )
    await storage.record_run_started(runs_api.db, open_run, workflow_id_for(open_run.run_id))
    nowhere = api_settings(TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")
    # No client given: the app connects on first use, to an address where nothing listens.
    async with serving_api(runs_api.db, None, nowhere, with_workers=False) as offline:  # type: ignore[arg-type]
        http = offline.http(bookstore.member)
        progress = await http.get(f"/runs/{bookstore.run_id}/status")
        assert progress.status_code == 200, progress.text
        assert (progress.json()["status"], progress.json()["source"]) == ("completed", "database")
        assert (await http.get(f"/runs/{bookstore.run_id}/archive")).status_code == 200
        events = await http.get(f"/runs/{bookstore.run_id}/events")
        assert_json_error(events, 503, "cannot reach Temporal")
        unknown = await offline.http(other.headers).get(f"/runs/{open_run.run_id}/status")
        assert_json_error(unknown, 503, "Temporal cannot be reached", open_run.run_id)


async def test_artifacts_list_download_and_archive(
    runs_api: ApiHarness, bookstore: Started, tmp_path: Path
) -> None:
    http = runs_api.http(bookstore.member)
    run_id = bookstore.run_id
    await finished(http, run_id)

    listed = (await http.get(f"/runs/{run_id}/artifacts")).json()
    paths = [a["path"] for a in listed]
    assert paths == sorted(paths) and len(paths) == len(set(paths))
    backend = [p for p in paths if p.startswith("backend/")]
    assert backend and any(p.endswith(".py") for p in backend)
    for artifact in listed:
        assert set(artifact) == {
            "path",
            "version",
            "task",
            "role",
            "model",
            "size",
            "sha256",
            "created_at",
        }
        response = await http.get(f"/runs/{run_id}/artifacts/{artifact['path']}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert hashlib.sha256(response.content).hexdigest() == artifact["sha256"]
        assert len(response.content) == artifact["size"]
        assert response.headers["etag"] == f'"{artifact["sha256"]}"'
    assert {a["model"] for a in listed} == {"offline-sim-1"}

    missing = await http.get(f"/runs/{run_id}/artifacts/backend/nothing_here.py")
    assert_json_error(missing, 404, "backend/nothing_here.py")

    response = await http.get(f"/runs/{run_id}/archive")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert f"run-{run_id}.zip" in response.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        zipped = {name: archive.read(name) for name in archive.namelist()}
    assert "PROVENANCE.md" in zipped and set(backend) <= set(zipped)
    assert b"offline" in zipped["PROVENANCE.md"]
    # Exactly what `orchestrator run` writes out.
    delivered = await export_repository(runs_api.db, run_id, workflow_id_for(run_id), tmp_path)
    assert zipped == {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in delivered}


async def test_runs_are_listed_with_filters(runs_api: ApiHarness, bookstore: Started) -> None:
    http = runs_api.http(bookstore.member)
    run_id = bookstore.run_id
    record = await finished(http, run_id)
    created = datetime.fromisoformat(record["created_at"])
    second = timedelta(seconds=1)

    async def listed(**params: Any) -> list[str]:
        response = await http.get("/runs", params=params)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["runs"]]

    everything = (await http.get("/runs")).json()
    assert everything["runs"] == [record] and everything["next"] is None
    assert await listed(status="completed") == [run_id]
    assert await listed(status="running") == []
    assert await listed(template="sdlc") == [run_id]
    assert await listed(template="gated") == []
    assert await listed(created_after=(created - second).isoformat()) == [run_id]
    assert await listed(created_after=(created + second).isoformat()) == []
    assert await listed(created_before=(created + second).isoformat()) == [run_id]
    assert await listed(created_before=(created - second).isoformat()) == []
    # Without an offset a time is UTC.
    naive = (created - second).astimezone(UTC).replace(tzinfo=None).isoformat()
    assert await listed(created_after=naive, status="completed", template="sdlc") == [run_id]
    assert_json_error(await http.get("/runs", params={"status": "asleep"}), 422, "status")


async def test_runs_are_paged_newest_first(runs_api: ApiHarness) -> None:
    tenant = await runs_api.tenant()
    template = load_template("sdlc", ROLES)
    ids = []
    for i in range(5):
        plan = compile_plan(
            template, goal=f"goal {i}", run_id=f"page{tenant.org_id[-8:]}{i}", tenant=tenant.org_id
        )
        await storage.record_run_started(runs_api.db, plan, workflow_id_for(plan.run_id))
        ids.append(plan.run_id)
    http = runs_api.http(tenant.headers)
    seen: list[str] = []
    pages = 0
    url: str | None = "/runs?limit=2&template=sdlc"
    while url is not None:
        page = (await http.get(url)).json()
        seen += [r["id"] for r in page["runs"]]
        assert len(page["runs"]) <= 2
        url = page["next"]
        if url is not None:
            assert "template=sdlc" in url and f"cursor={page['next_cursor']}" in url
        pages += 1
    assert seen == ids[::-1] and pages == 3
    cursor = (await http.get("/runs", params={"limit": 4})).json()["next_cursor"]
    last = (await http.get("/runs", params={"limit": 4, "cursor": cursor})).json()
    assert [r["id"] for r in last["runs"]] == [ids[0]] and last["next_cursor"] is None

    assert_json_error(await http.get("/runs", params={"limit": 0}), 422, "limit")
    assert_json_error(await http.get("/runs", params={"limit": 101}), 422, "limit")
    assert_json_error(await http.get("/runs", params={"cursor": "garbage!"}), 422, "cursor")


async def test_the_estimate_learns_from_the_tenants_history(
    runs_api: ApiHarness, bookstore: Started
) -> None:
    http = runs_api.http(bookstore.member)
    await finished(http, bookstore.run_id)
    # Per role from the ledger: a task's state also counts its validator's calls.
    spent: dict[str, int] = {}
    for entry in await storage.ledger_entries(runs_api.db, workflow_id_for(bookstore.run_id)):
        spent[entry.role] = spent.get(entry.role, 0) + entry.input_tokens + entry.output_tokens

    response = await http.post("/runs/estimate", json={"goal": "Build a library API"})
    assert response.status_code == 200, response.text
    estimate = response.json()
    assert (estimate["basis"], estimate["runs_seen"], estimate["template"]) == (
        "history",
        1,
        "sdlc",
    )
    assert estimate["model"] == "offline-sim-1"
    learned = {r["role"]: r for r in estimate["roles"] if r["basis"] == "history"}
    assert set(learned) == set(spent)
    for role, figures in learned.items():
        # One run seen, one task per role in sdlc: mean and p90 are what that task spent.
        assert figures["tokens"] == {"mean": spent[role], "p90": spent[role]}
        assert figures["models"] == ["offline-sim-1"]
        # The validator is estimated per run, from its calls on every validated task.
        assert figures["samples"] == 1 or role == "validator"
    assert estimate["cost_usd"] == {"mean": 0.0, "p90": 0.0}

    newcomer = await runs_api.tenant()
    fresh = (
        await runs_api.http(newcomer.headers).post(
            "/runs/estimate",
            json={"goal": "Build a library API", "inline_template": APPROVAL_TEMPLATE},
        )
    ).json()
    assert (fresh["basis"], fresh["runs_seen"]) == ("defaults", 0)
    assert fresh["note"] == "no history yet for template approval: per-role defaults"
    assert [r["role"] for r in fresh["roles"]] == ["business_analyst", "project_manager"]
    assert fresh["roles"][1]["tasks"] == 2
    assert fresh["tokens"]["p90"] > fresh["tokens"]["mean"] > 0


# --- tenancy --------------------------------------------------------------------------


async def test_another_tenant_cannot_see_or_touch_the_run(
    runs_api: ApiHarness, bookstore: Started
) -> None:
    owner = runs_api.http(bookstore.member)
    await finished(owner, bookstore.run_id)
    a_file = (await owner.get(f"/runs/{bookstore.run_id}/artifacts")).json()[0]["path"]
    stranger_org = await runs_api.tenant()
    stranger = runs_api.http(stranger_org.headers)

    def requests(run_id: str) -> list[tuple[str, str]]:
        return [
            ("GET", f"/runs/{run_id}"),
            ("GET", f"/runs/{run_id}/status"),
            ("GET", f"/runs/{run_id}/events"),
            ("GET", f"/runs/{run_id}/artifacts"),
            ("GET", f"/runs/{run_id}/artifacts/{a_file}"),
            ("GET", f"/runs/{run_id}/archive"),
            ("POST", f"/runs/{run_id}/cancel"),
        ]

    missing = "0" * 32
    for (method, url), (_, missing_url) in zip(
        requests(bookstore.run_id), requests(missing), strict=True
    ):
        theirs = await stranger.request(method, url)
        absent = await owner.request(method, missing_url)
        assert theirs.status_code == absent.status_code == 404, (url, theirs.text)
        assert theirs.json() == {"detail": f"no run with id {bookstore.run_id!r}"}
        assert absent.json() == {"detail": f"no run with id {missing!r}"}
        assert theirs.headers["content-type"] == absent.headers["content-type"]
    assert (await stranger.get("/runs")).json()["runs"] == []
    # The stranger's estimate does not learn from the owner's run either.
    estimate = (await stranger.post("/runs/estimate", json={"goal": GOAL})).json()
    assert estimate["basis"] == "defaults"


# --- refusals ---------------------------------------------------------------------------


async def test_bad_requests_are_refused_with_the_problem_named(runs_api: ApiHarness) -> None:
    tenant = await runs_api.tenant()
    http = runs_api.http(tenant.headers)

    assert_json_error(await http.post("/runs", json={}), 422, '"goal"', "missing")
    huge = await http.post("/runs", json={"goal": "x" * 1_000_000})
    assert_json_error(huge, 422, "1000000 characters", "at most 20000")
    assert len(huge.content) < 1000, "the goal must not be echoed back"
    assert_json_error(await http.post("/runs", json={"goal": "   "}), 422, "the goal is empty")
    cycle = assert_json_error(
        await http.post("/runs", json={"goal": GOAL, "inline_template": CYCLE_TEMPLATE}),
        422,
        "dependency cycle: a -> c -> b -> a",
    )
    assert cycle[0]["loc"] == ["body", "inline_template"]
    assert cycle[0]["ctx"] == {"problems": ["dependency cycle: a -> c -> b -> a"]}
    as_object = {
        "name": "loop",
        "tasks": [
            {"id": "a", "role": "tech_lead", "depends_on": ["b"]},
            {"id": "b", "role": "tech_lead", "depends_on": ["a"]},
        ],
    }
    assert_json_error(
        await http.post("/runs", json={"goal": GOAL, "inline_template": as_object}),
        422,
        "dependency cycle: a -> b -> a",
    )
    unknown_role = {"name": "x", "tasks": [{"id": "a", "role": "astrologer"}]}
    assert_json_error(
        await http.post("/runs/estimate", json={"goal": GOAL, "inline_template": unknown_role}),
        422,
        "unknown role 'astrologer'",
    )
    assert_json_error(
        await http.post("/runs", json={"goal": GOAL, "inline_template": "tasks: [a"}),
        422,
        "not valid YAML",
    )
    assert_json_error(
        await http.post("/runs", json={"goal": GOAL, "template": "nope"}),
        422,
        "unknown template 'nope'",
        "sdlc",
    )
    assert_json_error(
        await http.post("/runs", json={"goal": GOAL, "template": "/etc/passwd"}),
        422,
        "unknown template '/etc/passwd'",
    )
    assert_json_error(
        await http.post(
            "/runs", json={"goal": GOAL, "template": "sdlc", "inline_template": APPROVAL_TEMPLATE}
        ),
        422,
        "not both",
    )
    malformed = await http.post(
        "/runs", content=b'{"goal": "Build', headers={"content-type": "application/json"}
    )
    assert_json_error(malformed, 422, "json")
    assert_json_error(
        await http.post("/runs", json={"goal": GOAL, "budget_tokens": -1}), 422, "budget_tokens"
    )
    assert_json_error(
        await http.post("/runs", json={"goal": GOAL, "templte": "sdlc"}), 422, "templte"
    )
    viewer = runs_api.http(await runs_api.key(tenant, OrgRole.VIEWER))
    assert_json_error(await viewer.post("/runs", json={"goal": GOAL}), 403, "viewer")
    assert (await http.get("/runs")).json()["runs"] == []


async def test_a_tenant_over_its_monthly_budget_is_refused_with_402(
    runs_api: ApiHarness,
) -> None:
    broke = await runs_api.tenant(monthly_token_limit=1)
    http = runs_api.http(broke.headers)
    response = await http.post("/runs", json={"goal": GOAL})
    assert response.status_code == 402, response.text
    body = response.json()
    assert "1 tokens left this month" in body["detail"]
    assert body["remaining"]["tokens"] == 1 and body["remaining"]["cost_usd"] is None
    assert body["estimate"]["tokens"]["mean"] > 1
    assert body["estimate"]["basis"] == "defaults"
    assert (await http.get("/runs")).json()["runs"] == []

    spent = await runs_api.tenant(monthly_cost_limit_usd=0.0)
    refused = await runs_api.http(spent.headers).post("/runs", json={"goal": GOAL})
    assert refused.status_code == 402
    assert refused.json()["remaining"] == {
        "tokens": None,
        "cost_usd": 0.0,
        "since": refused.json()["remaining"]["since"],
    }


async def test_a_limit_set_on_an_unlimited_tenant_refuses_its_next_run(
    runs_api: ApiHarness,
) -> None:
    """This process keeps a tenant's limits for LIMITS_TTL_SECONDS: one set through it counts
    at once, one set by another process within that window."""
    tenant = await runs_api.tenant()
    http = runs_api.http(tenant.headers)
    assert (await http.post("/runs", json={"goal": GOAL})).status_code == 202
    limited = await http.patch("/orgs/me/budget", json={"monthly_token_limit": 1})
    assert limited.status_code == 200, limited.text
    assert (await http.post("/runs", json={"goal": GOAL})).status_code == 402

    other = await runs_api.tenant()
    http = runs_api.http(other.headers)
    assert (await http.post("/runs", json={"goal": GOAL})).status_code == 202
    set_at = time.monotonic()
    await tenancy.update_org_limits(runs_api.db, other.org_id, monthly_cost_limit_usd=0.0)
    while (answer := await http.post("/runs", json={"goal": GOAL})).status_code == 202:
        assert time.monotonic() - set_at < LIMITS_TTL_SECONDS, "the limit never counted"
        await asyncio.sleep(0.5)
    assert answer.status_code == 402, answer.text


# --- cancelling -------------------------------------------------------------------------


async def test_a_running_run_is_cancelled(runs_api: ApiHarness) -> None:
    tenant = await runs_api.tenant()
    http = runs_api.http(tenant.headers)
    started = await http.post(
        "/runs",
        json={
            "goal": GOAL,
            "inline_template": APPROVAL_TEMPLATE,
            "budget_tokens": 5_000_000,
            "escalation": {"tier3_after_seconds": 3600, "auto_decision": "reject"},
        },
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    # The workflow got the plan as asked, in the caller's organization.
    history = await runs_api.temporal.get_workflow_handle(f"run-{run_id}").fetch_history()
    attributes = history.events[0].workflow_execution_started_event_attributes
    [plan] = await runs_api.temporal.data_converter.decode(attributes.input.payloads, [RunPlan])
    assert (plan.tenant, plan.template, plan.goal) == (tenant.org_id, "approval", GOAL)
    assert plan.budget_tokens == 5_000_000 and plan.budget_usd is None
    assert plan.escalation.auto_decision == "reject"
    assert plan.escalation.tier3_after_seconds == 3600

    deadline = time.monotonic() + 60
    while True:
        progress = (await http.get(f"/runs/{run_id}/status")).json()
        if progress["status"] == "waiting":
            break
        assert time.monotonic() < deadline, progress
        await asyncio.sleep(0.3)
    assert progress["source"] == "workflow"
    assert [t["status"] for t in progress["tasks"]] == ["completed", "waiting", "pending"]

    async def listed_as_waiting() -> bool:
        listed = (await http.get("/runs", params={"status": "waiting"})).json()["runs"]
        return [r["id"] for r in listed] == [run_id]

    await wait_until(listed_as_waiting)  # the row follows the workflow's status

    viewer = runs_api.http(await runs_api.key(tenant, OrgRole.VIEWER))
    assert_json_error(await viewer.post(f"/runs/{run_id}/cancel"), 403, "viewer")
    assert (await viewer.get(f"/runs/{run_id}")).status_code == 200

    cancelled = await http.post(f"/runs/{run_id}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json() == {"run_id": run_id, "detail": "cancellation requested"}
    record = await finished(http, run_id, timeout=60)
    assert record["status"] == "cancelled"

    events = await read_events(http, run_id)
    assert events[-1].event == "run.cancelled"
    assert events[0].event == "run.started"
    closed = (await http.get(f"/runs/{run_id}/status")).json()
    assert (closed["status"], closed["source"]) == ("cancelled", "database")
    assert_json_error(await http.post(f"/runs/{run_id}/cancel"), 409, "not running")
