"""A checked gate that must be signed off waits for a person after its checks and reviewer
pass, and a gate the deployment turned off is skipped with the reason; the history replays."""

from __future__ import annotations

import uuid

from temporalio.api.enums.v1 import EventType as HistoryEvent
from temporalio.client import Client
from temporalio.worker import Replayer

from agents.roles import ROLES
from core.contracts import (
    Decision,
    DecisionKind,
    EventType,
    PendingDecision,
    RunStatus,
    TaskStatus,
)
from core.infrastructure.settings import Settings
from core.persistence.db import Database
from core.services import steering
from core.services.plans import build_plan
from core.services.runs import final_state
from core.services.templates import load_template
from offline import OfflineProvider
from tests.helpers import TEMPLATES, started, wait_until
from workflows.goal import GoalWorkflow
from workflows.review import PATCH_REQUIRE_HUMAN


async def test_a_passing_gate_waits_for_a_signoff_and_a_turned_off_gate_is_skipped(
    dev_client: Client, sqlite_db: Database
) -> None:
    settings = Settings(_env_file=None, REQUIRE_SECURITY_REVIEW="false")
    plan = build_plan(
        load_template(str(TEMPLATES / "gated.yaml"), ROLES),
        goal="Build a todo API",
        run_id=uuid.uuid4().hex,
        provider=settings.provider,
        gates=settings.gates,
        require_human=True,
    )
    async with started(dev_client, sqlite_db, OfflineProvider(), plan) as handle:

        async def asked(times: int) -> list[PendingDecision]:
            async def check() -> bool:
                state = await handle.query(GoalWorkflow.status)
                asked = [e for e in state.events if e.type == EventType.DECISION_REQUESTED]
                return len(asked) == times and state.task("code_review").status == (
                    TaskStatus.WAITING
                )

            await wait_until(check)
            return await handle.query(GoalWorkflow.pending_decisions)

        [pending] = await asked(1)
        assert (pending.kind, pending.key) == ("gate", "code_review")
        assert pending.reason == "human sign-off required: the checks and the reviewer passed"
        wanted = "add an audit log"
        await steering.decide(
            dev_client,
            plan.run_id,
            Decision(gate="code_review", decision=DecisionKind.REQUEST_CHANGES, comment=wanted),
        )
        await asked(2)  # the backend revised, the gate passed again, and asks again
        await steering.decide(
            dev_client, plan.run_id, Decision(gate="code_review", decision=DecisionKind.APPROVE)
        )
        final = await final_state(sqlite_db, handle)
        history = await handle.fetch_history()

    assert final.status == RunStatus.COMPLETED, final.error
    review = final.task("code_review")
    assert [(v.passed, v.decided_by.split(":")[0]) for v in review.verdicts] == [
        (True, "checks+reviewer"),
        (True, "checks+reviewer"),
        (True, "human"),
    ]
    assert final.task("backend").attempt == 1
    skipped = final.task("security_review")
    assert (skipped.status, skipped.summary) == (
        TaskStatus.SKIPPED,
        "skipped: REQUIRE_SECURITY_REVIEW is false",
    )
    assert [(t.id, t.depends_on, t.gate) for t in final.tasks] == [
        (t.id, t.depends_on, t.gate) for t in plan.tasks
    ]

    markers = [
        str(e.marker_recorded_event_attributes)
        for e in history.events
        if e.event_type == HistoryEvent.EVENT_TYPE_MARKER_RECORDED
    ]
    assert any(PATCH_REQUIRE_HUMAN in marker for marker in markers), markers
    replayer = Replayer(workflows=[GoalWorkflow], data_converter=dev_client.data_converter)
    replayed = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert replayed.replay_failure is None
