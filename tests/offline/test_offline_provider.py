"""The offline model: goal analysis, the turn protocol, labels, determinism, and that the
repository it writes for a whole pipeline actually works (its backend tests pass)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import offline
from agents.context import UpstreamFile, build_task_message
from agents.protocol import (
    LLMProvider,
    Message,
    ModelRequest,
    ModelResponse,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from agents.roles import ROLES, load_prompt
from offline import OFFLINE_MODEL, ROLE_DELIVERABLES, OfflineProvider, deliverables
from offline.blueprint import main_entity, needs_auth, needs_data_science
from offline.labels import label_line
from offline.reviews import string_built_sql
from offline.templates import SUFFIX, fill, template

AUTH_GOAL = "Build a task management API with user authentication"
OPEN_GOAL = "Build a bookstore inventory service"
SDLC_ORDER = (
    "business_analyst",
    "project_manager",
    "ux_engineer",
    "tech_lead",
    "database_engineer",
    "backend_engineer",
    "frontend_engineer",
    "code_reviewer",
    "security_reviewer",
    "cleanup_agent",
)


def request_for(role: str, goal: str, upstream: dict[str, str] | None = None) -> ModelRequest:
    message = build_task_message(
        goal=goal,
        task_id=f"t-{role}",
        role=role,
        description=f"{role} part of the goal",
        upstream=[UpstreamFile(path, "t-up", text) for path, text in (upstream or {}).items()],
    )
    return ModelRequest(
        model=OFFLINE_MODEL,
        system=load_prompt(role) if role in ROLES else "You are an agent.",
        messages=[Message(role="user", content=[TextBlock(text=message)])],
        role=role,
    )


def complete(provider: OfflineProvider, request: ModelRequest) -> ModelResponse:
    return asyncio.run(provider.complete(request))


def written(response: ModelResponse) -> dict[str, str]:
    return {
        use.input["path"]: use.input["content"]
        for use in response.tool_uses
        if use.name == "write_file"
    }


def outputs(response: ModelResponse) -> dict[str, Any]:
    found = [use.input["outputs"] for use in response.tool_uses if use.name == "set_outputs"]
    return found[0] if found else {}


def with_results(request: ModelRequest, response: ModelResponse, *errors: str) -> ModelRequest:
    """The next request of the loop: the model's turn plus one result per tool call."""
    results = [
        ToolResultBlock(
            tool_use_id=use.id,
            content="path leaves the workspace" if use.id in errors else "ok",
            is_error=use.id in errors,
        )
        for use in response.tool_uses
    ]
    return request.model_copy(
        update={
            "messages": [
                *request.messages,
                Message(role="assistant", content=response.content),
                Message(role="user", content=results),
            ]
        }
    )


# --------------------------------------------------------------------------- goal analysis


@pytest.mark.parametrize(
    ("goal", "name", "plural", "class_name", "fields"),
    [
        (AUTH_GOAL, "task", "tasks", "Task", {"title": "str", "done": "bool", "due_date": "date"}),
        (OPEN_GOAL, "book", "books", "Book", {"title": "str", "quantity": "int"}),
        ("A warehouse inventory system", "product", "products", "Product", {"price": "float"}),
        ("Build a TODO list", "task", "tasks", "Task", {"title": "str"}),
        ("Track my monthly expenses", "expense", "expenses", "Expense", {"amount": "float"}),
        ("Build a plant watering tracker", "plant", "plants", "Plant", {"name": "str"}),
        ("Build something nice", "item", "items", "Item", {"name": "str"}),
        ("", "item", "items", "Item", {"name": "str"}),
    ],
)
def test_main_entity(
    goal: str, name: str, plural: str, class_name: str, fields: dict[str, str]
) -> None:
    entity = main_entity(goal)
    assert (entity.name, entity.plural, entity.class_name) == (name, plural, class_name)
    assert 2 <= len(entity.fields) <= 4
    assert fields.items() <= {f.name: f.kind for f in entity.fields}.items()
    assert entity.primary.required and entity.primary.kind == "str"


@pytest.mark.parametrize(
    ("goal", "auth", "data_science"),
    [
        (AUTH_GOAL, True, False),
        (OPEN_GOAL, False, False),
        ("Notes app where people log in and sign up", True, False),
        ("Recipe recommendations with machine learning", False, True),
        ("Sales dashboard metrics per account", True, True),
        ("Forecast demand for a bakery", False, True),
        ("A library catalogue by author", False, False),
    ],
)
def test_goal_flags(goal: str, auth: bool, data_science: bool) -> None:
    assert needs_auth(goal) is auth
    assert needs_data_science(goal) is data_science


# --------------------------------------------------------------------------- turn protocol


def test_provider_satisfies_the_protocol() -> None:
    provider = OfflineProvider()
    assert isinstance(provider, LLMProvider)
    assert (provider.name, provider.default_model) == ("offline", "offline-sim-1")


def test_first_turn_writes_the_role_deliverables_and_outputs() -> None:
    response = complete(OfflineProvider(), request_for("business_analyst", AUTH_GOAL))
    assert response.stop_reason == "tool_use"
    assert response.model == OFFLINE_MODEL
    assert isinstance(response.content[0], TextBlock)
    assert "offline-sim-1, deterministic, no LLM" in response.content[0].text
    assert [use.name for use in response.tool_uses] == ["write_file", "set_outputs"]
    assert list(written(response)) == ["docs/requirements.md"]
    assert outputs(response) == {"needs_data_science": False, "needs_auth": True, "entity": "task"}
    assert all(use.id.startswith("toolu_off_business_analyst_") for use in response.tool_uses)
    assert len({use.id for use in response.tool_uses}) == len(response.tool_uses)


@pytest.mark.parametrize("role", sorted(ROLE_DELIVERABLES))
def test_every_role_writes_its_declared_files(role: str) -> None:
    response = complete(OfflineProvider(), request_for(role, AUTH_GOAL))
    assert set(written(response)) == set(ROLE_DELIVERABLES[role])


def test_every_file_is_labelled_in_its_own_syntax() -> None:
    response = complete(OfflineProvider(), request_for("backend_engineer", AUTH_GOAL))
    files = written(response)
    files |= written(complete(OfflineProvider(), request_for("frontend_engineer", AUTH_GOAL)))
    files |= written(complete(OfflineProvider(), request_for("database_engineer", AUTH_GOAL)))
    files |= written(complete(OfflineProvider(), request_for("cleanup_agent", AUTH_GOAL)))
    expected_prefix = {
        ".md": "> Produced by",
        ".py": "# Produced by",
        ".sql": "-- Produced by",
        ".html": "<!-- Produced by",
        ".js": "// Produced by",
        ".txt": "# Produced by",
        ".gitignore": "# Produced by",
    }
    for path, content in files.items():
        first = content.splitlines()[0]
        suffix = next(s for s in expected_prefix if path.endswith(s))
        assert first.startswith(expected_prefix[suffix]), path
        assert "offline model (offline-sim-1)" in first and "no LLM was called" in first
        assert "$0.00" in first
    assert label_line("docs/a.md", "Tech lead", OFFLINE_MODEL) == (
        "> Produced by Tech lead with the offline model (offline-sim-1): deterministic "
        "template output, no LLM was called. Cost: $0.00."
    )


def test_same_request_same_response() -> None:
    request = request_for("tech_lead", AUTH_GOAL, {"docs/requirements.md": "# Requirements"})
    first = complete(OfflineProvider(), request)
    second = complete(OfflineProvider(), request)
    assert first.model_dump() == second.model_dump()
    assert first.id.startswith("msg_offline_")
    other = complete(OfflineProvider(), request_for("tech_lead", OPEN_GOAL))
    assert other.id != first.id


def test_second_turn_ends_with_a_summary_naming_files_and_errors() -> None:
    provider = OfflineProvider()
    request = request_for("backend_engineer", OPEN_GOAL)
    first = complete(provider, request)
    failed = first.tool_uses[1].id
    final = complete(provider, with_results(request, first, failed))
    assert final.stop_reason == "end_turn"
    assert final.tool_uses == []
    assert "backend/app.py" in final.text
    path = first.tool_uses[1].input["path"]
    assert path not in final.text.split("failed")[0]
    assert f"1 tool call(s) failed: write_file {path}: path leaves the workspace" in final.text


def test_usage_is_estimated_and_free() -> None:
    provider = OfflineProvider()
    request = request_for("ux_engineer", OPEN_GOAL)
    response = complete(provider, request)
    chars = len(request.system) + sum(len(m.model_dump_json()) for m in request.messages)
    assert response.usage.input_tokens == -(-chars // 4)
    assert response.usage.output_tokens > 100
    assert response.usage.cache_read_input_tokens == 0
    assert response.usage.cache_creation_input_tokens == 0
    assert provider.cost_usd(OFFLINE_MODEL, response.usage) == 0.0


def test_call_log_gets_one_line_per_call(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "calls.jsonl"
    provider = OfflineProvider(call_log=log)
    request = request_for("project_manager", OPEN_GOAL)
    first = complete(provider, request)
    complete(provider, with_results(request, first))
    complete(OfflineProvider(call_log=log), request_for("ux_engineer", OPEN_GOAL))
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(line["role"], line["turn"]) for line in lines] == [
        ("project_manager", 0),
        ("project_manager", 1),
        ("ux_engineer", 0),
    ]


def test_latency_is_simulated() -> None:
    started = time.monotonic()
    complete(OfflineProvider(latency_seconds=0.2), request_for("tech_lead", OPEN_GOAL))
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize(
    ("role", "path"), [("astronaut", "docs/astronaut.md"), ("", "docs/agent.md")]
)
def test_unknown_role_still_answers(role: str, path: str) -> None:
    request = request_for(role, OPEN_GOAL)
    response = complete(OfflineProvider(), request)
    assert list(written(response)) == [path]
    assert complete(OfflineProvider(), with_results(request, response)).stop_reason == "end_turn"


def test_empty_conversation_does_not_crash() -> None:
    request = ModelRequest(model="", system="", messages=[], role="tech_lead")
    response = complete(OfflineProvider(), request)
    assert response.model == OFFLINE_MODEL
    assert "docs/architecture.md" in written(response)


# --------------------------------------------------------------------------- reviews


def test_security_review_finds_string_built_sql() -> None:
    app = (
        "import sqlite3\n"
        "def find(conn, name):\n"
        "    return conn.execute(f\"SELECT * FROM books WHERE title = '{name}'\")\n"
        "def find2(conn, name):\n"
        "    return conn.execute(\"SELECT * FROM books WHERE title = '%s'\" % name)\n"
        "def safe(conn, name):\n"
        '    return conn.execute("SELECT * FROM books WHERE title = ?", (name,))\n'
    )
    assert string_built_sql(app) == [3, 5]
    response = complete(
        OfflineProvider(), request_for("security_reviewer", OPEN_GOAL, {"backend/app.py": app})
    )
    assert outputs(response) == {"verdict": "fail", "high": 1}
    assert "FAIL" in written(response)["reviews/security_review.md"]


def test_code_review_requests_changes_without_tests() -> None:
    upstream = {"backend/app.py": "from fastapi import FastAPI\napp = FastAPI()\n"}
    response = complete(OfflineProvider(), request_for("code_reviewer", OPEN_GOAL, upstream))
    assert outputs(response)["verdict"] == "changes_requested"
    assert "The backend has no tests." in written(response)["reviews/code_review.md"]


def test_backend_falls_back_when_the_upstream_schema_does_not_fit() -> None:
    upstream = {"db/schema.sql": "CREATE TABLE books (id INTEGER PRIMARY KEY, isbn TEXT);"}
    files = written(
        complete(OfflineProvider(), request_for("backend_engineer", OPEN_GOAL, upstream))
    )
    assert "isbn" not in files["backend/app.py"]
    assert "CREATE TABLE IF NOT EXISTS books" in files["backend/app.py"]
    assert "no usable `db/schema.sql`" in files["backend/README.md"]


# --------------------------------------------------------------------------- templates

TEMPLATE_FILES = sorted(
    p for p in (Path(offline.__file__).parent / "files").rglob("*") if p.is_file()
)


def test_template_files_end_with_exactly_one_newline() -> None:
    # Generated files reproduce template files byte for byte, so an editor that adds or
    # strips a final newline would change every delivered file.
    assert TEMPLATE_FILES and all(path.suffix == SUFFIX for path in TEMPLATE_FILES)
    for path in TEMPLATE_FILES:
        text = path.read_text(encoding="utf-8")
        assert text.endswith("\n") and not text.endswith("\n\n"), path


def test_every_template_file_is_used() -> None:
    template.cache_clear()
    for goal in (f"{AUTH_GOAL} and a metrics dashboard", OPEN_GOAL):
        files: dict[str, str] = {}
        for role in (*SDLC_ORDER, "data_scientist", "release_manager"):
            files |= deliverables(role, goal, files, OFFLINE_MODEL).files
    assert template.cache_info().currsize == len(TEMPLATE_FILES)


def test_fill_refuses_missing_and_unused_values() -> None:
    assert fill("{{a}} and {{b}}", a="1", b="2") == "1 and 2"
    with pytest.raises(KeyError, match="'b' has no value"):
        fill("{{a}} and {{b}}", a="1")
    with pytest.raises(KeyError, match="without a placeholder: c"):
        fill("{{a}}", a="1", c="3")


# --------------------------------------------------------------------------- prompts


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_role_has_a_real_prompt(role: str) -> None:
    prompt = load_prompt(role)
    assert 25 <= len(prompt.splitlines()) <= 60
    assert "write_file" in prompt and "summary" in prompt
    for path in ROLE_DELIVERABLES[role]:
        assert path in prompt, f"{role} prompt does not name {path}"


# --------------------------------------------------------------------------- end to end


def run_pipeline(goal: str, roles: tuple[str, ...], root: Path) -> dict[str, dict[str, Any]]:
    """Every role in order, each seeing all files so far; files land in `root`."""
    provider = OfflineProvider()
    files: dict[str, str] = {}
    decisions: dict[str, dict[str, Any]] = {}
    for role in roles:
        request = request_for(role, goal, dict(files))
        response = complete(provider, request)
        final = complete(provider, with_results(request, response))
        assert final.stop_reason == "end_turn", role
        files |= written(response)
        decisions[role] = outputs(response)
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    return decisions


def run_pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.parametrize(("goal", "auth"), [(AUTH_GOAL, True), (OPEN_GOAL, False)])
def test_pipeline_delivers_a_working_repository(goal: str, auth: bool, tmp_path: Path) -> None:
    decisions = run_pipeline(goal, SDLC_ORDER, tmp_path)

    assert decisions["business_analyst"]["needs_auth"] is auth
    assert decisions["project_manager"] == {"cleanup": True}
    assert decisions["code_reviewer"]["verdict"] == "pass"
    assert decisions["security_reviewer"] == {"verdict": "pass", "high": 0}

    conn = sqlite3.connect(":memory:")
    conn.executescript((tmp_path / "db/schema.sql").read_text())
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert ("users" in tables) is auth

    inside = run_pytest(tmp_path / "backend")
    assert inside.returncode == 0, inside.stdout + inside.stderr
    assert " passed" in inside.stdout and "failed" not in inside.stdout
    from_root = run_pytest(tmp_path, "backend")
    assert from_root.returncode == 0, from_root.stdout + from_root.stderr

    readme = (tmp_path / "README.md").read_text()
    assert "| `backend/app.py` | Backend engineer | offline-sim-1 (offline) |" in readme
    app_js = (tmp_path / "frontend/app.js").read_text()
    assert "http://127.0.0.1:8000" in app_js and ".innerHTML" not in app_js
    assert f"const AUTH_REQUIRED = {json.dumps(auth)};" in app_js
    assert ('id="auth-form"' in (tmp_path / "frontend/index.html").read_text()) is auth


def test_data_scientist_metrics_run(tmp_path: Path) -> None:
    goal = "Build an expense tracker with a dashboard of spending metrics"
    run_pipeline(goal, ("business_analyst", "database_engineer", "data_scientist"), tmp_path)
    doctest = subprocess.run(
        [sys.executable, "-m", "doctest", "-v", "analytics/metrics.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert doctest.returncode == 0, doctest.stdout + doctest.stderr
    assert "Test passed." in doctest.stdout
    assert "`amount`" in (tmp_path / "analytics/metrics.md").read_text()


def test_tool_use_ids_differ_between_tasks() -> None:
    first = complete(OfflineProvider(), request_for("tech_lead", AUTH_GOAL))
    second = complete(OfflineProvider(), request_for("tech_lead", OPEN_GOAL))
    assert isinstance(first.content[1], ToolUseBlock)
    assert {u.id for u in first.tool_uses}.isdisjoint(u.id for u in second.tool_uses)
