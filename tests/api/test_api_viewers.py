"""A viewer key changes nothing: every mutating endpoint answers 403 and leaves all as it was.

One run is brought to where every steering request would take effect for a member: a task
dead-lettered, a gate and a spent budget waiting for decisions, and pending tasks that can
be modified or removed. A viewer then tries each mutating endpoint in turn; the run's
workflow (queried, and its history) and the organization's records must be unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from agents.providers.anthropic import AnthropicProvider
from api.app import create_app
from core.contracts import PendingDecision, RunState
from core.persistence.spending_guard import LIMITS_TTL_SECONDS
from core.persistence.tenancy import OrgRole
from tests.api_harness import (
    ApiHarness,
    Tenant,
    api_settings,
    assert_json_error,
    isolated_client,
    pending_over_http,
    serving_api,
    start_for,
)
from tests.conftest import emptied_postgres
from tests.fakes.messages_api import FakeMessagesAPI
from tests.fakes.responders import FaultyDesigner
from tests.helpers import make_plan, wait_until

TEMPLATE = """
name: steered
settings:
  validate: false
tasks:
  - id: requirements
    role: business_analyst
  - id: design
    role: ux_engineer
    depends_on: [requirements]
  - id: approval
    role: project_manager
    gate: human_approval
    depends_on: [requirements]
  - id: planning
    role: project_manager
    depends_on: [design, approval]
"""


@dataclass(frozen=True)
class Case:
    method: str
    route: str
    """The endpoint as the OpenAPI document names it."""
    body: dict[str, Any] | None = None
    params: tuple[tuple[str, str], ...] = ()
    """Path parameters besides the ids of the run and of the organization's records."""


CASES = {
    "decide a gate": Case(
        "POST", "/runs/{run_id}/decisions/{gate}", {"decision": "approve"}, (("gate", "approval"),)
    ),
    "raise the spent budget": Case(
        "POST",
        "/runs/{run_id}/decisions/{gate}",
        {"decision": "raise", "budget_tokens": 10**9},
        (("gate", "budget"),),
    ),
    **{
        f"{action} a dead letter": Case(
            "POST", "/runs/{run_id}/tasks/{task}/resolve", {"action": action}, (("task", "design"),)
        )
        for action in ("retry", "skip", "abort")
    },
    "reset the run": Case("POST", "/runs/{run_id}/reset", {"to_task": "requirements"}),
    "add a task": Case("POST", "/runs/{run_id}/tasks", {"id": "extra", "role": "tech_lead"}),
    "modify a task": Case(
        "PATCH",
        "/runs/{run_id}/tasks/{task}",
        {"prompt_addition": "Cut scope."},
        (("task", "planning"),),
    ),
    "remove a task": Case("DELETE", "/runs/{run_id}/tasks/{task}", None, (("task", "planning"),)),
    "cancel the run": Case("POST", "/runs/{run_id}/cancel"),
    "start a run": Case("POST", "/runs", {"goal": "Build a todo API", "inline_template": TEMPLATE}),
    "upload a repository": Case("POST", "/repositories", {"not": "an archive"}),
    "set the monthly budget": Case("PATCH", "/orgs/me/budget", {"monthly_token_limit": 5}),
    "issue a key": Case("POST", "/keys", {"name": "mine-now", "role": "admin"}),
    "revoke a key": Case("DELETE", "/keys/{key_id}"),
    "add a team": Case("POST", "/teams", {"name": "shadow"}),
    "add a user": Case("POST", "/users", {"subject": "mallory", "role": "admin"}),
    "promote a user": Case("PATCH", "/users/{user_id}", {"role": "admin"}),
    "subscribe a webhook": Case("POST", "/webhooks", {"url": "http://127.0.0.1:9/exfiltrate"}),
    "delete a webhook": Case("DELETE", "/webhooks/{subscription_id}"),
}

NOT_MUTATING = {
    ("POST", "/runs/estimate"),  # prices a plan, stores nothing
    ("POST", "/codec/encode"),  # payload transforms for the Web UI
    ("POST", "/codec/decode"),
    ("POST", "/orgs"),  # the operator's token, never an organization's key
}


def test_the_viewer_test_covers_every_mutating_endpoint() -> None:
    """A new mutating endpoint fails here until it is added to CASES."""
    paths = create_app(api_settings()).openapi()["paths"]
    mutating = {
        (method.upper(), route)
        for route, operations in paths.items()
        for method in operations
        if method in ("post", "put", "patch", "delete")
    }
    assert mutating - NOT_MUTATING == {(c.method, c.route) for c in CASES.values()}


@dataclass
class Steered:
    api: ApiHarness
    admin: Tenant
    viewer: dict[str, str]
    handle: WorkflowHandle[Any, RunState]
    ids: dict[str, str]

    async def snapshot(self) -> dict[str, Any]:
        """Everything a steering request could change: the workflow and the org's records."""
        latest = self.api.temporal.get_workflow_handle(self.handle.id)
        described = await latest.describe()
        state = await latest.query("status", result_type=RunState)
        pending = await latest.query("pending_decisions", result_type=list[PendingDecision])
        admin = self.api.http(self.admin.headers)
        records = {
            path: (await admin.get(path)).json()
            for path in ("/orgs/me", "/keys", "/teams", "/users", "/webhooks", "/runs")
        }
        for key in records["/keys"]:
            key.pop("last_used_at")  # the admin's own reads move it
        return {
            "execution": (described.run_id, described.status, described.history_length),
            "state": state.model_dump(),
            "pending": [p.model_dump() for p in pending],
            "records": records,
        }


@pytest.fixture(scope="module")
async def steered(
    dev_env: WorkflowEnvironment, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Steered]:
    template = tmp_path_factory.mktemp("viewers") / "steered.yaml"
    template.write_text(TEMPLATE)
    db = await emptied_postgres(postgres_url)
    temporal = await isolated_client(dev_env.client)
    with FakeMessagesAPI() as model:
        model.responder = FaultyDesigner(model)
        provider = AnthropicProvider(api_key="test-key", base_url=model.base_url)
        try:
            async with serving_api(db, temporal, api_settings(), provider) as api:
                steered = await waiting_everywhere(api, template)
                yield steered
                await steered.handle.terminate("the viewer tests are done")
        finally:
            await provider.aclose()
            await db.dispose()


async def waiting_everywhere(api: ApiHarness, template: Path) -> Steered:
    admin = await api.tenant()
    http = api.http(admin.headers)
    handle = await start_for(api, admin, make_plan(template=str(template)))
    run_id = handle.id.removeprefix("run-")

    async def waiting_for(*keys: str) -> bool:
        return {p["key"] for p in await pending_over_http(api, admin, run_id)} >= set(keys)

    await wait_until(lambda: waiting_for("design", "approval"))
    # A spent month pauses the next model call: the added task's. Lifting the limit again
    # leaves the pause waiting for its decision, and lets a member start runs.
    assert (await http.patch("/orgs/me/budget", json={"monthly_token_limit": 1})).is_success
    # The agent worker keeps limits it read for LIMITS_TTL_SECONDS (a limit set counts
    # within that time): the added task's call comes after it.
    await asyncio.sleep(LIMITS_TTL_SECONDS + 0.5)
    added = await http.post(f"/runs/{run_id}/tasks", json={"id": "docs", "role": "tech_lead"})
    assert added.status_code == 201, added.text
    await wait_until(lambda: waiting_for("design", "approval", "budget"))
    assert (await http.patch("/orgs/me/budget", json={"monthly_token_limit": None})).is_success

    key = (await http.post("/keys", json={"name": "ci", "role": "member"})).json()
    user = (await http.post("/users", json={"subject": "bob"})).json()
    hook = (await http.post("/webhooks", json={"url": "http://127.0.0.1:9/hook"})).json()
    steered = Steered(
        api=api,
        admin=admin,
        viewer=await api.key(admin, OrgRole.VIEWER),
        handle=handle,
        ids={
            "run_id": run_id,
            "key_id": key["id"],
            "user_id": user["id"],
            "subscription_id": hook["id"],
        },
    )
    await until_quiet(steered)
    return steered


async def until_quiet(steered: Steered) -> None:
    """Wait until the workflow's history stops growing (webhook deliveries, timers set)."""
    lengths: list[int] = []

    async def settled() -> bool:
        lengths.append((await steered.handle.describe()).history_length)
        return len(lengths) > 10 and len(set(lengths[-10:])) == 1

    await wait_until(settled)


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_a_viewer_key_changes_nothing(steered: Steered, case: Case) -> None:
    before = await steered.snapshot()
    url = case.route.format(**steered.ids, **dict(case.params))

    response = await steered.api.http(steered.viewer).request(case.method, url, json=case.body)

    assert_json_error(response, 403)
    assert await steered.snapshot() == before
