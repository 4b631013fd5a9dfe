"""The `orchestrator` command as a user runs it: real processes, real exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from core.infrastructure.local_stack import free_port, is_listening
from tests.helpers import run_generated_tests
from tests.processes import ORCHESTRATOR, assert_one_line_error, clean_environ, cli


def test_invalid_template_file(tmp_path: Path, isolated: dict[str, str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\ntasks:\n  - {id: a, role: wizard}\n  - {id: b, role: tech_lead, depends_on: [b2]}\n"
    )
    result = cli("templates", "validate", str(bad), env=isolated)
    assert_one_line_error(result, "unknown role 'wizard'", "unknown task 'b2'")
    result = cli("run", "Build a todo API", "--template", str(bad), env=isolated)
    assert_one_line_error(result, "unknown role 'wizard'")


def test_empty_goal(isolated: dict[str, str]) -> None:
    assert_one_line_error(cli("run", "   ", env=isolated), "goal is empty")


@pytest.mark.parametrize(
    ("policy", "fragments"),
    [
        ('{"tier3_afer_seconds": 60}', ("--escalation: tier3_afer_seconds", "Extra inputs")),
        ('{"tier1_after_seconds": -1}', ("tier1_after_seconds", "greater than or equal to 0")),
        ('{"tier1_after_seconds": 1e300}', ("tier1_after_seconds", "less than or equal")),
        ('{"tier2_after_seconds": NaN}', ("tier2_after_seconds", "finite number")),
        ('{"email_to": ["lead@example.com"]}', ("escalation.email_to", "SMTP_HOST")),
        ('{"webhook_url": "http://127.0.0.1:9/hook"}', ("escalation.webhook_url", "non-public")),
        ("tier1_after_seconds=5", ("--escalation", "Invalid JSON")),
    ],
)
def test_run_refuses_an_escalation_policy_that_cannot_work(
    isolated: dict[str, str], policy: str, fragments: tuple[str, ...]
) -> None:
    env = {**isolated, "SMTP_HOST": "", "WEBHOOK_ALLOW_PRIVATE_TARGETS": "false"}
    result = cli("run", "Build a todo API", "--escalation", policy, env=env)
    assert_one_line_error(result, *fragments)


def test_unknown_run_id(isolated: dict[str, str]) -> None:
    assert_one_line_error(cli("status", "nope", env=isolated), "no run with id 'nope'")
    assert_one_line_error(cli("artifacts", "nope", env=isolated), "no run with id 'nope'")


def test_unreachable_temporal_address(isolated: dict[str, str]) -> None:
    env = {**isolated, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    assert_one_line_error(cli("run", "Build a todo API", env=env), "cannot reach Temporal")


def test_unreachable_database_url(isolated: dict[str, str]) -> None:
    env = {**isolated, "DATABASE_URL": f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/x"}
    assert_one_line_error(cli("run", "Build a todo API", env=env), "cannot use database")
    assert_one_line_error(cli("status", "abc", env=env), "cannot use database")


def test_templates_list_and_show(isolated: dict[str, str]) -> None:
    listed = cli("templates", "list", env=isolated)
    assert listed.returncode == 0 and "sdlc" in listed.stdout
    assert "description" in listed.stdout.splitlines()[1]  # a header row
    # The whole description, wrapped between words, never cut inside one.
    words = " ".join(line.strip("│ ").split("│")[-1].strip() for line in listed.stdout.splitlines())
    assert "with an optional data-science task and a cleanup pass." in " ".join(words.split())
    shown = cli("templates", "show", "sdlc", env=isolated)
    assert shown.returncode == 0
    assert "backend" in shown.stdout and "gate security_review" in shown.stdout
    drawn = cli("templates", "show", "sdlc", "--mermaid", env=isolated)
    assert drawn.returncode == 0, drawn.stderr
    assert drawn.stdout.startswith("flowchart TD\n")
    assert '    t_security_review{{"security_review<br/>security_reviewer"}}' in drawn.stdout
    assert "    t_database --> t_backend" in drawn.stdout


def test_run_with_the_embedded_stack_then_status_and_artifacts(
    tmp_path: Path, isolated: dict[str, str]
) -> None:
    """What `make run` does: no settings, nothing running; the CLI brings the stack up."""
    result = cli(
        "run", "Build a task management API with user authentication", env=isolated, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "offline model" in result.stdout
    assert "Temporal Web UI: http://127.0.0.1:" in result.stdout
    run_id = result.stdout.split("Run ", 1)[1].split()[0]
    delivered = tmp_path / "deliverables" / run_id
    assert (delivered / "backend" / "app.py").exists()
    # a git repository, one commit per task that wrote files, PROVENANCE.md beside them
    log = subprocess.run(
        ["git", "-C", str(delivered), "log", "--format=%an %(trailers:key=Task,valueonly)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert {"business_analyst", "backend_engineer", "frontend_engineer"} <= set(log), log
    assert "backend" in log and "requirements" in log
    clean = ["git", "-C", str(delivered), "status", "--porcelain"]
    assert subprocess.run(clean, capture_output=True, text=True, check=True).stdout == ""

    status = cli("status", run_id, env=isolated, cwd=tmp_path)
    assert status.returncode == 0 and "completed" in status.stdout and "backend" in status.stdout
    assert "stage implementation (expanded, planned by architecture)" in status.stdout
    plan = cli("plan", run_id, env=isolated, cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "stage implementation: expanded (planned by architecture" in plan.stdout
    assert "| backend | backend_engineer | - | backend/ |" in plan.stdout
    assert "```mermaid\ngraph TD" in plan.stdout
    as_json = json.loads(cli("plan", run_id, "--json", env=isolated, cwd=tmp_path).stdout)
    assert [p["id"] for p in as_json[0]["breakdown"]["packages"]] == ["backend", "frontend"]
    bad = tmp_path / "breakdown.json"
    bad.write_text('{"packages": []}')
    assert_one_line_error(
        cli("edit-plan", run_id, str(bad), env=isolated, cwd=tmp_path),
        "is not a work breakdown",
    )
    assert_one_line_error(
        cli("edit-plan", run_id, str(tmp_path / "none.json"), env=isolated, cwd=tmp_path),
        "cannot read",
    )

    out = tmp_path / "x"
    exported = cli("artifacts", run_id, "--out", str(out), env=isolated, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    tests = run_generated_tests(out / "backend")
    assert tests.returncode == 0, tests.stdout + tests.stderr

    listing = cli("artifacts", run_id, env=isolated, cwd=tmp_path)
    assert "backend/app.py" in listing.stdout and "offline-sim-1" in listing.stdout


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_up_serves_detached_runs_visible_to_temporal_cli_and_web_ui(
    tmp_path: Path, isolated: dict[str, str]
) -> None:
    """`orchestrator up` in one terminal, `run --detach`, then Temporal's own tools."""
    env = clean_environ(isolated)
    port, ui_port = isolated["ORCHESTRATOR_TEMPORAL_PORT"], isolated["ORCHESTRATOR_UI_PORT"]
    up = subprocess.Popen(
        [ORCHESTRATOR, "up"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: is_listening("127.0.0.1", int(port)), 60, "the dev server")
        started = cli(
            "run", "Build a bookstore inventory service", "--detach", env=isolated, cwd=tmp_path
        )
        assert started.returncode == 0, started.stdout + started.stderr
        run_id = started.stdout.split("Run ", 1)[1].split()[0]
        wait_for(
            lambda: "completed" in cli("status", run_id, env=isolated, cwd=tmp_path).stdout,
            120,
            "the run to complete",
        )

        listed = subprocess.run(
            [
                str(Path(sys.executable).parent / "temporal"),
                "workflow",
                "list",
                "--address",
                f"127.0.0.1:{port}",
                "--query",
                'WorkflowType="GoalWorkflow"',
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        assert f"run-{run_id}" in listed.stdout

        query = urllib.parse.quote(f'WorkflowId="run-{run_id}" AND RunStatus="completed"')

        def listed_by_web_ui() -> bool:
            # visibility is eventually consistent: the final upsert may land a moment later
            with urllib.request.urlopen(
                f"http://127.0.0.1:{ui_port}/api/v1/namespaces/default/workflows?query={query}",
                timeout=30,
            ) as response:
                return f"run-{run_id}" in response.read().decode()

        wait_for(listed_by_web_ui, 30, "the Web UI to list the completed run")
    finally:
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=60)
    assert "Temporal Web UI: http://127.0.0.1:" in output
    assert up.returncode in (0, 130), output
    assert "Traceback" not in output
