"""`bench.quality`: two offline goals end to end, and its executability checks on deliverables
written by hand, all in the real sandbox."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from bench.executability import assess
from bench.quality import GOALS, measure, select_goals
from core.contracts import workflow_id_for
from core.infrastructure.settings import Settings
from core.persistence import storage
from core.persistence.db import Database

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

CLI = """\
import argparse


def shout(text: str) -> str:
    return text.upper()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Shout a text.")
    parser.add_argument("text")
    print(shout(parser.parse_args().text))
"""

CLI_TEST = """\
from tool import shout


def test_shout():
    assert shout("hi") == "{expected}"
"""

BROKEN_API = """\
from fastapi import FastAPI

app = FastAPI()


@app.get("/items")
def items() -> list[int]:
    raise RuntimeError("no database")
"""


async def test_two_offline_goals_report_figures_from_the_sandbox_and_the_ledger(
    dev_env: WorkflowEnvironment, sqlite_db: Database, tmp_path: Path
) -> None:
    await sqlite_db.ensure_schema()
    out = tmp_path / "quality"
    goals = list(GOALS[:2])
    report = await measure(
        dev_env.client,
        sqlite_db,
        goals,
        settings=Settings(_env_file=None, LLM_PROVIDER="offline"),  # type: ignore[call-arg]
        out=out,
        concurrency=2,
    )

    png = (out / "quality.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk comes first
    assert width > 0 and height > 0
    markdown = (out / "quality.md").read_text()
    assert "Provider: offline" in markdown and "prove the harness" in markdown
    saved = {
        r["goal"]["name"]: r for r in json.loads((out / "quality.json").read_text())["results"]
    }

    assert report.provider == "offline"
    assert [r.goal.name for r in report.results] == [g.name for g in goals]
    for result in report.results:
        assert result.goal.name in markdown
        assert result.status == "completed"
        assert result.model_calls > 0 and result.code_lines > 0 and result.wall_seconds > 0
        assert result.lines["Python"] > 0 and result.test_lines > 0
        # The deliverable's own suite ran in the sandbox: JUnit counted its tests.
        checks = result.executability
        assert checks.tests_pass and checks.tests_passed > 0 and checks.tests_failed == 0
        assert checks.entry_starts and checks.api_answers is True
        assert "GET /docs -> 200" in checks.api_detail
        assert checks.isolation and checks.score == 4
        assert (out / "repos" / result.goal.name / "backend" / "app.py").is_file()
        # Tokens and cost are the ledger's, to the token.
        async with sqlite_db.session() as session:
            usage, cost = await storage.ledger_totals(session, workflow_id_for(result.run_id))
        assert result.usage == usage and usage.input_tokens > 0 and usage.output_tokens > 0
        assert result.cost_usd == cost
        assert saved[result.goal.name]["usage"] == usage.model_dump()
        assert saved[result.goal.name]["executability"]["tests_pass"] is True


async def test_executability_tells_failing_tests_and_a_broken_api_from_working_code() -> None:
    failing = await assess(
        {"tool.py": CLI, "test_tool.py": CLI_TEST.format(expected="nope")}, expects_api=False
    )
    assert failing.entry_starts and "tool.py --help" in " ".join(failing.commands)
    assert not failing.tests_pass and failing.tests_failed == 1
    assert failing.api_answers is None and failing.score == 2

    passing = await assess(
        {"tool.py": CLI, "test_tool.py": CLI_TEST.format(expected="HI")}, expects_api=False
    )
    assert passing.tests_pass and passing.tests_passed == 1 and passing.score == 4

    broken = await assess(
        {
            "tool.py": CLI,
            "test_tool.py": CLI_TEST.format(expected="HI"),
            "service/main.py": BROKEN_API,
        },
        expects_api=True,
    )
    assert broken.tests_pass and broken.entry_starts
    assert broken.api_answers is False and "GET /items -> 500" in broken.api_detail
    assert broken.score == 3

    missing = await assess({"tool.py": CLI}, expects_api=True)
    assert missing.api_answers is False and not missing.tests_pass and missing.score == 2


def test_goals_are_chosen_by_count_or_by_name() -> None:
    assert len(GOALS) >= 10 and len({goal.kind for goal in GOALS}) == len(GOALS)
    assert select_goals(2, None) == list(GOALS[:2])
    assert [g.name for g in select_goals(None, "auth_service, tic_tac_toe")] == [
        "auth_service",
        "tic_tac_toe",
    ]
    with pytest.raises(ValueError, match="unknown goal nope"):
        select_goals(None, "nope")
