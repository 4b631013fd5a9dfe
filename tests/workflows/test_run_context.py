"""What the parts of `GoalWorkflow` share, without a server: side effects, typed answers,
gate kinds as they travel through history."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from agents.roles import ROLES
from core.contracts import Decision, DecisionKind, GateKind, RunPlan, RunState, TaskPlan
from core.services.templates import load_template
from workflows.dsl import Template, compile_plan
from workflows.run_context import RunContext, expect

PLAN = RunPlan(run_id="r1", goal="Build a todo API", template="sdlc", tasks=[])


def context() -> RunContext:
    return RunContext(PLAN, RunState(run_id="r1", goal=PLAN.goal, template="sdlc"))


async def test_finished_side_effects_are_dropped_and_the_rest_drained() -> None:
    run = context()
    delivered: list[int] = []

    async def deliver(n: int, wait: asyncio.Event | None = None) -> None:
        if wait is not None:
            await wait.wait()
        delivered.append(n)

    for n in range(50):
        run.spawn(deliver(n))
        await asyncio.sleep(0)  # the delivery runs to its end
    assert run.side_effects == 1  # the latest; 49 finished ones were dropped

    release = asyncio.Event()
    run.spawn(deliver(50, release))
    run.spawn(deliver(51))
    await asyncio.sleep(0)
    assert run.side_effects == 2  # the one still waiting and the newest
    release.set()
    await run.drain()
    assert delivered == [*range(50), 51, 50]


async def test_a_side_effect_that_raised_stays_so_the_drain_raises_it() -> None:
    run = context()

    async def broken() -> None:
        raise RuntimeError("a bug in a side effect")

    async def fine() -> None:
        return None

    run.spawn(broken())
    await asyncio.sleep(0)
    run.spawn(fine())
    await asyncio.sleep(0)
    run.spawn(fine())
    assert run.side_effects == 2  # the broken one and the newest
    with pytest.raises(RuntimeError, match="a bug in a side effect"):
        await run.drain()


def test_an_answer_of_the_wrong_type_fails_the_run_not_the_workflow_task() -> None:
    decision = Decision(gate="g", decision=DecisionKind.APPROVE)
    assert expect(decision, Decision) is decision
    with pytest.raises(ApplicationError) as raised:
        expect("approve", Decision)
    assert raised.value.non_retryable
    assert raised.value.type == "WorkflowInvariant"
    assert "expected a Decision, got str" in raised.value.message


def test_gate_kinds_keep_their_strings_in_history_and_say_which_are_checked() -> None:
    plan = compile_plan(
        load_template("sdlc", ROLES),
        goal="Build a todo API",
        run_id="r1",
    )
    gates = {t.id: t.gate for t in plan.tasks if t.gate}
    assert gates == {
        "code_review": GateKind.CODE_REVIEW,
        "security_review": GateKind.SECURITY_REVIEW,
    }
    dumped = plan.model_dump(mode="json")
    assert {t["gate"] for t in dumped["tasks"] if t["gate"]} == {
        "code_review",
        "security_review",
    }
    assert RunPlan.model_validate(dumped).tasks == plan.tasks  # a recorded plan reads back
    assert [k for k in GateKind if k.checked] == [GateKind.CODE_REVIEW, GateKind.SECURITY_REVIEW]
    assert TaskPlan(id="h", role="r", gate="human_approval").gate == GateKind.HUMAN_APPROVAL


def test_a_template_with_an_unknown_gate_kind_is_refused() -> None:
    with pytest.raises(ValidationError, match="gate"):
        Template.model_validate(
            {"name": "t", "tasks": [{"id": "a", "role": "r", "gate": "style_review"}]}
        )
