"""Work packages: the planner's breakdown expands the DAG, on the real stack.

The offline model plans the `sdlc` template's implementation stage; a scripted team behind
the loopback Messages API plans the `packages` template, where a refused breakdown falls
back, a person edits the plan before it expands, and a gate's finding goes back to the
package that owns the file.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowUpdateFailedError

from agents.providers.anthropic import AnthropicProvider
from core.contracts import (
    PLAN_APPROVAL_GATE,
    Decision,
    DecisionKind,
    EventType,
    ExpansionStatus,
    PendingDecision,
    RunState,
    RunStatus,
    TaskStatus,
    WorkBreakdown,
    WorkPackage,
)
from core.persistence import check_results
from core.persistence.db import Database
from core.services.runs import final_state
from core.services.steering import reset_to_task
from offline import OfflineProvider
from tests.fakes.loopback import ReplyLike, role_of
from tests.fakes.messages_api import FakeMessagesAPI, text_message, tool_use_message
from tests.helpers import (
    TASK_MANAGER_GOAL,
    TEMPLATES,
    command_lines,
    current_details,
    make_plan,
    run_to_end,
    started,
    wait_until,
)

PACKAGES = str(TEMPLATES / "packages.yaml")


def first_text(request: dict[str, Any]) -> str:
    first = request["messages"][0]["content"]
    return first if isinstance(first, str) else " ".join(b.get("text", "") for b in first)


def package(id_: str, owns: list[str], **fields: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "role": "backend_engineer",
        "description": f"write {', '.join(owns)}",
        "owns": owns,
        **fields,
    }


GOOD_BREAKDOWN = {
    "packages": [
        package("core", ["backend/app.py"], acceptance_criteria=["add works"]),
        package("report", ["backend/report.py"], depends_on=["core"]),
    ],
    "rationale": "the service, then its report",
}
BAD_BREAKDOWN = {
    "packages": [
        package("core", ["backend/"]),
        {**package("report", ["backend/report.py"]), "role": "wizard"},
    ]
}


class ScriptedTeam:
    """A tech lead with a given breakdown, engineers that write what they own, a reviewer
    that blocks `backend/report.py` once (when `block_report`)."""

    def __init__(self, breakdown: dict[str, Any], block_report: bool = False) -> None:
        self.breakdown = breakdown
        self.block_report = block_report
        self.messages: dict[str, list[str]] = {}

    def __call__(self, request: dict[str, Any]) -> ReplyLike:
        role, message = role_of(request), first_text(request)
        if len(request["messages"]) > 1:
            return text_message("Done.")
        task = message.split('<task id="', 1)[1].split('"', 1)[0]
        self.messages.setdefault(task, []).append(message)
        if role == "tech_lead":
            return tool_use_message("submit_work_breakdown", self.breakdown)
        if role == "backend_engineer":
            path = (
                message.split("<owns>\n", 1)[1].split("\n", 1)[0]
                if "<owns>" in message
                else "backend/app.py"
            )
            return tool_use_message(
                "write_file", {"path": path, "content": f"VALUE = {len(self.messages[task])}\n"}
            )
        blocks = self.block_report and len(self.messages[task]) == 1
        finding = {
            "source": "code_reviewer",
            "severity": "high",
            "message": "the report leaks every record",
            "file": "backend/report.py",
            "line": 1,
        }
        verdict = {"verdict": "block", "summary": "report leaks", "findings": [finding]}
        return tool_use_message(
            "submit_verdict", verdict if blocks else {"verdict": "pass", "summary": "fine"}
        )


async def test_the_offline_tech_lead_expands_the_sdlc_implementation_stage(
    dev_client: Client, sqlite_db: Database
) -> None:
    plan = make_plan(TASK_MANAGER_GOAL)
    final = await run_to_end(dev_client, sqlite_db, OfflineProvider(), plan)

    assert final.status == RunStatus.COMPLETED, final.error
    [stage] = final.expansions
    assert (stage.stage, stage.status) == ("implementation", ExpansionStatus.EXPANDED)
    assert stage.tasks == ["backend", "frontend"] and stage.breakdown is not None
    backend = stage.breakdown.packages[0]
    assert backend.owns == ["backend/"] and "user accounts" in backend.description
    assert any("POST /" in c for c in backend.acceptance_criteria)
    grouped = {t.id: t.stage for t in final.tasks if t.stage}
    assert grouped == {"backend": "implementation", "frontend": "implementation"}
    expanded = [e for e in final.events if e.type == EventType.STAGE_EXPANDED]
    assert expanded[0].task == "architecture" and expanded[0].data["packages"] == stage.tasks
    assert final.task("code_review").depends_on[:2] == ["backend", "frontend"]
    # The checks' wall clock stays with the work they judged: the engineer's own checks, a
    # gate's checks; a task whose work has no code is not checked.
    backend, security = final.task("backend"), final.task("security_review")
    assert backend.check_seconds > 0 and backend.command_seconds > 0
    assert security.check_seconds > 0 and final.task("requirements").check_seconds == 0
    # The checks' stored results served the run's own later checks; it finished, they go.
    assert await check_results.count_results(sqlite_db, final.run_id) == 0


async def test_a_small_goal_is_one_package_and_no_frontend(
    dev_client: Client, sqlite_db: Database
) -> None:
    plan = make_plan("Build a tiny notes API")
    final = await run_to_end(dev_client, sqlite_db, OfflineProvider(), plan)

    assert final.status == RunStatus.COMPLETED, final.error
    assert final.expansions[0].tasks == ["backend"]
    assert "frontend" not in {t.id for t in final.tasks}
    assert not any(a.path.startswith("frontend/") for a in final.artifacts)


async def test_a_refused_breakdown_goes_back_twice_then_the_template_tasks_run(
    dev_client: Client, sqlite_db: Database
) -> None:
    team = ScriptedTeam(BAD_BREAKDOWN)
    with FakeMessagesAPI(team) as api:
        provider = AnthropicProvider(api_key="test-key", base_url=api.base_url)
        final = await run_to_end(dev_client, sqlite_db, provider, make_plan(template=PACKAGES))

    assert final.status == RunStatus.COMPLETED, final.error
    [stage] = final.expansions
    assert stage.status == ExpansionStatus.FALLBACK and stage.tasks == ["backend"]
    assert stage.rounds == 3
    assert any("role 'wizard'" in p for p in stage.problems)
    assert any("owned by both 'core' and 'report'" in p for p in stage.problems)
    refused = [e for e in final.events if e.type == EventType.PLAN_REFUSED]
    assert [e.data["retry"] for e in refused] == [True, True, False]
    assert [e.type for e in final.events].count(EventType.STAGE_FALLBACK) == 1
    # the planner was told every problem, each time
    retries = team.messages["architecture"][1:]
    assert len(retries) == 2 and all("role 'wizard'" in m for m in retries)
    assert final.task("architecture").attempt == 2
    assert final.task("backend").status == TaskStatus.COMPLETED
    assert final.task("backend").stage == "implementation"


async def test_a_blocking_finding_goes_back_to_the_package_that_owns_the_file(
    dev_client: Client, sqlite_db: Database
) -> None:
    team = ScriptedTeam(GOOD_BREAKDOWN, block_report=True)
    with FakeMessagesAPI(team) as api:
        provider = AnthropicProvider(api_key="test-key", base_url=api.base_url)
        final = await run_to_end(dev_client, sqlite_db, provider, make_plan(template=PACKAGES))

    assert final.status == RunStatus.COMPLETED, final.error
    assert [t.id for t in final.tasks] == ["architecture", "core", "report", "code_review"]
    assert final.task("report").depends_on == ["architecture", "core"]
    assert final.task("code_review").depends_on == ["core", "report"]
    assert [v.passed for v in final.task("code_review").verdicts] == [False, True], final.task(
        "code_review"
    ).verdicts
    assert final.task("report").attempt == 1 and final.task("core").attempt == 0
    assert "the report leaks every record" in team.messages["report"][1]
    assert len(team.messages["core"]) == 1
    assert "<owns>\nbackend/report.py\n</owns>" in team.messages["report"][0]
    assert "- add works" in team.messages["core"][0]


async def test_a_person_edits_the_breakdown_before_the_stage_expands(
    dev_client: Client, sqlite_db: Database
) -> None:
    team = ScriptedTeam(GOOD_BREAKDOWN)
    plan = make_plan(template=PACKAGES)
    plan.stages[0].approval = True
    edited = WorkBreakdown(
        packages=[
            WorkPackage(
                id="everything", role="backend_engineer", description="all", owns=["backend/"]
            )
        ]
    )
    with FakeMessagesAPI(team) as api:
        provider = AnthropicProvider(api_key="test-key", base_url=api.base_url)
        async with started(dev_client, sqlite_db, provider, plan) as handle:

            async def asked() -> bool:
                return bool(
                    await handle.query("pending_decisions", result_type=list[PendingDecision])
                )

            await wait_until(asked, timeout=120)
            [pending] = await handle.query("pending_decisions", result_type=list[PendingDecision])
            waiting = await handle.query("status", result_type=RunState)
            details = await current_details(handle)
            bad = Decision(
                gate=PLAN_APPROVAL_GATE,
                decision=DecisionKind.EDIT,
                by="alice",
                breakdown=WorkBreakdown.model_validate(BAD_BREAKDOWN),
            )
            try:
                await handle.execute_update("submit_decision", bad, result_type=Decision)
                refusal = ""
            except WorkflowUpdateFailedError as exc:
                refusal = str(exc.cause)
            good = Decision(
                gate=PLAN_APPROVAL_GATE, decision=DecisionKind.EDIT, by="alice", breakdown=edited
            )
            await handle.execute_update("submit_decision", good, result_type=Decision)
            final = await final_state(sqlite_db, handle)

    assert (pending.kind, pending.key) == ("gate", PLAN_APPROVAL_GATE)
    assert pending.options == ["approve", "edit", "request_changes", "reject"]
    assert waiting.expansions[0].status == ExpansionStatus.AWAITING_APPROVAL
    assert waiting.task("architecture").status == TaskStatus.WAITING
    assert waiting.task("backend").status == TaskStatus.PENDING
    assert "role 'wizard'" in refusal and "owned by both" in refusal
    assert "| core | backend_engineer | - | backend/app.py |" in details
    assert "| report | backend_engineer | core | backend/report.py |" in details
    assert "```mermaid\ngraph TD" in details and "    core --> report" in details
    assert "- stage implementation: backend (pending)" in details
    edit_lines = [line for line in command_lines(details, "orchestrator") if "edit-plan" in line]
    assert edit_lines == [f"orchestrator edit-plan {plan.run_id} breakdown.json"]
    assert any('"decision": "edit"' in line for line in command_lines(details, "curl"))
    assert final.status == RunStatus.COMPLETED, final.error
    [stage] = final.expansions
    assert (stage.status, stage.decided_by, stage.tasks) == (
        ExpansionStatus.EXPANDED,
        "alice",
        ["everything"],
    )
    assert [t.id for t in final.tasks] == ["architecture", "everything", "code_review"]
    assert "core" not in team.messages and "everything" in team.messages


async def test_reset_to_a_package_replays_the_expansion_and_reruns_from_there(
    dev_client: Client, sqlite_db: Database
) -> None:
    team = ScriptedTeam(GOOD_BREAKDOWN)
    plan = make_plan(template=PACKAGES)
    with FakeMessagesAPI(team) as api:
        provider = AnthropicProvider(api_key="test-key", base_url=api.base_url)
        async with started(dev_client, sqlite_db, provider, plan) as handle:
            first = await handle.result()
            assert first.status == RunStatus.COMPLETED, first.error
            new_run = await reset_to_task(dev_client, plan.run_id, "report")
            rerun = dev_client.get_workflow_handle(handle.id, run_id=new_run, result_type=RunState)
            second = await rerun.result()

    assert second.status == RunStatus.COMPLETED, second.error
    assert [t.id for t in second.tasks] == ["architecture", "core", "report", "code_review"]
    assert second.expansions[0].status == ExpansionStatus.EXPANDED
    # the planner and the package before `report` were not asked again
    assert len(team.messages["architecture"]) == 1 and len(team.messages["core"]) == 1
    assert len(team.messages["report"]) == 2
