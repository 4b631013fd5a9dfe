"""A task whose model calls fail for good is dead-lettered inside the run, not the run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle

from agents.providers.anthropic import AnthropicProvider
from core.contracts import (
    AutoDecision,
    EscalationPolicy,
    EventType,
    PendingDecision,
    RunState,
    RunStatus,
    TaskResolution,
    TaskStatus,
)
from core.persistence import storage
from core.persistence.db import Database
from core.services.runs import final_state
from tests.fakes.messages_api import FakeMessagesAPI
from tests.fakes.responders import FaultyDesigner
from tests.helpers import TEMPLATES, make_plan, started, wait_until
from workflows.gates import POLICY_BY


def dead_lettered(
    handle: WorkflowHandle[Any, RunState], task: str
) -> Callable[[], Awaitable[bool]]:
    async def waiting() -> bool:
        pending = await handle.query("pending_decisions", result_type=list[PendingDecision])
        return any(p.kind == "dead_letter" and p.key == task for p in pending)

    return waiting


async def test_dead_letter_then_retry_completes_without_repeating_finished_calls(
    dev_client: Client, sqlite_db: Database
) -> None:
    with FakeMessagesAPI() as api:
        model = FaultyDesigner(api)
        api.responder = model
        provider = AnthropicProvider(
            api_key="test-key", model="claude-sonnet-4-6", base_url=api.base_url
        )
        plan = make_plan(template=str(TEMPLATES / "branches.yaml"))
        async with started(dev_client, sqlite_db, provider, plan) as handle:

            async def architecture_done() -> bool:
                state = await handle.query("status", result_type=RunState)
                return state.task("architecture").status == TaskStatus.COMPLETED

            # the independent branch finishes while design waits in the dead-letter state
            await wait_until(architecture_done)
            state = await handle.query("status", result_type=RunState)
            design = state.task("design")
            assert design.status == TaskStatus.DEAD_LETTERED
            assert "prompt is too long" in (design.error or "")
            assert state.task("cleanup").status == TaskStatus.PENDING
            pending = await handle.query("pending_decisions", result_type=list[PendingDecision])
            assert [(p.kind, p.key) for p in pending] == [("dead_letter", "design")]
            calls_before_retry = model.task_calls.copy()

            model.fault = False
            await handle.signal("resolve_task", TaskResolution(task="design", action="retry"))
            final = await handle.result()

    assert final.status == RunStatus.COMPLETED
    assert {t.status for t in final.tasks} == {TaskStatus.COMPLETED}
    assert [t.error for t in final.tasks] == [None] * len(final.tasks)  # none kept its old one
    # finished tasks were not called (nor validated) again; only the designer (1 failed + 2
    # turns), the cleanup after it and their validators made new calls
    new_calls = model.task_calls - calls_before_retry
    assert set(new_calls) == {"design", "design.validate", "cleanup", "cleanup.validate"}
    entries = await storage.ledger_entries(sqlite_db, handle.id)
    assert len(entries) == len({(e.task_id, e.attempt, e.turn) for e in entries})
    assert len(entries) == sum(t.turns for t in final.tasks)


async def test_abort_fails_the_dependants_and_the_run(
    dev_client: Client, sqlite_db: Database
) -> None:
    with FakeMessagesAPI() as api:
        api.responder = FaultyDesigner(api)
        provider = AnthropicProvider(api_key="test-key", base_url=api.base_url)
        plan = make_plan(template=str(TEMPLATES / "branches.yaml"))
        async with started(dev_client, sqlite_db, provider, plan) as handle:
            await wait_until(dead_lettered(handle, "design"))
            await handle.signal("resolve_task", {"task": "design", "action": "abort", "by": "bob"})
            final = await final_state(sqlite_db, handle)

    assert final.status == RunStatus.FAILED
    assert final.task("design").status == TaskStatus.FAILED
    assert final.task("design").error is not None and "aborted by bob" in final.task("design").error
    assert final.task("cleanup").error == "not run: an upstream task failed"
    assert final.task("architecture").status == TaskStatus.COMPLETED


@pytest.mark.parametrize("skipped_by", ["bob", POLICY_BY])
async def test_a_skipped_dead_letter_is_skipped_and_its_dependants_run(
    dev_client: Client, sqlite_db: Database, skipped_by: str
) -> None:
    """Skipped by a person, or by an approve policy when nobody answered in time."""
    escalation = EscalationPolicy()
    if skipped_by == POLICY_BY:
        escalation = EscalationPolicy(
            tier2_after_seconds=0.5, tier3_after_seconds=1.0, auto_decision=AutoDecision.APPROVE
        )
    with FakeMessagesAPI() as api:
        model = FaultyDesigner(api)
        api.responder = model
        provider = AnthropicProvider(api_key="test-key", base_url=api.base_url)
        plan = make_plan(template=str(TEMPLATES / "branches.yaml"), escalation=escalation)
        async with started(dev_client, sqlite_db, provider, plan) as handle:
            if skipped_by != POLICY_BY:
                await wait_until(dead_lettered(handle, "design"))
                await handle.signal(
                    "resolve_task", TaskResolution(task="design", action="skip", by=skipped_by)
                )
            final = await handle.result()

    assert final.status == RunStatus.COMPLETED, final.error
    design = final.task("design")
    assert design.status == TaskStatus.SKIPPED
    assert design.summary.startswith(f"skip by {skipped_by}")
    assert final.task("cleanup").status == TaskStatus.COMPLETED
    assert model.task_calls["cleanup"] > 0  # the dependant ran, it was not failed unrun
    skipped = [e.task for e in final.events if e.type == EventType.TASK_SKIPPED]
    assert skipped == ["design"]
