"""The plan over REST: `require_human` and the deployment's gate settings in `POST /runs`,
the run's graph (`GET /runs/{id}/graph`), a task changed with the path naming it, and a
template's escalation policy checked like the body's."""

from __future__ import annotations

from temporalio.client import Client

from core.contracts import RunStatus
from core.persistence.db import Database
from core.services.runs import final_state, goal_handle
from tests.api_harness import api_settings, assert_json_error, pending_over_http, serving_api
from tests.helpers import TEMPLATES, wait_until

GOAL = "Build a todo API"
GATED = (TEMPLATES / "gated.yaml").read_text()


async def test_a_run_asks_for_a_signoff_draws_its_graph_and_takes_a_change_by_path(
    postgres_db: Database, dev_client: Client
) -> None:
    settings = api_settings(REQUIRE_SECURITY_REVIEW=False)
    async with serving_api(postgres_db, dev_client, settings) as api:
        tenant = await api.tenant()
        http = api.http(tenant.headers)
        started = await http.post(
            "/runs", json={"goal": GOAL, "inline_template": GATED, "require_human": True}
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]

        async def asked() -> bool:
            return bool(await pending_over_http(api, tenant, run_id))

        await wait_until(asked, timeout=120)
        [pending] = await pending_over_http(api, tenant, run_id)
        assert (pending["key"], pending["reason"]) == (
            "code_review",
            "human sign-off required: the checks and the reviewer passed",
        )

        graph = await http.get(f"/runs/{run_id}/graph")
        assert graph.status_code == 200, graph.text
        assert graph.headers["content-type"].startswith("text/plain")
        assert graph.text.startswith("flowchart TD\n")
        assert "t_backend --> t_code_review" in graph.text
        assert "class t_code_review waiting" in graph.text
        assert_json_error(
            await api.http((await api.tenant()).headers).get(f"/runs/{run_id}/graph"), 404
        )

        changed = await http.patch(
            f"/runs/{run_id}/tasks/security_review", json={"prompt_addition": "Check the auth."}
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["id"] == "security_review"
        same = await http.patch(
            f"/runs/{run_id}/tasks/security_review",
            json={"task": "security_review", "model": "offline-sim-1"},
        )
        assert same.status_code == 200, same.text
        other = await http.patch(
            f"/runs/{run_id}/tasks/security_review", json={"task": "backend", "model": "x"}
        )
        assert_json_error(other, 422, "the path names task 'security_review'")

        approved = await http.post(
            f"/runs/{run_id}/decisions/code_review", json={"decision": "approve"}
        )
        assert approved.status_code == 202, approved.text
        final = await final_state(postgres_db, goal_handle(dev_client, run_id))
        assert final.status == RunStatus.COMPLETED, final.error
        assert final.task("security_review").summary == (
            "skipped: REQUIRE_SECURITY_REVIEW is false"
        )
        closed = await http.get(f"/runs/{run_id}/graph")
        assert "class t_security_review skipped" in closed.text


async def test_a_templates_escalation_policy_is_checked_like_the_bodys(
    postgres_db: Database, dev_client: Client
) -> None:
    template = GATED.replace(
        "tasks:", "settings:\n  escalation: {email_to: [lead@example.com]}\ntasks:", 1
    )
    async with serving_api(postgres_db, dev_client, api_settings(), with_workers=False) as api:
        http = api.http((await api.tenant()).headers)
        refused = await http.post("/runs", json={"goal": GOAL, "inline_template": template})
        assert_json_error(refused, 422, "SMTP_HOST")
        assert refused.json()["detail"][0]["loc"] == [
            "body",
            "inline_template",
            "settings",
            "escalation",
            "email_to",
        ]
        own = await http.post(
            "/runs",
            json={
                "goal": GOAL,
                "inline_template": template,
                "escalation": {"email_to": ["ops@example.com"]},
            },
        )
        assert own.json()["detail"][0]["loc"] == ["body", "escalation", "email_to"]
