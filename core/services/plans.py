"""A goal and a template become a run's plan: the one place every client compiles it.

The CLI (`run`, `estimate`) and the API (`POST /runs`, `POST /runs/estimate`) call
`build_plan`, so a run means the same thing whichever way it starts, including the
deployment's gate settings (REQUIRE_CODE_REVIEW, REQUIRE_SECURITY_REVIEW,
REQUIRE_HUMAN_APPROVAL).
"""

from __future__ import annotations

from agents.roles import ROLES
from core.contracts import EscalationPolicy, GateKind, RepositoryRef, RunPlan, TaskPlan
from core.infrastructure.settings import GateSettings, ProviderSettings
from workflows.dsl import Template, compile_plan

CHANGE_TEMPLATE = "change"
"""The default template of a run that starts from a repository."""
GREENFIELD_TEMPLATE = "sdlc"
"""The default template of a run that starts from nothing."""


def default_template(repository: object | None) -> str:
    return CHANGE_TEMPLATE if repository is not None else GREENFIELD_TEMPLATE


SKIPPED_BY = {
    GateKind.CODE_REVIEW: "REQUIRE_CODE_REVIEW",
    GateKind.SECURITY_REVIEW: "REQUIRE_SECURITY_REVIEW",
}
"""The setting that turns each kind of checked gate off."""


def build_plan(
    template: Template,
    *,
    goal: str,
    run_id: str,
    provider: ProviderSettings,
    gates: GateSettings | None = None,
    tenant: str = "default",
    model: str | None = None,
    validate: bool | None = None,
    response_cache: bool | None = None,
    budget_tokens: int | None = None,
    budget_usd: float | None = None,
    escalation: EscalationPolicy | None = None,
    require_human: bool = False,
    repository: RepositoryRef | None = None,
    approve_plan: bool | None = None,
) -> RunPlan:
    """The validated plan for `goal`; raises ValueError for an empty goal.

    `model`, `validate` and `response_cache` are the run's own choices; None follows the
    template, then the deployment (`LLM_MODEL`, `VALIDATION_MODEL`). `escalation` replaces
    the template's policy. `gates` None keeps every gate and asks no human; `require_human`
    adds a human sign-off to every checked gate, as REQUIRE_HUMAN_APPROVAL does for all runs.
    `approve_plan` makes a person approve the work breakdown of the template's stage (None:
    the stage's `approval`). `repository` makes a change run: its workspace starts as the repository, and the
    template's `test_command`, if it sets one, replaces the detected one.
    """
    plan = compile_plan(
        template,
        goal=goal,
        run_id=run_id,
        roles=ROLES,
        tenant=tenant,
        model=model or provider.llm_model,
        heartbeat_timeout_seconds=provider.model_heartbeat_timeout_seconds,
        validate=validate,
        validation_model=provider.resolved_validation_model,
        response_cache=response_cache,
        approve_plan=approve_plan,
    )
    plan.budget_tokens, plan.budget_usd = budget_tokens, budget_usd
    if repository is not None:
        command = template.settings.test_command or repository.test_command
        plan.repository = repository.model_copy(update={"test_command": command})
    if escalation is not None:
        plan.escalation = escalation
    # model_construct: the defaults alone, never this process's environment.
    apply_gate_settings(plan.tasks, gates or GateSettings.model_construct(), require_human)
    return plan


def apply_gate_settings(tasks: list[TaskPlan], gates: GateSettings, require_human: bool) -> None:
    """Mark the gates the deployment turned off as skipped, and the checked gates that a
    person signs off after they pass."""
    kept = {
        GateKind.CODE_REVIEW: gates.require_code_review,
        GateKind.SECURITY_REVIEW: gates.require_security_review,
    }
    for task in tasks:
        if task.gate is None or not task.gate.checked:
            continue
        if not kept[task.gate]:
            task.skip_reason = f"skipped: {SKIPPED_BY[task.gate]} is false"
        task.require_human = require_human or gates.require_human_approval
