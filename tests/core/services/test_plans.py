"""Where plans are built: the deployment's gate settings, the run's human sign-off, and the
escalation policy from a preset, a file, JSON text or the template."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agents.roles import ROLES
from core.contracts import AutoDecision, EscalationPolicy, GateKind, RepositoryRef, RunPlan
from core.infrastructure.settings import GateSettings, ProviderSettings, Settings
from core.services.escalation import PRESETS, named_policy
from core.services.plans import build_plan, default_template
from core.services.templates import load_template, parse_template
from tests.helpers import TEMPLATES

PROVIDER = ProviderSettings.model_construct()


def plan_of(
    template: str, gates: GateSettings | None = None, require_human: bool = False
) -> RunPlan:
    return build_plan(
        load_template(str(TEMPLATES / template), ROLES),
        goal="Build a todo API",
        run_id="r",
        provider=PROVIDER,
        gates=gates,
        require_human=require_human,
    )


def gated_plan(
    gates: GateSettings | None = None, require_human: bool = False
) -> dict[str, dict[str, object]]:
    plan = plan_of("gated.yaml", gates, require_human)
    return {t.id: {"skip": t.skip_reason, "human": t.require_human} for t in plan.tasks}


def test_by_default_every_gate_runs_and_no_one_signs_off() -> None:
    none = {"skip": None, "human": False}
    assert gated_plan() == {"backend": none, "code_review": none, "security_review": none}
    assert gated_plan(Settings(_env_file=None).gates) == gated_plan()


def test_require_settings_skip_gates_with_the_reason_and_add_a_human_to_the_rest() -> None:
    gates = Settings(
        _env_file=None, REQUIRE_CODE_REVIEW="false", REQUIRE_HUMAN_APPROVAL="true"
    ).gates
    assert gated_plan(gates) == {
        "backend": {"skip": None, "human": False},
        "code_review": {"skip": "skipped: REQUIRE_CODE_REVIEW is false", "human": True},
        "security_review": {"skip": None, "human": True},
    }
    no_security = Settings(_env_file=None, REQUIRE_SECURITY_REVIEW="false").gates
    assert gated_plan(no_security)["security_review"]["skip"] == (
        "skipped: REQUIRE_SECURITY_REVIEW is false"
    )


def test_the_run_asks_for_a_human_on_checked_gates_only() -> None:
    assert [t["human"] for t in gated_plan(require_human=True).values()] == [False, True, True]
    plan = plan_of("approval.yaml", require_human=True)
    assert [(t.gate, t.require_human) for t in plan.tasks] == [
        (None, False),
        (GateKind.HUMAN_APPROVAL, False),  # it waits for a human anyway
        (None, False),
    ]


def test_a_templates_escalation_is_the_default_and_the_runs_own_wins() -> None:
    template = parse_template(
        textwrap.dedent(
            """
            name: escalating
            settings:
              escalation: {tier3_after_seconds: 120, auto_decision: approve}
            tasks:
              - {id: backend, role: backend_engineer}
            """
        )
    )
    plan = build_plan(template, goal="g", run_id="r", provider=PROVIDER)
    assert (plan.escalation.tier3_after_seconds, plan.escalation.auto_decision) == (
        120,
        AutoDecision.APPROVE,
    )
    own = EscalationPolicy(tier3_after_seconds=60)
    plan = build_plan(template, goal="g", run_id="r", provider=PROVIDER, escalation=own)
    assert (plan.escalation.tier3_after_seconds, plan.escalation.auto_decision) == (
        60,
        AutoDecision.FAIL,
    )


def test_a_policy_is_a_preset_a_file_or_json_text(tmp_path: Path) -> None:
    assert named_policy("quick") == PRESETS["quick"]
    assert named_policy("unattended").auto_decision == AutoDecision.APPROVE
    policy_file = tmp_path / "policy.json"
    policy_file.write_text('{"tier2_after_seconds": 30, "email_to": ["lead@example.com"]}')
    assert named_policy(str(policy_file)).email_to == ["lead@example.com"]
    assert named_policy('{"tier1_after_seconds": 5}').tier1_after_seconds == 5
    policy_file.write_text('{"tier2_afer_seconds": 30}')
    with pytest.raises(ValueError, match=r"policy\.json: tier2_afer_seconds: Extra inputs"):
        named_policy(str(policy_file))
    with pytest.raises(ValueError, match="a preset \\(default, quick, unattended\\)"):
        named_policy("hasty")


def test_a_repository_makes_a_change_run_whose_template_may_name_its_test_command() -> None:
    repository = RepositoryRef(
        snapshot_id="s", commit="c" * 40, source="upload", test_command="make test"
    )
    assert default_template(repository) == "change" and default_template(None) == "sdlc"
    change = load_template(default_template(repository), ROLES)
    plan = build_plan(change, goal="g", run_id="r", provider=PROVIDER, repository=repository)
    assert plan.repository is not None and plan.repository.test_command == "make test"
    assert [t.id for t in plan.tasks if t.gate] == ["code_review", "security_review"]

    change.settings.test_command = "npm test"
    plan = build_plan(change, goal="g", run_id="r", provider=PROVIDER, repository=repository)
    assert plan.repository is not None and plan.repository.test_command == "npm test"
    assert repository.test_command == "make test"  # the caller's ref is not changed
