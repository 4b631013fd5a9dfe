"""`orchestrator estimate` and the predicted-vs-actual table of `orchestrator run`, as a user
runs them: real processes, the embedded stack, real exit codes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from core.infrastructure.local_stack import free_port
from tests.processes import assert_one_line_error, cli

SDLC_ROLES = (
    "business_analyst",
    "project_manager",
    "ux_engineer",
    "tech_lead",
    "database_engineer",
    "backend_engineer",
    "frontend_engineer",
    "data_scientist",
    "code_reviewer",
    "security_reviewer",
    "cleanup_agent",
)


def test_estimate_without_history_uses_defaults_and_says_so(isolated: dict[str, str]) -> None:
    # Nothing listens there: the estimate reads only the database.
    env = {**isolated, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    shown = cli("estimate", "Build a todo API", env=env)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    for role in SDLC_ROLES:
        assert role in shown.stdout
    assert "tokens mean" in shown.stdout and "tokens p90" in shown.stdout
    assert "Based on no earlier completed runs of sdlc." in shown.stdout
    assert "caveat: no history yet for template sdlc: per-role defaults" in shown.stdout

    as_json = cli("estimate", "Build a todo API", "--json", "--model", "other-model", env=env)
    assert as_json.returncode == 0, as_json.stderr
    estimate = json.loads(as_json.stdout)
    assert (estimate["basis"], estimate["runs_seen"], estimate["model"]) == (
        "defaults",
        0,
        "other-model",
    )
    assert [r["role"] for r in estimate["roles"]] == list(SDLC_ROLES)
    assert estimate["tokens"]["p90"] > estimate["tokens"]["mean"] > 0


def test_estimate_refuses_bad_input_in_one_line(tmp_path: Path, isolated: dict[str, str]) -> None:
    assert_one_line_error(
        cli("estimate", "Build a todo API", "--template", "nope", env=isolated),
        "nope",
        "no such template or file",
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntasks:\n  - {id: a, role: wizard}\n")
    assert_one_line_error(
        cli("estimate", "Build a todo API", "--template", str(bad), env=isolated),
        "unknown role 'wizard'",
    )
    assert_one_line_error(cli("estimate", "   ", env=isolated), "goal is empty")


def ledger_tokens(data_dir: str, run_id: str) -> dict[str, int]:
    with sqlite3.connect(Path(data_dir) / "orchestrator.db") as db:
        rows = db.execute(
            "SELECT role, SUM(input_tokens + output_tokens) FROM ledger WHERE run_id = ? "
            "GROUP BY role",
            (run_id,),
        ).fetchall()
    return {str(role): int(tokens) for role, tokens in rows}


def test_run_shows_predicted_vs_actual_and_the_estimate_learns_from_it(
    tmp_path: Path, isolated: dict[str, str]
) -> None:
    result = cli("run", "Build a bookstore inventory service", env=isolated, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = result.stdout.split("Run ", 1)[1].split()[0]
    assert f"Predicted (mean) vs actual · run {run_id}" in result.stdout
    table = result.stdout.split("Predicted (mean) vs actual", 1)[1]
    for role in ("business_analyst", "backend_engineer", "security_reviewer", "total"):
        assert role in table
    # The first run of the template was predicted from defaults, and the output says so.
    assert "Based on no earlier completed runs of sdlc." in table
    assert "caveat: no history yet for template sdlc: per-role defaults" in table
    spent = ledger_tokens(isolated["ORCHESTRATOR_DATA_DIR"], run_id)
    assert f"{sum(spent.values()):,}" in table

    shown = cli("estimate", "Build a library lending API", env=isolated, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "Based on 1 earlier completed run of sdlc." in shown.stdout
    assert "no history yet" not in shown.stdout

    as_json = cli("estimate", "Build a library lending API", "--json", env=isolated, cwd=tmp_path)
    estimate = json.loads(as_json.stdout)
    assert (estimate["basis"], estimate["runs_seen"]) == ("history", 1)
    roles = {r["role"]: r for r in estimate["roles"]}
    # One run seen: each role is predicted at what it spent in that run (the skipped
    # data_science task at 0), so the total is the run's.
    for role, tokens in spent.items():
        assert roles[role]["tokens"]["mean"] == tokens, role
    assert roles["data_scientist"]["basis"] == "never_ran"
    assert estimate["tokens"]["mean"] == sum(spent.values())
