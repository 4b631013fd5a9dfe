"""Semantic validation: after each task a validator checks the work; failed work goes round again.

The decisions are plain functions (`workflows.validation`); the runs use the real
`anthropic` SDK against the loopback Messages API fake, so what the validator was asked,
with which model, and what the rerun task was told are read off the wire.
"""

from __future__ import annotations

import functools
import json
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from temporalio.client import Client

from agents.protocol import Message, ModelRequest, TextBlock
from agents.providers.anthropic import AnthropicProvider
from agents.roles import ROLES, load_prompt
from agents.tools import TOOL_DEFINITIONS
from core.contracts import (
    VALIDATION_OUTPUT,
    VALIDATOR_ROLE,
    ArtifactRef,
    EventType,
    RunPlan,
    RunState,
    RunStatus,
    TaskPlan,
    TaskState,
    TaskStatus,
    TurnKey,
    ValidationResult,
    workflow_id_for,
)
from core.infrastructure.settings import Settings
from core.persistence import storage
from core.persistence.db import Database
from core.services.templates import parse_template
from offline import OFFLINE_MODEL, OfflineProvider, validation_input
from tests.api_harness import api_settings, serving_api
from tests.fakes.loopback import ReplyLike, first_text, task_of
from tests.fakes.messages_api import FakeMessagesAPI, tool_use_message
from tests.helpers import agent_tools, run_to_end
from tests.processes import cli, own_stack
from workflows import validation
from workflows.dsl import compile_plan, validate

GOAL = "Build a bookstore inventory API"
RUN_MODEL = "claude-sonnet-4-6"
CHEAP_MODEL = "claude-haiku-4-5"
ISSUE = "backend/tests/test_app.py is missing: the backend contract asks for pytest tests."

TEMPLATE = """
name: validated
tasks:
  - id: requirements
    role: business_analyst
    description: Turn the goal into user stories.
  - id: backend
    role: backend_engineer
    depends_on: [requirements]
    description: Implement the API service with its tests.
  - id: review
    role: code_reviewer
    depends_on: [backend]
    description: Review the backend.
"""


def anthropic_settings(**values: Any) -> Settings:
    return Settings(_env_file=None, ANTHROPIC_API_KEY="test-key", **values)  # type: ignore[call-arg]


def plan_for(template_text: str = TEMPLATE, **compile_args: Any) -> RunPlan:
    """What `orchestrator run` compiles with Anthropic configured: the cheap validator model."""
    template = parse_template(template_text)
    validate(template, ROLES)
    return compile_plan(
        template,
        goal=GOAL,
        run_id=uuid.uuid4().hex,
        roles=ROLES,
        model=RUN_MODEL,
        validation_model=anthropic_settings().provider.resolved_validation_model,
        **compile_args,
    )


# --- the decisions ----------------------------------------------------------------------


def test_gates_reviewers_and_validators_are_not_validated() -> None:
    plan = plan_for()
    by_id = {t.id: t for t in plan.tasks}
    assert validation.should_validate(by_id["backend"], plan)
    assert not validation.should_validate(by_id["review"], plan)  # a reviewer judges work
    gate = TaskPlan(id="g", role="backend_engineer", gate="code_review")
    assert not validation.should_validate(gate, plan)
    assert not validation.should_validate(TaskPlan(id="v", role=VALIDATOR_ROLE), plan)
    off = plan.model_copy(update={"validate_tasks": False})
    assert not validation.should_validate(by_id["backend"], off)


def test_the_validator_is_asked_about_the_task_and_everything_it_delivered() -> None:
    plan = plan_for()
    task = next(t for t in plan.tasks if t.id == "backend")
    task = task.model_copy(update={"prompt_addition": "Use port 8080."})
    state = TaskState(
        id="backend",
        role="backend_engineer",
        artifacts=[ArtifactRef(id=7, path="backend/app.py", sha256="x", size=120)],
        outputs={"needs_auth": False},
        summary="Wrote the service.",
    )
    validator = validation.validator_task(task, state, plan)
    assert validator.id == "backend.validate" and validator.role == VALIDATOR_ROLE
    assert validator.model == CHEAP_MODEL
    assert validator.max_turns == validation.VALIDATOR_MAX_TURNS
    asked = validator.description
    for fragment in (
        "task 'backend'",
        "backend_engineer role",
        "Implement the API service with its tests.",
        "Use port 8080.",
        "- backend/app.py (120 bytes)",
        'Outputs it recorded: {"needs_auth": false}',
        "Wrote the service.",
        "submit_validation",
    ):
        assert fragment in asked, fragment
    nothing = validation.validation_request(task, TaskState(id="backend", role="backend_engineer"))
    assert "It delivered no files." in nothing


def test_a_submitted_result_is_read_and_a_missing_one_does_not_hold_the_work_up() -> None:
    failed = {"passed": False, "issues": [ISSUE], "summary": "tests missing"}
    assert validation.validation_outcome({VALIDATION_OUTPUT: failed}) == ValidationResult(
        passed=False, issues=[ISSUE], summary="tests missing"
    )
    unchecked = validation.validation_outcome({})
    assert unchecked.passed and not unchecked.issues and "submitted no result" in unchecked.summary
    assert validation.submitted_validation({VALIDATION_OUTPUT: {"passed": "perhaps"}}) is None


def test_reruns_are_bounded_and_the_feedback_lists_every_issue() -> None:
    plan = plan_for()
    assert plan.max_validation_rounds == 1
    assert validation.should_rerun(1, plan) and not validation.should_rerun(2, plan)
    none = plan.model_copy(update={"max_validation_rounds": 0})
    assert not validation.should_rerun(1, none)

    result = ValidationResult(passed=False, issues=[ISSUE, "README.md is empty."], summary="s")
    feedback = validation.rerun_feedback(result, 1)
    assert feedback.startswith("Validation of your work failed (round 1):")
    assert f"- {ISSUE}\n- README.md is empty." in feedback
    many = ValidationResult(passed=False, issues=[f"issue {n}" for n in range(30)])
    assert validation.event_issues(many) == [f"issue {n}" for n in range(10)]


def test_the_template_and_the_run_turn_validation_on_and_off() -> None:
    assert plan_for().validate_tasks
    off = TEMPLATE.replace(
        "tasks:", "settings:\n  validate: false\n  max_validation_rounds: 3\ntasks:", 1
    )
    assert not plan_for(off).validate_tasks
    assert plan_for(off).max_validation_rounds == 3
    assert plan_for(off, validate=True).validate_tasks  # the run's own choice wins
    assert not plan_for(validate=False).validate_tasks


def test_the_cheap_model_is_the_default_only_where_it_exists() -> None:
    assert anthropic_settings().provider.resolved_validation_model == CHEAP_MODEL
    assert (
        anthropic_settings(VALIDATION_MODEL="my-model").provider.resolved_validation_model
        == "my-model"
    )
    offline = Settings(_env_file=None)  # type: ignore[call-arg]
    assert offline.provider.resolved_validation_model is None
    openai = Settings(_env_file=None, LLM_PROVIDER="openai")  # type: ignore[call-arg]
    assert openai.provider.resolved_validation_model is None  # the run's model, else the provider's


# --- the tool and the offline model ---------------------------------------------------------

KEY = TurnKey(run_id="r", workflow_id="run-r", task_id="backend.validate", turn=0)


async def test_submit_validation_records_the_result_and_refuses_a_failure_without_issues(
    sqlite_db: Database,
) -> None:
    assert set(ROLES[VALIDATOR_ROLE].tools) == {"read_file", "list_files", "submit_validation"}
    schema = TOOL_DEFINITIONS["submit_validation"].input_schema
    assert schema["required"] == ["passed"] and "issues" in schema["properties"]
    async with storage.turn_workspace(sqlite_db, KEY, role=VALIDATOR_ROLE, model="m") as ws:
        submit = functools.partial(agent_tools(ws, VALIDATOR_ROLE), "submit_validation")
        passed = await submit({"passed": True})
        failed = await submit({"passed": False, "issues": [ISSUE]})
        silent = await submit({"passed": False, "issues": [" "]})
        wrong = await submit({"issues": [ISSUE]})
    assert passed.outputs == {VALIDATION_OUTPUT: {"passed": True, "issues": [], "summary": ""}}
    assert failed.outputs[VALIDATION_OUTPUT]["issues"] == [ISSUE] and not failed.is_error
    assert silent.is_error and "name at least one issue" in silent.content
    assert not silent.outputs
    assert wrong.is_error and "passed" in wrong.content


def validator_request(delivered: Mapping[str, str]) -> ModelRequest:
    artifacts = "".join(
        f'<artifact path="{path}" task="backend">\n{content}\n</artifact>\n'
        for path, content in delivered.items()
    )
    text = f'<goal>\n{GOAL}\n</goal>\n{artifacts}<task id="backend.validate" role="validator">'
    return ModelRequest(
        model=OFFLINE_MODEL,
        system=load_prompt(VALIDATOR_ROLE),
        messages=[Message(role="user", content=[TextBlock(text=text)])],
        tools=[TOOL_DEFINITIONS[name] for name in ROLES[VALIDATOR_ROLE].tools],
        role=VALIDATOR_ROLE,
    )


async def test_the_offline_validator_passes_delivered_files_and_names_empty_ones() -> None:
    provider = OfflineProvider()
    good = await provider.complete(validator_request({"backend/app.py": "app = 1\n"}))
    [use] = good.tool_uses
    assert use.name == "submit_validation" and use.input["passed"] is True
    bad = await provider.complete(
        validator_request({"backend/app.py": "app = 1\n", "backend/README.md": "  \n"})
    )
    assert bad.tool_uses[0].input["passed"] is False
    assert bad.tool_uses[0].input["issues"] == [
        "backend/README.md is empty: write its full content with write_file."
    ]
    assert validation_input({})["issues"][0].startswith("The task delivered no files")
    again = await provider.complete(validator_request({"backend/app.py": "app = 1\n"}))
    assert again == good


# --- whole runs over the wire ---------------------------------------------------------------


def is_validator(request: Mapping[str, Any]) -> bool:
    return any(tool.get("name") == "submit_validation" for tool in request.get("tools") or [])


def asks_to_validate(request: Mapping[str, Any]) -> bool:
    """A validator's first turn (its second only reads back the tool result and ends)."""
    return is_validator(request) and len(request["messages"]) == 1


class FailingValidator:
    """The default responder, except that the backend's validator fails it `times` times."""

    def __init__(self, api: FakeMessagesAPI, times: int) -> None:
        self.api = api
        self.left = times
        self.lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> ReplyLike:
        if asks_to_validate(request) and task_of(request) == "backend.validate":
            with self.lock:
                fail, self.left = self.left > 0, self.left - 1
            if fail:
                return tool_use_message(
                    "submit_validation",
                    {"passed": False, "issues": [ISSUE], "summary": "tests are missing"},
                )
        return self.api.default_responder(request)


async def run_with_fake(
    client: Client, db: Database, plan: RunPlan, fail_times: int = 0
) -> tuple[RunState, list[dict[str, Any]]]:
    with FakeMessagesAPI() as api:
        api.responder = FailingValidator(api, fail_times)
        provider = AnthropicProvider(api_key="test-key", model=RUN_MODEL, base_url=api.base_url)
        state = await run_to_end(client, db, provider, plan)
        assert not api.responder_errors, api.responder_errors
        return state, [r.json for r in api.requests]


async def test_failed_work_goes_round_once_with_the_issues_then_passes(
    dev_client: Client, sqlite_db: Database
) -> None:
    plan = plan_for()
    state, requests = await run_with_fake(dev_client, sqlite_db, plan, fail_times=1)

    assert state.status == RunStatus.COMPLETED, state.error
    backend = state.task("backend")
    assert backend.status == TaskStatus.COMPLETED and backend.attempt == 1
    assert [v.passed for v in backend.validations] == [False, True]
    assert backend.validations[0].issues == [ISSUE]
    # validator turns count toward the task they checked: 2 + 2 + 2 + 2
    assert backend.turns == 8
    assert [v.passed for v in state.task("requirements").validations] == [True]
    assert state.task("review").validations == []  # reviewers are not validated

    validators = [r for r in requests if asks_to_validate(r)]
    assert [task_of(r) for r in validators] == [
        "requirements.validate",
        "backend.validate",
        "backend.validate",
    ]
    # the cheap model on the wire for the validator, the run's model for everyone else
    assert {r["model"] for r in requests if is_validator(r)} == {CHEAP_MODEL}
    assert {r["model"] for r in requests if not is_validator(r)} == {RUN_MODEL}
    # the validator saw what the backend wrote, quoted, and was told whose contract applies
    asked = first_text(validators[1])
    assert "backend_engineer role" in asked and '<artifact path="notes/' in asked

    backend_asks = [first_text(r) for r in requests if task_of(r) == "backend"]
    assert len(backend_asks) == 4  # two turns, then two turns of the rerun
    assert "<feedback>" not in backend_asks[0]
    rerun = backend_asks[2]
    assert "<feedback>" in rerun and "Validation of your work failed (round 1)" in rerun
    assert f"- {ISSUE}" in rerun

    failed = [e for e in state.events if e.type == EventType.TASK_VALIDATION_FAILED]
    assert [(e.task, e.data["round"], e.data["rerun"]) for e in failed] == [("backend", 1, True)]
    assert failed[0].data["issues"] == [ISSUE]
    entries = await storage.ledger_entries(sqlite_db, workflow_id_for(plan.run_id))
    assert len(entries) == len(requests) == 2 * 3 + 2 + 2 * 3  # task turns, rerun, validators
    assert {e.model for e in entries if e.role == VALIDATOR_ROLE} == {CHEAP_MODEL}


async def test_work_that_still_fails_completes_with_its_issues_recorded(
    dev_client: Client, sqlite_db: Database
) -> None:
    state, requests = await run_with_fake(dev_client, sqlite_db, plan_for(), fail_times=5)

    assert state.status == RunStatus.COMPLETED, state.error
    backend = state.task("backend")
    assert backend.status == TaskStatus.COMPLETED
    assert backend.attempt == 1  # one rerun, then no more
    assert [(v.passed, v.issues) for v in backend.validations] == [(False, [ISSUE])] * 2
    assert [task_of(r) for r in requests if asks_to_validate(r)].count("backend.validate") == 2
    failed = [e for e in state.events if e.type == EventType.TASK_VALIDATION_FAILED]
    assert [(e.data["round"], e.data["rerun"]) for e in failed] == [(1, True), (2, False)]
    completed = [e for e in state.events if e.type == EventType.TASK_COMPLETED]
    assert [e.task for e in completed].count("backend") == 1
    assert state.task("review").status == TaskStatus.COMPLETED  # the run went on


async def test_a_template_with_validation_off_makes_no_validator_calls(
    dev_client: Client, sqlite_db: Database
) -> None:
    off = TEMPLATE.replace("tasks:", "settings:\n  validate: false\ntasks:", 1)
    state, requests = await run_with_fake(dev_client, sqlite_db, plan_for(off), fail_times=5)

    assert state.status == RunStatus.COMPLETED, state.error
    assert not any(is_validator(r) for r in requests)
    assert len(requests) == 6  # three tasks, two turns each
    assert all(t.validations == [] and t.attempt == 0 for t in state.tasks)


async def test_the_api_validates_with_the_cheap_model_unless_the_run_says_no(
    dev_client: Client, sqlite_db: Database
) -> None:
    await sqlite_db.ensure_schema()
    with FakeMessagesAPI() as fake:
        settings = api_settings(ANTHROPIC_API_KEY="test-key", ANTHROPIC_BASE_URL=fake.base_url)
        async with serving_api(sqlite_db, dev_client, settings) as api:
            tenant = await api.tenant()
            http = api.http(tenant.headers)
            seen: dict[bool, list[dict[str, Any]]] = {}
            for validate_tasks in (True, False):
                before = len(fake.requests)
                body = {"goal": GOAL, "inline_template": TEMPLATE, "validate": validate_tasks}
                response = await http.post("/runs", json=body)
                assert response.status_code == 202, response.text
                handle = dev_client.get_workflow_handle(
                    response.json()["workflow_id"], result_type=RunState
                )
                state = await handle.result()
                assert state.status == RunStatus.COMPLETED, state.error
                seen[validate_tasks] = [r.json for r in fake.requests[before:]]

            refused = await http.post("/runs", json={"goal": GOAL, "validate": "sometimes"})
            assert refused.status_code == 422
            assert "validate" in json.dumps(refused.json()["detail"])

    on = [r for r in seen[True] if is_validator(r)]
    assert [task_of(r) for r in on if asks_to_validate(r)] == [
        "requirements.validate",
        "backend.validate",
    ]
    assert {r["model"] for r in on} == {CHEAP_MODEL}
    assert not any(is_validator(r) for r in seen[False])


# --- the command line ---------------------------------------------------------------------


def test_the_cli_runs_without_validation_when_told(tmp_path: Path) -> None:
    template = tmp_path / "one.yaml"
    template.write_text("name: one\ntasks:\n  - id: plan\n    role: project_manager\n")
    calls = tmp_path / "calls.jsonl"
    env = {
        **own_stack(tmp_path / "data"),
        "OFFLINE_CALL_LOG": str(calls),
    }
    result = cli("run", GOAL, "--template", str(template), "--no-validate", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    roles = [json.loads(line)["role"] for line in calls.read_text().splitlines()]
    assert roles == ["project_manager", "project_manager"]  # no validator call after it
