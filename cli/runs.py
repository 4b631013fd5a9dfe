"""Starting, estimating and reading runs: `run`, `estimate`, `status`, `artifacts`, `runs`."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.live import Live
from temporalio.client import Client, WorkflowFailureError

from agents.roles import ROLES
from cli.estimate_view import based_on, comparison_table, estimate_table
from cli.render import OFFLINE_MODEL_NOTE, failures, run_table
from cli.runner import console, errors, run_command
from cli.stack import temporal_stack
from core.contracts import EscalationPolicy, RunPlan, RunState, RunStatus, workflow_id_for
from core.infrastructure.local_stack import LocalStackError
from core.infrastructure.settings import Settings, get_settings
from core.infrastructure.temporal import TemporalUnavailable, connect
from core.persistence import storage
from core.persistence.db import Database, get_database
from core.services.escalation import check_escalation
from core.services.estimate import RunNotRecorded, estimate_run, predicted_vs_actual
from core.services.export import export_repository
from core.services.plans import build_plan
from core.services.providers import make_provider
from core.services.runs import (
    goal_handle,
    load_state,
    query_state,
    recorded_run,
    start_goal,
    web_ui_link,
)
from core.services.templates import DEFAULT_TEMPLATE, load_template

app = typer.Typer()

# What `run` and `estimate` both take.
GoalArg = Annotated[str, typer.Argument(help="What to build, e.g. 'Build a todo API'.")]
TemplateOpt = Annotated[str, typer.Option(help="Built-in template name or YAML file.")]
ModelOpt = Annotated[str | None, typer.Option(help="Model for every task (default: LLM_MODEL).")]


async def _follow(client: Client, run_id: str) -> RunState:
    """Show the DAG live until the run closes; return its final state."""
    result_task = asyncio.create_task(goal_handle(client, run_id).result())
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while not result_task.done():
            # None until the first workflow task has run.
            state = await query_state(client, run_id)
            if state is not None:
                live.update(run_table(state))
            await asyncio.wait({result_task}, timeout=0.5)
        final = result_task.result()
        live.update(run_table(final))
    console.print()
    return final


# --- run --------------------------------------------------------------------------------


@app.command()
def run(
    goal: GoalArg,
    template: TemplateOpt = DEFAULT_TEMPLATE,
    model: ModelOpt = None,
    detach: Annotated[bool, typer.Option(help="Start the run and return at once.")] = False,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the delivered repository.")
    ] = None,
    validate: Annotated[
        bool | None,
        typer.Option(
            "--validate/--no-validate",
            help="Check each task's work with the validator (default: the template's setting, on).",
        ),
    ] = None,
    response_cache: Annotated[
        bool | None,
        typer.Option(
            "--response-cache/--no-response-cache",
            help="Answer requests identical to earlier ones from stored responses (default: "
            "the template's setting, on where RESPONSE_CACHE allows).",
        ),
    ] = None,
    escalation: Annotated[
        str | None,
        typer.Option(
            help="Escalation policy as JSON, as `escalation` in POST /runs, e.g. "
            '\'{"webhook_url": "https://hooks.example.com/x", "tier3_after_seconds": 3600}\'.',
        ),
    ] = None,
) -> None:
    """Run GOAL through a template's agent DAG and deliver the repository."""
    run_command(_run_goal(goal, template, model, detach, out, validate, response_cache, escalation))


async def _escalation_policy(text: str, settings: Settings) -> EscalationPolicy:
    """The `--escalation` policy, refused in one line before anything starts."""
    try:
        policy = EscalationPolicy.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'policy'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ValueError(f"--escalation: {problems}") from None
    await check_escalation(policy, settings)
    return policy


async def _run_goal(
    goal: str,
    template_name: str,
    model: str | None,
    detach: bool,
    out: Path | None,
    validate: bool | None = None,
    response_cache: bool | None = None,
    escalation: str | None = None,
) -> int:
    settings = get_settings()
    run_id = uuid.uuid4().hex
    plan = build_plan(
        load_template(template_name, ROLES),
        goal=goal,
        run_id=run_id,
        provider=settings.provider,
        model=model,
        validate=validate,
        response_cache=response_cache,
        escalation=None if escalation is None else await _escalation_policy(escalation, settings),
    )
    db = get_database(settings.storage.resolved_database_url)
    await db.ensure_schema()
    provider = settings.provider.resolved_provider
    async with temporal_stack(settings, with_worker=not detach) as stack:
        if detach and stack.embedded:
            raise LocalStackError(
                "--detach needs a stack that outlives this command: start `orchestrator up` "
                "or set TEMPORAL_ADDRESS"
            )
        # Written at the start, the run's row lists a detached run (`orchestrator runs`)
        # before any worker picks it up.
        await start_goal(stack.client, db, plan)
        console.print(
            f"Run [bold]{run_id}[/bold] started: {plan.goal!r} with template {plan.template!r}"
        )
        console.print(
            f"Model provider: {provider}"
            + (f" ({OFFLINE_MODEL_NOTE})" if provider == "offline" else "")
        )
        console.print(f"Temporal Web UI: {web_ui_link(settings.temporal, run_id)}")
        if detach:
            console.print(f"Follow it with: orchestrator status {run_id}")
            return 0
        try:
            final = await _follow(stack.client, run_id)
        except WorkflowFailureError as exc:
            raise RuntimeError(f"run {run_id} failed: {exc.cause}") from None
    target = out or Path("deliverables") / run_id
    files = await export_repository(db, run_id, workflow_id_for(run_id), target)
    for line in failures(final):
        errors.print(f"[red]failed[/red] {line}", highlight=False)
    await _show_prediction(db, settings, plan)
    console.print(
        f"Run {run_id} {final.status.value}: {final.usage.total:,} tokens, ${final.cost_usd:.4f}. "
        f"Deliverable: {target} ({len(files)} files, provenance in {target / 'PROVENANCE.md'})"
    )
    if (target / "backend").is_dir():
        console.print(f"Run its tests: cd {target / 'backend'} && python -m pytest -q")
    return 0 if final.status == RunStatus.COMPLETED else 2


async def _show_prediction(db: Database, settings: Settings, plan: RunPlan) -> None:
    """Per role: what the estimate from earlier runs said, and what this run spent."""
    provider = make_provider(settings.provider)
    try:
        comparison = await predicted_vs_actual(
            db,
            plan.run_id,
            default_model=provider.default_model,
            price=provider.cost_usd,
            plan=plan,
        )
    except RunNotRecorded:
        return  # the run's row was never written: nothing to compare
    console.print(comparison_table(comparison))
    console.print(based_on(comparison.estimate), highlight=False)
    if comparison.estimate.note:
        console.print(f"[yellow]caveat:[/yellow] {comparison.estimate.note}", highlight=False)


# --- estimate ----------------------------------------------------------------------------


@app.command()
def estimate(
    goal: GoalArg,
    template: TemplateOpt = DEFAULT_TEMPLATE,
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the estimate as JSON.")] = False,
) -> None:
    """Predict a run's tokens and cost per role (mean and p90) from earlier runs of the template.

    Reads only the database: no Temporal server is needed.
    """

    async def show() -> int:
        settings = get_settings()
        plan = build_plan(
            load_template(template, ROLES),
            goal=goal,
            run_id="estimate",
            provider=settings.provider,
            model=model,
        )
        provider = make_provider(settings.provider)
        db = get_database(settings.storage.resolved_database_url)
        await db.ensure_schema()
        found = await estimate_run(
            db, plan, default_model=provider.default_model, price=provider.cost_usd
        )
        if as_json:
            print(found.model_dump_json(indent=2))
            return 0
        console.print(estimate_table(found))
        console.print(based_on(found), highlight=False)
        if found.note:
            console.print(f"[yellow]caveat:[/yellow] {found.note}", highlight=False)
        if provider.name == "offline":
            console.print(f"Model provider: offline ({OFFLINE_MODEL_NOTE})")
        return 0

    run_command(show())


# --- status and artifacts ---------------------------------------------------------------


async def _temporal_if_reachable(settings: Settings) -> Client | None:
    """Temporal if it answers: a closed run is read from the database without it."""
    try:
        return await connect(settings)
    except TemporalUnavailable:
        return None


@app.command()
def status(
    run_id: Annotated[str, typer.Argument(help="The run id printed by `orchestrator run`.")],
) -> None:
    """Show a run task by task: state, tokens, cost, model."""

    async def show() -> int:
        settings = get_settings()
        db = get_database(settings.storage.resolved_database_url)
        run = await recorded_run(db, run_id)
        view = await load_state(db, await _temporal_if_reachable(settings), run)
        console.print(run_table(view.state))
        for line in failures(view.state):
            console.print(f"[red]failed[/red] {line}", highlight=False)
        return 0

    run_command(show())


@app.command()
def artifacts(
    run_id: Annotated[str, typer.Argument()],
    content: Annotated[bool, typer.Option(help="Print each file's content.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write the repository to this folder.")] = None,
) -> None:
    """List a run's artifacts, print them, or write the generated repository to a folder."""

    async def show() -> int:
        settings = get_settings()
        db = get_database(settings.storage.resolved_database_url)
        run = await recorded_run(db, run_id)
        if out is not None:
            files = await export_repository(db, run_id, run.workflow_id, out)
            console.print(f"wrote {len(files)} files to {out}")
            return 0
        for artifact in await storage.latest_artifacts(db, run_id):
            console.print(
                f"{artifact.path}  [dim]v{artifact.version} {artifact.size} B · {artifact.task_id} "
                f"({artifact.role}) · {artifact.model}[/dim]",
                highlight=False,
            )
            if content:
                console.print(artifact.content, markup=False, highlight=False)
        return 0

    run_command(show())


@app.command()
def runs(
    limit: Annotated[int, typer.Option(help="How many of the newest runs.")] = 20,
) -> None:
    """List recent runs from the database."""

    async def show() -> int:
        db = get_database(get_settings().storage.resolved_database_url)
        for run in await storage.list_runs(db, limit):
            console.print(
                f"{run.id}  {run.status:<10} {run.template:<8} ${run.cost_usd:.4f}  {run.goal[:60]}",
                highlight=False,
            )
        return 0

    run_command(show())
