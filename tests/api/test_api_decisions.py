"""Steering over REST: gate decisions, the budget pause, dead letters, roles and tenants."""

from __future__ import annotations

from typing import Any

from agents.providers.anthropic import AnthropicProvider
from core.contracts import EventType, RunState, RunStatus, TaskStatus
from core.persistence import storage
from core.persistence.tenancy import OrgRole
from core.services.runs import final_state
from tests.api_harness import (
    ApiHarness,
    api_settings,
    pending_over_http,
    serving_api,
    start_for,
)
from tests.fakes.messages_api import FakeMessagesAPI
from tests.helpers import TEMPLATES, make_plan, wait_until


async def test_a_gate_is_decided_over_rest_by_a_member_not_a_viewer(api: ApiHarness) -> None:
    tenant = await api.tenant()
    other = await api.tenant()
    handle = await start_for(api, tenant, make_plan(template=str(TEMPLATES / "approval.yaml")))
    run_id = handle.id.removeprefix("run-")

    async def waiting() -> bool:
        return bool(await pending_over_http(api, tenant, run_id))

    await wait_until(waiting)
    [pending] = await pending_over_http(api, tenant, run_id)
    assert (pending["kind"], pending["key"]) == ("gate", "approval")

    viewer = api.http(await api.key(tenant, OrgRole.VIEWER))
    refused = await viewer.post(f"/runs/{run_id}/decisions/approval", json={"decision": "approve"})
    assert refused.status_code == 403
    assert "viewer" in refused.json()["detail"]

    stranger = api.http(other.headers)
    hidden = await stranger.post(f"/runs/{run_id}/decisions/approval", json={"decision": "approve"})
    assert hidden.status_code == 404
    assert (await stranger.get(f"/runs/{run_id}/decisions")).status_code == 404

    member = api.http(await api.key(tenant, OrgRole.MEMBER))
    wrong_gate = await member.post(f"/runs/{run_id}/decisions/review", json={"decision": "approve"})
    assert wrong_gate.status_code == 409
    assert "not waiting for a decision on gate 'review'" in wrong_gate.json()["detail"]
    not_an_option = await member.post(
        f"/runs/{run_id}/decisions/approval", json={"decision": "raise"}
    )
    assert not_an_option.status_code == 409
    assert "'raise' is not an option" in not_an_option.json()["detail"]
    unknown = await member.post(f"/runs/{run_id}/decisions/approval", json={"decision": "maybe"})
    assert unknown.status_code == 422

    accepted = await member.post(
        f"/runs/{run_id}/decisions/approval",
        json={"decision": "approve", "comment": "looks right"},
    )
    assert accepted.status_code == 202, accepted.text
    final = await handle.result()

    assert final.status == RunStatus.COMPLETED
    approval = final.task("approval")
    assert approval.verdicts[-1].passed
    assert approval.verdicts[-1].decided_by.startswith("human:key:")
    made = [e for e in final.events if e.type == EventType.DECISION_MADE]
    assert [(e.task, e.data["decision"]) for e in made] == [("approval", "approve")]


async def test_a_run_pauses_when_its_budget_is_spent_and_goes_on_when_raised(
    api: ApiHarness,
) -> None:
    tenant = await api.tenant()
    handle = await start_for(
        api, tenant, make_plan(template=str(TEMPLATES / "approval.yaml"), budget_tokens=1)
    )
    run_id = handle.id.removeprefix("run-")

    async def paused() -> bool:
        return any(p["kind"] == "budget" for p in await pending_over_http(api, tenant, run_id))

    await wait_until(paused)
    spent_before = await storage.ledger_entries(api.db, handle.id)
    assert len(spent_before) == 1  # the first call was allowed; nothing after the limit
    state = await handle.query("status", result_type=RunState)
    assert state.status == RunStatus.WAITING
    exceeded = [e for e in state.events if e.type == EventType.BUDGET_EXCEEDED]
    assert len(exceeded) == 1
    assert "run token budget spent" in exceeded[0].data["reason"]

    member = api.http(tenant.headers)
    raised = await member.post(
        f"/runs/{run_id}/decisions/budget",
        json={"decision": "raise", "budget_tokens": 10_000_000, "comment": "worth it"},
    )
    assert raised.status_code == 202, raised.text

    async def at_the_gate() -> bool:
        return any(p["key"] == "approval" for p in await pending_over_http(api, tenant, run_id))

    await wait_until(at_the_gate)
    await member.post(f"/runs/{run_id}/decisions/approval", json={"decision": "approve"})
    final = await handle.result()
    assert final.status == RunStatus.COMPLETED
    entries = await storage.ledger_entries(api.db, handle.id)
    assert len(entries) == sum(t.turns for t in final.tasks)  # nothing counted twice


async def test_a_spent_monthly_budget_pauses_and_abort_fails_the_run(api: ApiHarness) -> None:
    tenant = await api.tenant(monthly_token_limit=1)
    handle = await start_for(api, tenant, make_plan(template=str(TEMPLATES / "approval.yaml")))
    run_id = handle.id.removeprefix("run-")

    async def paused() -> bool:
        return any(p["kind"] == "budget" for p in await pending_over_http(api, tenant, run_id))

    await wait_until(paused)
    [pending] = await pending_over_http(api, tenant, run_id)
    assert f"monthly token budget of {tenant.name} spent" in pending["reason"]
    assert pending["options"] == ["raise", "abort"]

    aborted = await api.http(tenant.headers).post(
        f"/runs/{run_id}/decisions/budget", json={"decision": "abort"}
    )
    assert aborted.status_code == 202
    final = await final_state(api.db, handle)
    assert final.status == RunStatus.FAILED
    assert final.error is not None and "budget spent" in final.error
    assert final.task("requirements").status == TaskStatus.FAILED
    assert len(await storage.ledger_entries(api.db, handle.id)) == 1


async def test_dead_letters_are_listed_per_tenant_and_resolved_over_rest(
    postgres_db: Any, dev_client: Any
) -> None:
    with FakeMessagesAPI() as model:
        model.enqueue_error(400, "messages.0.content: field required")
        provider = AnthropicProvider(api_key="test-key", base_url=model.base_url)
        async with serving_api(postgres_db, dev_client, api_settings(), provider) as api:
            tenant, other = await api.tenant(), await api.tenant()
            handle = await start_for(api, tenant, make_plan())
            run_id = handle.id.removeprefix("run-")
            http = api.http(tenant.headers)

            async def listed() -> bool:
                rows = (await http.get("/dlq")).json()
                return any(r["run_id"] == run_id for r in rows)

            await wait_until(listed)
            rows = [r for r in (await http.get("/dlq")).json() if r["run_id"] == run_id]
            assert [(r["task"]) for r in rows] == ["requirements"]
            assert "messages.0.content: field required" in rows[0]["reason"]
            theirs = (await api.http(other.headers).get("/dlq")).json()
            assert all(r["run_id"] != run_id for r in theirs)

            bad = await http.post(f"/runs/{run_id}/tasks/requirements/resolve", json={})
            assert bad.status_code == 422
            resolved = await http.post(
                f"/runs/{run_id}/tasks/requirements/resolve",
                json={"action": "abort", "comment": "bad request"},
            )
            assert resolved.status_code == 202, resolved.text
            final = await final_state(api.db, handle)
    assert final.status == RunStatus.FAILED
    assert "aborted by key:" in (final.task("requirements").error or "")


async def test_tasks_are_added_over_rest_and_a_cycle_is_refused(api: ApiHarness) -> None:
    tenant = await api.tenant()
    handle = await start_for(api, tenant, make_plan(template=str(TEMPLATES / "approval.yaml")))
    run_id = handle.id.removeprefix("run-")
    http = api.http(tenant.headers)

    async def waiting() -> bool:
        return bool(await pending_over_http(api, tenant, run_id))

    await wait_until(waiting)
    cyclic = await http.post(
        f"/runs/{run_id}/tasks",
        json={
            "id": "docs",
            "role": "tech_lead",
            "depends_on": ["planning"],
            "before": ["planning"],
        },
    )
    assert cyclic.status_code == 409
    assert "cycle" in cyclic.json()["detail"]
    added = await http.post(
        f"/runs/{run_id}/tasks",
        json={"id": "docs", "role": "tech_lead", "depends_on": ["planning"]},
    )
    assert added.status_code == 201, added.text
    assert added.json()["status"] == "pending"
    await http.post(f"/runs/{run_id}/decisions/approval", json={"decision": "approve"})
    final = await handle.result()
    assert final.task("docs").status == TaskStatus.COMPLETED
