"""Gates that block real defects: a scripted model's bad code is blocked, revised, released."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client

from agents.providers.anthropic import AnthropicProvider
from core.contracts import (
    Decision,
    DecisionKind,
    PendingDecision,
    RunState,
    RunStatus,
    Severity,
    TaskStatus,
)
from core.persistence import storage
from core.persistence.db import Database
from core.services.runs import final_state
from tests.fakes.loopback import ReplyLike, role_of
from tests.fakes.messages_api import FakeMessagesAPI, text_message, tool_use_message
from tests.helpers import (
    TEMPLATES,
    make_plan,
    run_generated_tests,
    run_to_end,
    started,
    wait_until,
)

APP_WITH_SHELL = """\
import subprocess


def run_report(name: str) -> int:
    return subprocess.call("echo report " + name, shell=True)


def add(a: int, b: int) -> int:
    return a + b
"""

APP_FIXED = """\
import subprocess


def run_report(name: str) -> int:
    return subprocess.call(["echo", "report", name])


def add(a: int, b: int) -> int:
    return a + b
"""

TEST_FAILING = """\
from app import add


def test_add_is_wrong() -> None:
    assert add(2, 2) == 5
"""

TEST_PASSING = """\
from app import add


def test_add() -> None:
    assert add(2, 2) == 4
"""

CONFTEST = "import sys, pathlib\n\nsys.path.insert(0, str(pathlib.Path(__file__).parent.parent))\n"


def user_text(request: dict[str, Any]) -> str:
    first = request["messages"][0]["content"]
    return first if isinstance(first, str) else " ".join(b.get("text", "") for b in first)


def answered(request: dict[str, Any]) -> bool:
    return len(request["messages"]) > 1


class ScriptedTeam:
    """A backend engineer who fixes exactly what the gates name, and reviewers who defer.

    With `fixes` False the engineer never gets the failing test right.
    """

    def __init__(self, fixes: bool = True) -> None:
        self.fixes = fixes
        self.backend_attempts: list[str] = []

    def __call__(self, request: dict[str, Any]) -> ReplyLike:
        if answered(request):
            return text_message("Done.")
        if role_of(request) == "backend_engineer":
            return self.backend(user_text(request))
        return tool_use_message(
            "submit_verdict", {"verdict": "pass", "summary": "the tool findings decide"}
        )

    def backend(self, message: str) -> ReplyLike:
        feedback = message.split("<feedback>", 1)[1] if "<feedback>" in message else ""
        self.backend_attempts.append(feedback)
        fixed_test = bool(feedback) and self.fixes  # any revision fixes the failing test ...
        fixed_shell = "B602" in feedback  # ... but only a security finding fixes the shell call
        files = {
            "backend/app.py": APP_FIXED if fixed_shell else APP_WITH_SHELL,
            "backend/tests/test_app.py": TEST_PASSING if fixed_test else TEST_FAILING,
            "backend/tests/conftest.py": CONFTEST,
        }
        return {
            "content": [
                {
                    "type": "tool_use",
                    "id": f"toolu_{n}_{len(self.backend_attempts)}",
                    "name": "write_file",
                    "input": {"path": path, "content": content},
                }
                for n, (path, content) in enumerate(files.items())
            ]
        }


async def test_gates_block_a_failing_test_and_a_shell_injection_until_revised(
    dev_client: Client, sqlite_db: Database, tmp_path: Any
) -> None:
    team = ScriptedTeam()
    with FakeMessagesAPI(team) as api:
        provider = AnthropicProvider(api_key="test-key", base_url=api.base_url)
        plan = make_plan(template=str(TEMPLATES / "gated.yaml"))
        final = await run_to_end(dev_client, sqlite_db, provider, plan)

    assert final.status == RunStatus.COMPLETED, final.error
    code_review = final.task("code_review")
    security_review = final.task("security_review")
    # round 1 of code review: the failing test is named; round 2 passes
    first = code_review.verdicts[0]
    assert not first.passed
    failing = [f for f in first.blocking if f.source == "pytest"]
    assert failing and "test_add_is_wrong" in failing[0].message
    assert code_review.verdicts[-1].passed
    # round 1 of security review: bandit's shell=True finding on the file and line
    blocked = security_review.verdicts[0]
    bandit = [f for f in blocked.blocking if f.source == "bandit"]
    assert bandit and bandit[0].rule == "B602" and bandit[0].file is not None
    assert bandit[0].file.endswith("app.py") and bandit[0].severity == Severity.HIGH
    assert security_review.verdicts[-1].passed
    # the backend ran three times: first draft, test fix, shell fix, each told why
    backend = final.task("backend")
    assert backend.attempt == 2 and backend.status == TaskStatus.COMPLETED
    assert team.backend_attempts[0] == ""
    assert "test_add_is_wrong" in team.backend_attempts[1]
    assert "B602" in team.backend_attempts[2]

    out = tmp_path / "repo"
    from core.services.export import export_repository

    await export_repository(sqlite_db, plan.run_id, f"run-{plan.run_id}", out)
    assert "shell=True" not in (out / "backend" / "app.py").read_text()
    assert run_generated_tests(out / "backend").returncode == 0
    versions = await storage.all_artifact_versions(sqlite_db, plan.run_id)
    assert sorted(a.version for a in versions if a.path == "backend/app.py") == [1, 2, 3]


async def test_max_revisions_1_is_one_revision_and_two_verdicts_before_a_human_is_asked(
    dev_client: Client, sqlite_db: Database
) -> None:
    team = ScriptedTeam(fixes=False)
    with FakeMessagesAPI(team) as api:
        provider = AnthropicProvider(api_key="test-key", base_url=api.base_url)
        plan = make_plan(template=str(TEMPLATES / "gated.yaml"))
        plan.tasks = [
            t.model_copy(update={"max_revisions": 1}) if t.id == "code_review" else t
            for t in plan.tasks
        ]
        async with started(dev_client, sqlite_db, provider, plan) as handle:

            async def asked() -> bool:
                waiting = await handle.query("pending_decisions", result_type=list[PendingDecision])
                return bool(waiting)

            await wait_until(asked, timeout=240)
            [pending] = await handle.query("pending_decisions", result_type=list[PendingDecision])
            state = await handle.query("status", result_type=RunState)
            await handle.signal(
                "decide", Decision(gate="code_review", decision=DecisionKind.REJECT, by="carol")
            )
            final = await final_state(sqlite_db, handle)

    assert (pending.kind, pending.key) == ("gate", "code_review")
    assert "still blocked after 1 revisions" in pending.reason
    verdicts = state.task("code_review").verdicts
    assert [(v.round, v.passed) for v in verdicts] == [(1, False), (2, False)]
    assert state.task("backend").attempt == 1 and len(team.backend_attempts) == 2
    assert final.status == RunStatus.FAILED
    assert len(final.task("code_review").verdicts) == 2 and final.task("backend").attempt == 1
    assert final.task("security_review").status == TaskStatus.FAILED  # never reached
