"""Hierarchical supervision: `review_by` reviewers accept a task's work or send it back."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client

from agents.providers.anthropic import AnthropicProvider
from core.contracts import RunStatus, TaskStatus
from core.persistence import storage
from core.persistence.db import Database
from offline import OfflineProvider
from tests.fakes.loopback import ReplyLike, first_text, role_of
from tests.fakes.messages_api import FakeMessagesAPI, text_message, tool_use_message
from tests.helpers import TEMPLATES, make_plan, run_to_end


async def test_the_offline_tech_lead_accepts_the_schema(
    dev_client: Client, sqlite_db: Database
) -> None:
    plan = make_plan(template=str(TEMPLATES / "supervised.yaml"))
    final = await run_to_end(dev_client, sqlite_db, OfflineProvider(), plan)
    assert final.status == RunStatus.COMPLETED
    database = final.task("database")
    # 2 of its own, 2 of the validator, 2 of the review
    assert database.attempt == 0 and database.turns == 6
    assert [v.passed for v in database.validations] == [True]
    entries = await storage.ledger_entries(sqlite_db, f"run-{plan.run_id}")
    assert {e.task_id for e in entries} >= {"database", "database.review-tech_lead"}


class StrictLead:
    """The tech lead blocks the first schema and accepts the revised one."""

    def __init__(self) -> None:
        self.reviews = 0
        self.revised_with: list[str] = []

    def __call__(self, request: dict[str, Any]) -> ReplyLike:
        if len(request["messages"]) > 1:
            return text_message("Done.")
        text = first_text(request)
        if role_of(request) == "validator":
            return tool_use_message("submit_validation", {"passed": True})
        if role_of(request) == "tech_lead":
            self.reviews += 1
            if self.reviews == 1:
                return tool_use_message(
                    "submit_verdict",
                    {
                        "verdict": "block",
                        "summary": "missing index",
                        "findings": [
                            {
                                "source": "tech_lead",
                                "severity": "high",
                                "file": "db/schema.sql",
                                "message": "tasks.owner_id has no index",
                            }
                        ],
                    },
                )
            return tool_use_message("submit_verdict", {"verdict": "pass", "summary": "good"})
        if role_of(request) == "database_engineer" and "<feedback>" in text:
            self.revised_with.append(text.split("<feedback>", 1)[1])
        return tool_use_message("write_file", {"path": "db/schema.sql", "content": "-- schema\n"})


async def test_a_blocking_reviewer_sends_the_work_back_once(
    dev_client: Client, sqlite_db: Database
) -> None:
    lead = StrictLead()
    with FakeMessagesAPI(lead) as api:
        provider = AnthropicProvider(api_key="test-key", base_url=api.base_url)
        final = await run_to_end(
            dev_client, sqlite_db, provider, make_plan(template=str(TEMPLATES / "supervised.yaml"))
        )
    assert final.status == RunStatus.COMPLETED
    assert final.task("database").status == TaskStatus.COMPLETED
    assert lead.reviews == 2, lead.reviews
    assert final.task("database").attempt == 1
    assert len(lead.revised_with) == 1 and "tasks.owner_id has no index" in lead.revised_with[0]
