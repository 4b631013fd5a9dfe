"""Whole runs with the real `anthropic` SDK against a loopback Messages API server."""

from __future__ import annotations

from temporalio.client import Client

from agents.providers.anthropic import AnthropicProvider
from core.contracts import PendingDecision, RunStatus, TaskResolution, TaskStatus
from core.persistence import storage
from core.persistence.db import Database
from core.services.runs import final_state
from tests.fakes.messages_api import FakeMessagesAPI
from tests.helpers import make_plan, run_to_end, started, wait_until


async def test_tool_use_round_trips_and_a_429_the_retry_policy_survives(
    dev_client: Client, sqlite_db: Database
) -> None:
    with FakeMessagesAPI() as api:
        api.enqueue_error(429, "rate limited, slow down", headers={"retry-after": "1"})
        provider = AnthropicProvider(
            api_key="test-key", model="claude-sonnet-4-6", base_url=api.base_url
        )
        plan = make_plan()
        state = await run_to_end(dev_client, sqlite_db, provider, plan)
        requests = api.requests

    assert state.status == RunStatus.COMPLETED, state.error
    ran = [t for t in state.tasks if t.status == TaskStatus.COMPLETED]
    assert len(ran) == 9  # data_science and cleanup wait for outputs this responder never sets
    # every task wrote its note through a tool_use round trip, then ended its turn; the
    # validator checked each task that is not a gate the same way (its turns count to the task)
    gates = {t.id for t in plan.tasks if t.gate}
    assert len(gates) == 2
    assert all(len(t.artifacts) == 1 for t in ran)
    assert all(t.turns == (2 if t.id in gates else 4) for t in ran)
    assert all([v.passed for v in t.validations] == ([] if t.id in gates else [True]) for t in ran)
    assert all(t.model == "claude-sonnet-4-6" for t in ran)

    entries = await storage.ledger_entries(sqlite_db, f"run-{plan.run_id}")
    assert len(entries) == 18 + 14 == len(requests) - 1  # the 429 was retried, never recorded
    assert {e.provider for e in entries} == {"anthropic"}
    assert sum(e.cost_usd for e in entries) == state.cost_usd > 0

    second_turn = next(
        r.json
        for r in requests
        if any(
            block.get("type") == "tool_result"
            for message in r.json["messages"]
            if isinstance(message["content"], list)
            for block in message["content"]
        )
    )
    assert second_turn["tools"][0]["name"] == "write_file"
    assert "<goal>" in second_turn["messages"][0]["content"][0]["text"]


async def test_a_bad_request_dead_letters_the_task_with_the_providers_message(
    dev_client: Client, sqlite_db: Database
) -> None:
    with FakeMessagesAPI() as api:
        api.enqueue_error(400, "messages.0.content: field required")
        provider = AnthropicProvider(api_key="test-key", base_url=api.base_url)
        async with started(dev_client, sqlite_db, provider, make_plan()) as handle:

            async def waits_for_a_human() -> bool:
                pending = await handle.query("pending_decisions", result_type=list[PendingDecision])
                return bool(pending)

            await wait_until(waits_for_a_human)
            pending = await handle.query("pending_decisions", result_type=list[PendingDecision])
            assert [(p.kind, p.key) for p in pending] == [("dead_letter", "requirements")]
            assert "messages.0.content: field required" in pending[0].reason
            assert len(api.requests) == 1  # not retried

            await handle.signal(
                "resolve_task", TaskResolution(task="requirements", action="abort", by="alice")
            )
            state = await final_state(sqlite_db, handle)

    assert state.status == RunStatus.FAILED
    requirements = state.task("requirements")
    assert requirements.status == TaskStatus.FAILED
    assert "aborted by alice" in (requirements.error or "")
    assert "messages.0.content: field required" in (requirements.error or "")
    assert {t.status for t in state.tasks[1:]} == {TaskStatus.FAILED}  # nothing could start
    assert state.task("planning").error == "not run: an upstream task failed"
