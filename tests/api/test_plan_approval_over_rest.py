"""The work breakdown over REST: `approve_plan` in `POST /runs`, the plan waiting for a
person in `GET /runs/{id}/plan`, an edit refused with the reason and an edit taken."""

from __future__ import annotations

from temporalio.client import Client

from core.contracts import RunStatus
from core.persistence.db import Database
from core.services.runs import final_state, goal_handle
from tests.api_harness import api_settings, assert_json_error, pending_over_http, serving_api
from tests.helpers import wait_until

GOAL = "Build a todo API"
ONE_PACKAGE = {
    "packages": [
        {
            "id": "service",
            "role": "backend_engineer",
            "description": "The whole todo API with its tests.",
            "acceptance_criteria": ["the tests pass"],
            "owns": ["backend/"],
        }
    ],
    "rationale": "one engineer is enough",
}


async def test_a_person_sees_the_breakdown_and_edits_it_over_rest(
    sqlite_db: Database, dev_client: Client
) -> None:
    async with serving_api(sqlite_db, dev_client, api_settings()) as api:
        tenant = await api.tenant()
        http = api.http(tenant.headers)
        started = await http.post("/runs", json={"goal": GOAL, "approve_plan": True})
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]

        async def asked() -> bool:
            return bool(await pending_over_http(api, tenant, run_id))

        await wait_until(asked, timeout=180)
        [pending] = await pending_over_http(api, tenant, run_id)
        assert pending["key"] == "plan_approval"
        assert pending["options"] == ["approve", "edit", "request_changes", "reject"]

        shown = await http.get(f"/runs/{run_id}/plan")
        assert shown.status_code == 200, shown.text
        [stage] = shown.json()
        assert (stage["stage"], stage["status"]) == ("implementation", "awaiting_approval")
        assert [p["id"] for p in stage["breakdown"]["packages"]] == ["backend", "frontend"]
        assert "| backend | backend_engineer | - | backend/ |" in stage["table"]
        assert stage["mermaid"].startswith("graph TD\n")
        assert_json_error(
            await api.http((await api.tenant()).headers).get(f"/runs/{run_id}/plan"), 404
        )

        twice = {
            **ONE_PACKAGE,
            "packages": [*ONE_PACKAGE["packages"], {**ONE_PACKAGE["packages"][0], "id": "again"}],
        }
        refused = await http.post(
            f"/runs/{run_id}/decisions/plan_approval", json={"decision": "edit", "breakdown": twice}
        )
        assert_json_error(refused, 409, "path 'backend/' is owned by both 'service' and 'again'")
        missing = await http.post(
            f"/runs/{run_id}/decisions/plan_approval", json={"decision": "edit"}
        )
        assert_json_error(missing, 409, "needs the edited breakdown")

        edited = await http.post(
            f"/runs/{run_id}/decisions/plan_approval",
            json={"decision": "edit", "breakdown": ONE_PACKAGE, "comment": "keep it small"},
        )
        assert edited.status_code == 202, edited.text
        final = await final_state(sqlite_db, goal_handle(dev_client, run_id))
        assert final.status == RunStatus.COMPLETED, final.error
        assert "service" in {t.id for t in final.tasks}
        assert not {"backend", "frontend"} & {t.id for t in final.tasks}

        closed = (await http.get(f"/runs/{run_id}/plan")).json()
        assert closed[0]["status"] == "expanded" and closed[0]["tasks"] == ["service"]
        assert closed[0]["decided_by"] not in (None, "policy")
