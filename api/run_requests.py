"""From a run request's body to the plan `core.services.plans.build_plan` makes of it.

What the body names is resolved here, each refusal a 422 naming its field: the goal's
length, the template (a built-in name, or a template inline), the escalation policy.
"""

from __future__ import annotations

import asyncio
import functools
import json

from agents.roles import ROLES
from api.errors import unprocessable
from api.schemas.fields import check_storable
from api.schemas.runs import EstimateRequest, RunCreate
from core.contracts import RepositoryRef, RunPlan
from core.infrastructure.settings import Settings
from core.services.escalation import EscalationRefused, check_escalation
from core.services.plans import build_plan, default_template
from core.services.templates import (
    available_templates,
    load_template,
    parse_template,
)
from workflows.dsl import Template, TemplateError, validate


def _inline_template(text: str, source: str) -> Template:
    template = parse_template(text, source)
    validate(template, ROLES, source)
    try:
        check_storable(template)  # YAML escapes ("\0", "\ud800") make what JSON refused
    except ValueError as exc:
        raise TemplateError(source, [str(exc)]) from None
    return template


async def request_template(body: EstimateRequest, repository: object | None = None) -> Template:
    """The template inline in the body, else the built-in one it names (default `sdlc`, or
    `change` for a run from a repository)."""
    if body.inline_template is not None:
        source = "inline_template"
        text = (
            body.inline_template
            if isinstance(body.inline_template, str)
            else json.dumps(body.inline_template)  # JSON is YAML: one parser, one set of messages
        )
        try:
            # Parsing is CPU-bound: off the event loop, other requests go on meanwhile.
            return await asyncio.to_thread(_inline_template, text, source)
        except TemplateError as exc:
            raise unprocessable(("body", source), str(exc), problems=exc.problems) from None
    name = body.template or default_template(repository)
    builtin = _builtin_names()
    if name not in builtin:
        # Only built-in names: a request never makes the server read a file of its choosing.
        raise unprocessable(
            ("body", "template"),
            f"unknown template {name!r} (built-in templates: {', '.join(builtin)})",
        )
    # Parsed once per process; each run gets its own copy (its plan may share objects).
    return _builtin_template(name).model_copy(deep=True)


@functools.cache
def _builtin_names() -> tuple[str, ...]:
    return tuple(available_templates())


@functools.cache
def _builtin_template(name: str) -> Template:
    return load_template(name, ROLES)


async def request_plan(
    body: EstimateRequest,
    tenant: str,
    settings: Settings,
    run_id: str,
    repository: RepositoryRef | None = None,
) -> RunPlan:
    """The plan of the run the body asks for (or estimates): 422 for what cannot be run."""
    if len(body.goal) > settings.api.max_goal_chars:
        raise unprocessable(
            ("body", "goal"),
            f"the goal has {len(body.goal)} characters; "
            f"at most {settings.api.max_goal_chars} are allowed",
            "string_too_long",
        )
    template = await request_template(body, repository)
    run = body if isinstance(body, RunCreate) else None
    try:
        return build_plan(
            template,
            goal=body.goal,
            run_id=run_id,
            provider=settings.provider,
            gates=settings.gates,
            tenant=tenant,
            model=body.model,
            validate=body.validate_tasks,
            response_cache=body.response_cache,
            budget_tokens=run.budget_tokens if run else None,
            budget_usd=run.budget_usd if run else None,
            escalation=run.escalation if run else None,
            require_human=run.require_human if run else False,
            repository=repository,
            approve_plan=run.approve_plan if run else None,
        )
    except ValueError as exc:
        raise unprocessable(("body", "goal"), str(exc)) from None


async def check_request_escalation(body: RunCreate, plan: RunPlan, settings: Settings) -> None:
    """422 naming the escalation policy's field this deployment cannot honour: the body's,
    else the one its template carries (`settings.escalation`)."""
    where: tuple[str, ...] = ("body", "escalation")
    if body.escalation is None:
        source = "inline_template" if body.inline_template is not None else "template"
        where = ("body", source, "settings", "escalation")
    try:
        await check_escalation(plan.escalation, settings)
    except EscalationRefused as exc:
        raise unprocessable((*where, exc.field), exc.reason) from None
