"""Spending as few tokens as the work needs: prompt caching, context budgets, summaries of
oversized upstream artifacts, and the tenant's response cache — asserted on what a loopback
Messages API server received and on the ledger."""

from __future__ import annotations

import asyncio
import functools
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.model_calls import ModelActivities
from activities.summaries import split_text
from agents.context_window import (
    TRIM_STEP,
    TokenEstimator,
    choose_summaries,
    elide_large_inputs,
    trim_history,
)
from agents.pricing import PriceTable
from agents.protocol import Message, TextBlock, ToolResultBlock, ToolUseBlock
from agents.providers.anthropic import AnthropicProvider
from agents.roles import ROLES
from core.contracts import (
    ModelCallInput,
    ModelCallResult,
    RunPlan,
    RunState,
    RunStatus,
    TurnKey,
    Usage,
)
from core.infrastructure.settings import Settings
from core.persistence import reuse, storage
from core.persistence.db import ArtifactSummary, Database, LedgerEntry, utcnow
from core.persistence.reuse import CLAIM_EXPIRES
from core.services.templates import parse_template
from tests.fakes.loopback import (
    ErrorReply,
    MessageReply,
    ReplyLike,
    estimate_tokens,
    first_text,
    role_of,
    task_of,
)
from tests.fakes.messages_api import FakeMessagesAPI, text_message, tool_use_message
from tests.helpers import TEMPLATES, make_plan, started
from tests.processes import cli, own_stack
from workflows.dsl import compile_plan

MODEL = "claude-sonnet-4-6"

# --------------------------------------------------------------------------- plain decisions


def conversation(turns: int, result_chars: int = 100) -> list[Message]:
    """A task message, then `turns` turns: a tool call and the message with its result."""
    messages = [Message(role="user", content=[TextBlock(text="<task>do it</task>")])]
    for n in range(turns):
        messages.append(
            Message(
                role="assistant",
                content=[ToolUseBlock(id=f"t{n}", name="read_file", input={"path": f"{n}.md"})],
            )
        )
        messages.append(
            Message(
                role="user",
                content=[ToolResultBlock(tool_use_id=f"t{n}", content="x" * result_chars)],
            )
        )
    return messages


def chars(messages: list[Message]) -> int:
    return sum(len(m.model_dump_json()) for m in messages)


def test_trimming_drops_whole_turns_oldest_first_and_keeps_the_task_message() -> None:
    messages = conversation(10, result_chars=1000)

    kept, dropped = trim_history(messages, budget=chars(messages) // 2, count=chars)

    assert dropped > 0 and dropped % TRIM_STEP == 0
    assert chars(kept) <= chars(messages) // 2
    assert kept[0].content[0] == messages[0].content[0]
    assert "first 8 turns" in kept[0].content[-1].text  # type: ignore[union-attr]
    assert kept[-2:] == messages[-2:]  # the latest turn stays
    # no tool result without the call it answers, and the roles still alternate
    assert [m.role for m in kept] == ["user", "assistant", "user"] * 1 + ["assistant", "user"] * (
        (len(kept) - 3) // 2
    )
    for call, results in zip(kept[1::2], kept[2::2], strict=True):
        assert [b.id for b in call.content if isinstance(b, ToolUseBlock)] == [
            b.tool_use_id for b in results.content if isinstance(b, ToolResultBlock)
        ]


def test_a_conversation_within_budget_is_left_alone() -> None:
    messages = conversation(3)
    assert trim_history(messages, budget=chars(messages), count=chars) == (messages, 0)


def test_trimming_keeps_the_same_prefix_for_several_turns() -> None:
    """Dropping in steps means the next turns' requests start the same (cache hits)."""
    budget = chars(conversation(9, 1000))
    kept_at = {n: trim_history(conversation(n, 1000), budget, chars)[0] for n in (10, 11, 12)}

    assert kept_at[10][:-2] == kept_at[11][:-4] == kept_at[12][:-6]


def test_oversized_tool_arguments_are_elided_from_history_the_same_way_every_turn() -> None:
    write = ToolUseBlock(
        id="w1", name="write_file", input={"path": "big.txt", "content": "y" * 50_000}
    )
    messages = [
        Message(role="user", content=[TextBlock(text="task")]),
        Message(role="assistant", content=[TextBlock(text="writing"), write]),
        Message(role="user", content=[ToolResultBlock(tool_use_id="w1", content="wrote")]),
    ]

    once = elide_large_inputs(messages, max_chars=10_000)
    again = elide_large_inputs([*messages, *conversation(1)[1:]], max_chars=10_000)

    elided = once[1].content[1]
    assert isinstance(elided, ToolUseBlock)
    assert elided.input["path"] == "big.txt"
    assert elided.input["content"].startswith("[50000 characters, elided")
    assert again[:3] == once
    assert elide_large_inputs(messages, max_chars=60_000) == messages


def test_the_largest_artifacts_are_summarized_until_the_rest_fits() -> None:
    assert choose_summaries([500, 90_000, 2_000, 40_000], 50_000, 2_000) == {1}
    assert choose_summaries([500, 90_000, 2_000, 60_000], 50_000, 2_000) == {1, 3}
    assert choose_summaries([500, 1_000], 1_000, 2_000) == set()  # summaries would not be smaller
    assert choose_summaries([30_000, 20_000], 60_000, 2_000) == set()


def test_the_estimate_learns_the_ratio_from_reported_usage() -> None:
    estimator = TokenEstimator(chars_per_token=3.0)
    estimator.observe("m", 4_000, Usage(input_tokens=2_000))  # 2 chars a token: adopt at once
    assert estimator.tokens(4_000, "m") == 2_000
    estimator.observe("m", 4_000, Usage(input_tokens=500, cache_read_input_tokens=500))
    assert 2.0 < estimator.ratio("m") < 4.0  # 4 chars a token: move up slowly
    assert estimator.ratio("other") == 3.0


def test_split_text_cuts_at_line_ends_and_loses_nothing() -> None:
    text = "".join(f"line {n} " + "z" * (n % 50) + "\n" for n in range(2_000))
    parts = split_text(text, 10_000)

    assert "".join(parts) == text
    assert all(len(p) <= 10_000 for p in parts)
    assert all(p.endswith("\n") for p in parts)
    assert split_text("short", 10) == ["short"]


# --------------------------------------------------------------------------- on the wire


async def run(
    client: Client,
    db: Database,
    api: FakeMessagesAPI,
    plan: RunPlan,
    settings: Settings | None = None,
) -> RunState:
    provider = AnthropicProvider(api_key="test-key", model=MODEL, base_url=api.base_url)
    try:
        async with started(client, db, provider, plan, settings) as handle:
            return await handle.result()
    finally:
        await provider.aclose()


def prefix_tokens(request: dict[str, Any]) -> int:
    """Tokens of the tools and system prompt: what every agent with these tools shares."""
    blocks = [
        *({k: v for k, v in t.items() if k != "cache_control"} for t in request["tools"]),
        *({k: v for k, v in b.items() if k != "cache_control"} for b in request["system"]),
    ]
    return estimate_tokens(blocks)


async def test_later_agents_send_the_cached_prefix_and_pay_the_cache_read_rate(
    dev_client: Client, sqlite_db: Database
) -> None:
    with FakeMessagesAPI() as api:
        plan = make_plan()
        state = await run(dev_client, sqlite_db, api, plan)
        served = [r for r in api.replies if r.status == 200 and isinstance(r.body, dict)]

    assert state.status == RunStatus.COMPLETED, state.error
    # Every request marks the tools and the shared system prompt as a cached prefix.
    for reply in served:
        request = reply.request
        assert request["system"][-1]["cache_control"] == {"type": "ephemeral"}
        assert request["tools"][-1]["cache_control"] == {"type": "ephemeral"}
        assert "cache_control" in request["messages"][-1]["content"][-1]

    # The first request of each agent after the first with the same tools reads at least
    # the tools and system prompt from the cache; agents with common upstream read more.
    firsts: dict[str, Any] = {}
    for reply in served:
        firsts.setdefault(task_of(reply.request), reply)
    seen_tools: set[str] = set()
    reads_beyond_prefix = []
    for task, reply in firsts.items():
        tools = str([t["name"] for t in reply.request["tools"]])
        read = reply.body["usage"]["cache_read_input_tokens"]
        if tools in seen_tools:
            assert read >= prefix_tokens(reply.request), task
            reads_beyond_prefix.append(read > prefix_tokens(reply.request))
        seen_tools.add(tools)
    assert len(reads_beyond_prefix) >= 8
    assert any(reads_beyond_prefix)  # the goal and shared upstream artifacts were cached too

    # The ledger holds what the server reported, priced at each token kind's own rate.
    entries = await storage.ledger_entries(sqlite_db, f"run-{plan.run_id}")
    reported = sum((Usage.model_validate(r.body["usage"]) for r in served), Usage())
    assert sum((storage.entry_usage(e) for e in entries), Usage()) == reported
    assert reported.cache_read_input_tokens > reported.input_tokens
    prices = PriceTable()
    for entry in entries:
        price = prices.claude_price(entry.model)
        assert price.cache_read < price.input < price.cache_write
        assert entry.cost_usd == priced(entry, price.input, price.output, price)


def priced(entry: LedgerEntry, input_rate: float, output_rate: float, price: Any) -> Any:
    return pytest.approx(
        (
            entry.input_tokens * input_rate
            + entry.output_tokens * output_rate
            + entry.cache_read_tokens * price.cache_read
            + entry.cache_write_tokens * price.cache_write
        )
        / 1_000_000
    )


BIG_FILE = "docs/dataset.md"
BIG_LINES = 15_700
"""About 1.2 MB: some 300K tokens as the fake server counts them (4 characters a token)."""


def big_file() -> str:
    return "".join(
        f"## Record {n}\nfield_{n}: value {n} " + "lorem ipsum dolor " * 2 + "\n"
        for n in range(BIG_LINES)
    )


class BigUpstream:
    """The analyst writes a ~300K-token file; the summarizer outlines; everyone else notes."""

    def __init__(self, api: FakeMessagesAPI) -> None:
        self.api = api
        self.summaries: list[str] = []

    def __call__(self, request: dict[str, Any]) -> ReplyLike:
        role = role_of(request)
        if role == "summarizer":
            part = first_text(request)
            self.summaries.append(part[:200])
            return text_message(f"Summary of {len(part)} characters: records, fields, values.")
        if role == "business_analyst" and len(request["messages"]) == 1:
            return tool_use_message("write_file", {"path": BIG_FILE, "content": big_file()})
        return self.api.default_responder(request)


async def test_a_300k_token_artifact_is_summarized_once_and_the_summary_is_reused(
    dev_client: Client, sqlite_db: Database
) -> None:
    """branches: requirements -> (design || planning -> architecture) -> cleanup."""
    with FakeMessagesAPI() as api:
        model = BigUpstream(api)
        api.responder = model
        plan = make_plan(template=str(TEMPLATES / "branches.yaml"))
        state = await run(dev_client, sqlite_db, api, plan)
        bodies = [r.body for r in api.requests if r.path == "/v1/messages"]

    assert state.status == RunStatus.COMPLETED, state.error
    size = estimate_tokens(big_file())
    assert 290_000 <= size <= 330_000

    summarizer = [b for b in bodies if role_of(b) == "summarizer"]
    parts = [b for b in summarizer if "part-summary" not in first_text(b)]
    merges = [b for b in summarizer if "part-summary" in first_text(b)]
    # Too large for one summarizer request: summarized in parts, merged once, and no part
    # was ever sent twice — not by the agents that needed it at the same time, not later.
    assert len(parts) >= 3 and len(merges) == 1
    assert len({first_text(b) for b in parts}) == len(parts)
    assert all(b["model"] == "claude-haiku-4-5" for b in summarizer)
    assert all(estimate_tokens(b["messages"]) < 120_000 for b in summarizer)

    agents = [b for b in bodies if role_of(b) != "summarizer"]
    readers = {task_of(b) for b in agents if "Summary of docs/dataset.md" in first_text(b)}
    assert {"design", "planning", "architecture", "cleanup"} <= readers
    # Every agent's request stayed within its context budget (120K tokens by default).
    assert max(estimate_tokens([b["system"], b["messages"], b["tools"]]) for b in agents) < 120_000
    # The summarizer's calls are in the ledger under their own role.
    entries = await storage.ledger_entries(sqlite_db, f"run-{plan.run_id}")
    assert len([e for e in entries if e.role == "summarizer"]) == len(summarizer)
    assert sum(e.cost_usd for e in entries) == pytest.approx(state.cost_usd)


async def test_identical_requests_of_a_tenant_come_from_the_response_cache(
    dev_client: Client, sqlite_db: Database
) -> None:
    settings = Settings(RESPONSE_CACHE="on")  # type: ignore[call-arg]
    template = str(TEMPLATES / "branches.yaml")
    goal = "Build a bookstore inventory service"
    with FakeMessagesAPI() as api:
        first = await run(dev_client, sqlite_db, api, make_plan(goal, template), settings)
        after_first = len(api.requests)
        again = make_plan(goal, template)
        second = await run(dev_client, sqlite_db, api, again, settings)
        after_second = len(api.requests)
        opted_out = make_plan(goal, template, response_cache=False)
        third = await run(dev_client, sqlite_db, api, opted_out, settings)
        after_third = len(api.requests)
        other_tenant = make_plan(goal, template, tenant="org-other")
        fourth = await run(dev_client, sqlite_db, api, other_tenant, settings)
        after_fourth = len(api.requests)

    assert [s.status for s in (first, second, third, fourth)] == [RunStatus.COMPLETED] * 4
    assert after_first > 0
    # The same goal again: every call answered from the cache, nothing sent, nothing paid.
    assert after_second == after_first
    hits = await storage.ledger_entries(sqlite_db, f"run-{again.run_id}")
    assert hits and all(e.response_cache_hit for e in hits)
    assert all(storage.entry_usage(e).total == 0 and e.cost_usd == 0 for e in hits)
    assert second.cost_usd == 0 and first.cost_usd > 0
    assert [a.path for t in second.tasks for a in t.artifacts] == [
        a.path for t in first.tasks for a in t.artifacts
    ]
    # A run that opts out, and another tenant, pay for their own calls.
    assert after_third - after_second == after_first
    assert after_fourth - after_third == after_first
    paid = await storage.ledger_entries(sqlite_db, f"run-{opted_out.run_id}")
    assert not any(e.response_cache_hit for e in paid)


def test_a_template_or_a_run_opts_out_of_the_response_cache() -> None:
    on = parse_template("name: one\ntasks:\n  - id: plan\n    role: project_manager\n")
    off = parse_template(
        "name: one\nsettings:\n  response_cache: false\ntasks:\n  - id: plan\n"
        "    role: project_manager\n"
    )
    plan = functools.partial(compile_plan, goal="Build a todo API", run_id="r", roles=ROLES)
    assert plan(on).response_cache and not plan(off).response_cache
    assert not plan(on, response_cache=False).response_cache
    assert plan(off, response_cache=True).response_cache  # the run's own choice wins


def test_the_cli_reuses_responses_and_opts_out_when_told(tmp_path: Path) -> None:
    template = tmp_path / "one.yaml"
    template.write_text(
        "name: one\nsettings:\n  validate: false\ntasks:\n  - id: plan\n    role: project_manager\n"
    )
    calls = tmp_path / "calls.jsonl"
    env = {
        **own_stack(tmp_path / "data"),
        "OFFLINE_CALL_LOG": str(calls),
        "RESPONSE_CACHE": "on",
    }

    def made_calls(*flags: str) -> int:
        before = len(calls.read_text().splitlines()) if calls.exists() else 0
        result = cli(
            "run", "Build a todo API", "--template", str(template), *flags, env=env, cwd=tmp_path
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return len(calls.read_text().splitlines()) - before

    assert made_calls() == 2
    assert made_calls("--no-response-cache") == 2
    assert made_calls() == 0  # the same requests again: answered from the cache


# --------------------------------------------------------------------------- the summary claim

TENANT = "org-summaries"


class Summaries:
    """Summarizer turns take a while (so two agents overlap); a part can be made to fail."""

    def __init__(self, api: FakeMessagesAPI) -> None:
        self.api = api
        self.fail_part: int | None = None

    def __call__(self, request: dict[str, Any]) -> ReplyLike:
        if role_of(request) != "summarizer":
            return self.api.default_responder(request)
        part = first_text(request)
        if self.fail_part is not None and f'part="{self.fail_part} of' in part:
            return ErrorReply(400, "the summarizer's worker died here")
        return MessageReply(text_message(f"Summary of {len(part)} characters."), delay_seconds=0.3)


async def agents_at_once(
    db: Database, api: FakeMessagesAPI, run_id: str, tasks: dict[str, str]
) -> list[ModelCallResult]:
    """The first turns of `tasks` (id -> role) of one run, all at once, on one upstream file."""
    key = TurnKey(run_id=run_id, workflow_id=f"run-{run_id}", task_id="requirements", turn=0)
    ref = await storage.write_artifact(
        db, key, path=BIG_FILE, content=big_file(), role="business_analyst", model=MODEL
    )
    provider = AnthropicProvider(api_key="test-key", model=MODEL, base_url=api.base_url)
    activities = ModelActivities(
        db, provider, Settings(_env_file=None, RESPONSE_CACHE="off").provider
    )  # type: ignore[call-arg]
    calls = [
        ModelCallInput(
            key=key.model_copy(update={"task_id": task}),
            role=role,
            goal="Build a dataset explorer",
            upstream=[ref],
            tenant=TENANT,
        )
        for task, role in tasks.items()
    ]
    try:
        # A claim nobody takes over would leave the waiters waiting for good.
        async with asyncio.timeout(120):
            return list(
                await asyncio.gather(
                    *(ActivityEnvironment().run(activities.call_model, call) for call in calls)
                )
            )
    finally:
        await provider.aclose()


async def backdate_claims(db: Database) -> None:
    """As if every summary's claimant stopped renewing its claim long enough ago."""
    async with db.session() as session:
        await session.execute(
            update(ArtifactSummary).values(
                claimed_at=utcnow() - CLAIM_EXPIRES - timedelta(seconds=1)
            )
        )
        await session.commit()


def paid_summaries(api: FakeMessagesAPI) -> list[str]:
    """The prompts of the summarizer calls the provider answered (and so charged for)."""
    return [
        first_text(r.request)
        for r in api.replies
        if r.status == 200 and role_of(r.request) == "summarizer"
    ]


async def test_two_agents_needing_one_summary_at_once_pay_for_each_part_once(
    any_db: Database,
) -> None:
    with FakeMessagesAPI() as api:
        api.responder = Summaries(api)
        results = await agents_at_once(
            any_db, api, "r-once", {"design": "ux_engineer", "planning": "project_manager"}
        )
        paid = paid_summaries(api)
        agents = [r.request for r in api.replies if role_of(r.request) != "summarizer"]

    parts = [p for p in paid if "part-summary" not in p]
    assert len(parts) >= 3 and len(paid) == len(parts) + 1  # the parts, then one merge
    assert len(set(paid)) == len(paid)  # no part paid for twice
    # One agent paid for the summary, the other waited for it; both were sent it.
    assert sorted(r.summaries for r in results) == [0, len(paid)]
    assert all("Summary of docs/dataset.md" in first_text(a) for a in agents) and len(agents) == 2
    summarizer_rows = [
        e for e in await storage.ledger_entries(any_db, "run-r-once") if e.role == "summarizer"
    ]
    assert len(summarizer_rows) == len(paid)


async def test_a_stale_claim_is_taken_over_once_and_its_paid_parts_are_reused(
    any_db: Database,
) -> None:
    """Another run's agent paid for part 1, then its worker died holding the claim. Two
    agents of a later run need the summary at once: one takes the claim over and pays only
    for what is missing; the other waits."""
    with FakeMessagesAPI() as api:
        model = Summaries(api)
        api.responder = model
        model.fail_part = 2
        with pytest.raises(ApplicationError, match="worker died here"):
            await agents_at_once(any_db, api, "r-dead", {"design": "ux_engineer"})
        [orphaned] = paid_summaries(api)
        await backdate_claims(any_db)

        model.fail_part = None
        results = await agents_at_once(
            any_db,
            api,
            "r-later",
            {
                "design": "ux_engineer",
                "planning": "project_manager",
                "architecture": "tech_lead",
                "schema": "database_engineer",
            },
        )
        paid = paid_summaries(api)

    assert 'part="1 of' in orphaned
    assert len(set(paid)) == len(paid)  # part 1 was not paid for again, nor any other part
    parts = [p for p in paid if "part-summary" not in p]
    assert len(parts) >= 3 and len(paid) == len(parts) + 1
    assert sorted(r.summaries for r in results) == [0, 0, 0, len(paid) - 1]
    later = await storage.ledger_entries(any_db, "run-r-later")
    assert len([e for e in later if e.role == "summarizer"]) == len(paid) - 1


async def test_of_many_waiters_on_a_stale_claim_exactly_one_takes_it_over(
    any_db: Database,
) -> None:
    claim = functools.partial(
        reuse.claim_summary, any_db, tenant=TENANT, sha256="f" * 64, model=MODEL, max_tokens=100
    )
    await claim(claim="dead-worker")
    await backdate_claims(any_db)
    mine = [reuse.new_claim() for _ in range(8)]

    rows = await asyncio.gather(*(claim(claim=c) for c in mine))

    assert [row.claim == c for row, c in zip(rows, mine, strict=True)].count(True) == 1
    assert all(row.summary is None for row in rows)
