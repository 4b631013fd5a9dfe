"""A goal and a template become a run's plan: the one place every client compiles it.

The CLI (`run`, `estimate`) and the API (`POST /runs`, `POST /runs/estimate`) call
`build_plan`, so a run means the same thing whichever way it starts.
"""

from __future__ import annotations

from agents.roles import ROLES
from core.contracts import EscalationPolicy, RunPlan
from core.infrastructure.settings import ProviderSettings
from workflows.dsl import Template, compile_plan


def build_plan(
    template: Template,
    *,
    goal: str,
    run_id: str,
    provider: ProviderSettings,
    tenant: str = "default",
    model: str | None = None,
    validate: bool | None = None,
    response_cache: bool | None = None,
    budget_tokens: int | None = None,
    budget_usd: float | None = None,
    escalation: EscalationPolicy | None = None,
) -> RunPlan:
    """The validated plan for `goal`; raises ValueError for an empty goal.

    `model`, `validate` and `response_cache` are the run's own choices; None follows the
    template, then the deployment (`LLM_MODEL`, `VALIDATION_MODEL`).
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
    )
    plan.budget_tokens, plan.budget_usd = budget_tokens, budget_usd
    if escalation is not None:
        plan.escalation = escalation
    return plan
