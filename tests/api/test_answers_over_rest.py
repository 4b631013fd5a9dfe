"""A run started over REST prints the curl line that answers its gate, and that line works;
a failed run (failed in Temporal too) still answers its status over REST."""

from __future__ import annotations

import asyncio

from temporalio.client import WorkflowExecutionStatus

from core.contracts import RunStatus, TaskStatus
from core.services.runs import final_state, goal_handle
from tests.api_harness import ApiHarness, pending_over_http, start_for
from tests.helpers import (
    TEMPLATES,
    command_lines,
    current_details,
    make_plan,
    row_says,
    wait_until,
)
from tests.processes import shell_line

APPROVAL = TEMPLATES / "approval.yaml"


async def test_the_rest_line_of_a_waiting_run_answers_its_gate(api: ApiHarness) -> None:
    tenant = await api.tenant()
    http = api.http(tenant.headers)
    created = await http.post(
        "/runs", json={"goal": "Build a todo API", "inline_template": APPROVAL.read_text()}
    )
    assert created.status_code == 202, created.text
    run_id = created.json()["id"]
    handle = goal_handle(api.temporal, run_id)
    static = await (await handle.describe()).static_details() or ""
    assert f"{api.base_url}/runs/{run_id}/status" in static

    async def waiting() -> bool:
        return bool(await pending_over_http(api, tenant, run_id))

    await wait_until(waiting)
    await wait_until(row_says(api.db, run_id, "waiting"))
    assert (await http.get(f"/runs/{run_id}")).json()["status"] == "waiting"
    details = await current_details(handle)
    approve = command_lines(details, "curl")[0]
    assert approve.startswith(f"curl -X POST {api.base_url}/runs/{run_id}/decisions/approval ")
    assert approve.endswith("""-d '{"decision": "approve"}'""")

    answered = await asyncio.to_thread(
        shell_line, f"{approve} --fail-with-body", {"ORCHESTRATOR_API_KEY": tenant.key.secret}
    )
    assert answered.returncode == 0, answered.stdout + answered.stderr
    assert "approve by key:" in answered.stdout and "accepted for approval" in answered.stdout
    final = await final_state(api.db, handle)

    assert final.status == RunStatus.COMPLETED
    assert await row_says(api.db, run_id, "completed")()


async def test_a_failed_run_is_failed_in_temporal_and_its_status_still_answers(
    api: ApiHarness,
) -> None:
    tenant = await api.tenant()
    http = api.http(tenant.headers)
    handle = await start_for(api, tenant, make_plan(template=str(APPROVAL)))
    run_id = handle.id.removeprefix("run-")

    async def waiting() -> bool:
        return bool(await pending_over_http(api, tenant, run_id))

    await wait_until(waiting)
    rejected = await http.post(
        f"/runs/{run_id}/decisions/approval", json={"decision": "reject", "comment": "no"}
    )
    assert rejected.status_code == 202, rejected.text
    final = await final_state(api.db, handle)
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED

    status = await http.get(f"/runs/{run_id}/status")
    assert status.status_code == 200, status.text
    body = status.json()
    assert (body["status"], body["source"]) == ("failed", "database")
    tasks = {t["id"]: t for t in body["tasks"]}
    assert tasks["approval"]["status"] == TaskStatus.FAILED
    assert tasks["approval"]["error"].startswith("rejected by key:")
    paths = [a["path"] for a in tasks["requirements"]["artifacts"]]
    assert paths == [a.path for a in final.task("requirements").artifacts] and paths
    listed = (await http.get(f"/runs/{run_id}/artifacts")).json()
    assert set(paths) <= {a["path"] for a in listed}
