"""The `orchestrator` command."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.live import Live
from sqlalchemy.engine import make_url
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError

from agents.llm import ProviderConfigError, make_provider
from agents.roles import ROLES
from cli.estimate_view import based_on, comparison_table, estimate_table
from cli.render import OFFLINE_MODEL_NOTE, failures, run_table
from cli.stack import temporal_stack
from core.contracts import (
    BUDGET_GATE,
    Decision,
    DecisionKind,
    EscalationPolicy,
    NewTask,
    RunPlan,
    RunState,
    RunStatus,
    TaskModification,
    TaskRemoval,
    workflow_id_for,
)
from core.infrastructure.local_stack import DevServer, LocalStackError
from core.infrastructure.logs import configure_logging, settings_secrets
from core.infrastructure.metrics import metrics_runtime, serve_worker_metrics
from core.infrastructure.settings import Settings, get_settings
from core.infrastructure.temporal import (
    TemporalUnavailable,
    connect,
    ensure_search_attributes,
    start_run,
)
from core.infrastructure.tracing import configure_tracing
from core.persistence import storage, tenancy
from core.persistence.db import Database, DatabaseUnavailable, get_database
from core.persistence.tenancy import IssuedKey, OrgRole
from core.services import steering as steer
from core.services.escalation import check_escalation
from core.services.estimate import RunNotRecorded, estimate_run, predicted_vs_actual
from core.services.export import export_repository
from core.services.plans import build_plan
from core.services.templates import DEFAULT_TEMPLATE, available_templates, load_template
from workers.main import UnknownQueueError, parse_queues, run_workers
from workflows.dsl import TemplateError

app = typer.Typer(help="Durable multi-agent software delivery on Temporal.", no_args_is_help=True)
templates_app = typer.Typer(help="Task DSL templates.", no_args_is_help=True)
app.add_typer(templates_app, name="templates")

# Lines never wrap (run ids and paths stay copyable); piped output gets a wide table.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, soft_wrap=True)


class RunNotFound(LookupError):
    pass


USER_ERRORS = (
    TemplateError,
    TemporalUnavailable,
    DatabaseUnavailable,
    LocalStackError,
    UnknownQueueError,
    ProviderConfigError,
    RunNotFound,
    steer.SteeringError,
    ValueError,
)


def _run(coro: Coroutine[Any, Any, int | None]) -> None:
    """Run a command; a user error is one line on stderr and exit code 1, never a traceback."""
    try:
        code = asyncio.run(coro) or 0
    except USER_ERRORS as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        code = 1
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:
        if os.environ.get("ORCHESTRATOR_DEBUG"):
            raise
        errors.print(
            f"[red]error:[/red] {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            " (set ORCHESTRATOR_DEBUG=1 for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        code = 1
    raise typer.Exit(code)


def _web_ui_link(settings: Settings, run_id: str) -> str:
    return f"{settings.temporal.ui_url}/namespaces/{settings.temporal.temporal_namespace}/workflows/{workflow_id_for(run_id)}"


async def _follow(client: Client, run_id: str) -> RunState:
    """Show the DAG live until the run closes; return its final state."""
    handle = client.get_workflow_handle(workflow_id_for(run_id), result_type=RunState)
    result_task = asyncio.create_task(handle.result())
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while not result_task.done():
            try:
                state = await handle.query("status", result_type=RunState)
                if state is not None:
                    live.update(run_table(state))
            except RPCError:
                pass  # the first workflow task has not run yet
            await asyncio.wait({result_task}, timeout=0.5)
        final = result_task.result()
        live.update(run_table(final))
    console.print()
    return final


# What `run` and `estimate` both take.
GoalArg = Annotated[str, typer.Argument(help="What to build, e.g. 'Build a todo API'.")]
TemplateOpt = Annotated[str, typer.Option(help="Built-in template name or YAML file.")]
ModelOpt = Annotated[str | None, typer.Option(help="Model for every task (default: LLM_MODEL).")]


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
    _run(_run_goal(goal, template, model, detach, out, validate, response_cache, escalation))


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
        await start_run(stack.client, plan)
        # The workflow's first activity writes this row too; writing it here, after the
        # start, lists a detached run (`orchestrator runs`) before any worker picks it up.
        await storage.record_run_started(db, plan, workflow_id_for(run_id))
        console.print(
            f"Run [bold]{run_id}[/bold] started: {plan.goal!r} with template {plan.template!r}"
        )
        console.print(
            f"Model provider: {provider}"
            + (f" ({OFFLINE_MODEL_NOTE})" if provider == "offline" else "")
        )
        console.print(f"Temporal Web UI: {_web_ui_link(settings, run_id)}")
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
    provider = make_provider(settings)
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
        provider = make_provider(settings)
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

    _run(show())


# --- status and artifacts ---------------------------------------------------------------


async def load_state(settings: Settings, run_id: str) -> RunState:
    """A running run from the workflow's `status` query; a closed one from the database."""
    db = get_database(settings.storage.resolved_database_url)
    run = await storage.get_run(db, run_id)
    if run is None:
        raise RunNotFound(f"no run with id {run_id!r}")
    try:
        client = await connect(settings)
        handle = client.get_workflow_handle(workflow_id_for(run_id))
        description = await handle.describe()
    except (TemporalUnavailable, RPCError):
        description = None  # Temporal is gone (the embedded stack stopped): the DB knows
    if description is not None and description.status == WorkflowExecutionStatus.RUNNING:
        state = await handle.query("status", result_type=RunState)
        if state is not None:
            return state
    if run.final_state:
        return RunState.model_validate_json(run.final_state)
    closed = description.status.name.lower() if description and description.status else "unknown"
    return RunState(
        run_id=run_id,
        goal=run.goal,
        template=run.template,
        status=RunStatus.FAILED,
        error=f"the workflow is {closed} and recorded no final state",
    )


@app.command()
def status(
    run_id: Annotated[str, typer.Argument(help="The run id printed by `orchestrator run`.")],
) -> None:
    """Show a run task by task: state, tokens, cost, model."""

    async def show() -> int:
        state = await load_state(get_settings(), run_id)
        console.print(run_table(state))
        for line in failures(state):
            console.print(f"[red]failed[/red] {line}", highlight=False)
        return 0

    _run(show())


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
        run = await storage.get_run(db, run_id)
        if run is None:
            raise RunNotFound(f"no run with id {run_id!r}")
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

    _run(show())


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

    _run(show())


# --- processes --------------------------------------------------------------------------


@app.command()
def worker(
    queues: Annotated[
        list[str] | None,
        typer.Option(
            "--queues",
            help="Task queues to serve (comma-separated or repeated; default all).",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus /metrics (platform and Temporal SDK) on this port."),
    ] = None,
) -> None:
    """Serve task queues: the orchestrator queue, checks, and/or agent.<role> queues."""

    async def serve() -> int:
        settings = get_settings()
        selected = parse_queues(queues)
        configure_logging(
            _json_logs(settings), settings.telemetry.log_level, settings_secrets(settings)
        )
        configure_tracing("orchestrator-worker", settings)
        runtime = None
        if metrics_port is not None:
            sdk_address = f"127.0.0.1:{_free_port()}"
            runtime = metrics_runtime(sdk_address)
            serve_worker_metrics(metrics_port, sdk_address)
            console.print(f"metrics on http://0.0.0.0:{metrics_port}/metrics")
        client = await connect(settings, runtime=runtime)
        await ensure_search_attributes(client)
        console.print(f"worker serving {', '.join(selected)} on {settings.temporal.target_address}")
        await run_workers(client, settings, selected)
        return 0

    _run(serve())


@app.command()
def up() -> None:
    """Start the local stack (Temporal dev server with Web UI, a worker for all queues) and keep it running."""

    async def serve() -> int:
        settings = get_settings()
        server = DevServer(settings)
        await server.start()
        try:
            client = await connect(settings)
            await ensure_search_attributes(client)
            console.print(
                f"Temporal dev server on {server.address} (history in {settings.temporal_db_file})"
            )
            console.print(f"Temporal Web UI: {settings.temporal.ui_url}")
            console.print(f"Database: {settings.storage.resolved_database_url}")
            console.print("Worker serving all queues. Ctrl-C stops the stack.")
            await run_workers(client, settings)
        finally:
            server.stop()
        return 0

    _run(serve())


# --- steering a running goal -------------------------------------------------------------

By = Annotated[str, typer.Option("--by", help="Who decides (recorded in the run).")]
Comment = Annotated[str, typer.Option("--comment", help="Why; reaches the implementers.")]


def _steer(work: Callable[[Client], Coroutine[Any, Any, int | None]]) -> None:
    async def connected() -> int | None:
        return await work(await connect(get_settings()))

    _run(connected())


def _decide(run_id: str, gate: str, kind: DecisionKind, comment: str, by: str) -> None:
    async def send(client: Client) -> int:
        await steer.decide(
            client, run_id, Decision(gate=gate, decision=kind, comment=comment, by=by)
        )
        console.print(f"{kind.value} sent to gate {gate} of run {run_id}")
        return 0

    _steer(send)


@app.command()
def approve(run_id: str, gate: str, comment: Comment = "", by: By = "cli") -> None:
    """Approve a gate that waits for a human decision."""
    _decide(run_id, gate, DecisionKind.APPROVE, comment, by)


@app.command()
def reject(run_id: str, gate: str, comment: Comment = "", by: By = "cli") -> None:
    """Reject a gate that waits for a human decision (its run fails)."""
    _decide(run_id, gate, DecisionKind.REJECT, comment, by)


@app.command("request-changes")
def request_changes(run_id: str, gate: str, comment: Comment = "", by: By = "cli") -> None:
    """Send a waiting gate's findings (and your comment) back to the implementers."""
    _decide(run_id, gate, DecisionKind.REQUEST_CHANGES, comment, by)


class BudgetAnswer(StrEnum):
    RAISE = "raise"
    ABORT = "abort"


@app.command()
def budget(
    run_id: str,
    answer: Annotated[BudgetAnswer, typer.Argument(help="raise (go on spending) or abort.")],
    tokens: Annotated[
        int | None, typer.Option(min=0, help="With raise: the run's new token limit.")
    ] = None,
    usd: Annotated[
        float | None, typer.Option(min=0, help="With raise: the run's new cost limit.")
    ] = None,
    comment: Comment = "",
    by: By = "cli",
) -> None:
    """Answer a run paused because its budget (or its organization's month) is spent."""

    async def send(client: Client) -> int:
        decision = Decision(
            gate=BUDGET_GATE,
            decision=DecisionKind(answer.value),
            comment=comment,
            by=by,
            budget_tokens=tokens,
            budget_usd=usd,
        )
        await steer.decide(client, run_id, decision)
        console.print(f"{answer.value} sent to the budget decision of run {run_id}")
        return 0

    _steer(send)


@app.command()
def pending(run_id: str) -> None:
    """What a run waits for: gate decisions and dead-lettered tasks."""

    async def show(client: Client) -> int:
        waiting = await steer.pending(client, run_id)
        for p in waiting:
            console.print(
                f"{p.kind:<12} {p.key:<18} tier {p.tier} since {p.since:%Y-%m-%d %H:%M:%S} "
                f"[dim]({' | '.join(p.options)})[/dim] {p.reason}",
                highlight=False,
            )
        if not waiting:
            console.print(f"run {run_id} waits for nothing")
        return 0

    _steer(show)


dlq_app = typer.Typer(help="Dead-lettered tasks and failed runs.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")


@dlq_app.command("list")
def dlq_list() -> None:
    """Dead-lettered tasks of running runs, and failed runs (from Temporal visibility)."""

    async def show(client: Client) -> int:
        rows = await steer.dead_letters(client)
        for run_id, task, why in rows:
            console.print(f"{run_id}  {task:<18} {why}", highlight=False)
        if not rows:
            console.print("no dead-lettered tasks or failed runs")
        return 0

    _steer(show)


def _resolve(run_id: str, task: str, action: str, comment: str, by: str) -> None:
    async def send(client: Client) -> int:
        await steer.resolve(client, run_id, task, action, comment, by)
        console.print(f"{action} sent for task {task} of run {run_id}")
        return 0

    _steer(send)


@dlq_app.command("retry")
def dlq_retry(run_id: str, task: str, comment: Comment = "", by: By = "cli") -> None:
    """Run a dead-lettered task again from the turn that failed."""
    _resolve(run_id, task, "retry", comment, by)


@dlq_app.command("skip")
def dlq_skip(run_id: str, task: str, comment: Comment = "", by: By = "cli") -> None:
    """Skip a dead-lettered task; its dependants go on without it."""
    _resolve(run_id, task, "skip", comment, by)


@dlq_app.command("abort")
def dlq_abort(run_id: str, task: str, comment: Comment = "", by: By = "cli") -> None:
    """Give up on a dead-lettered task; its dependants cannot run and the run fails."""
    _resolve(run_id, task, "abort", comment, by)


@app.command()
def reset(
    run_id: str,
    to: Annotated[str, typer.Option("--to", help="Re-run from just before this task.")],
) -> None:
    """Reset a run (Temporal workflow reset) to before TASK; earlier work is replayed, not redone."""

    async def send(client: Client) -> int:
        new_run = await steer.reset_to_task(client, run_id, to)
        console.print(f"run {run_id} reset to before task {to} (Temporal run {new_run})")
        return 0

    _steer(send)


tasks_app = typer.Typer(help="Change the plan of a running goal.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")


def _ids(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _change(run_id: str, name: str, change: Any) -> None:
    async def send(client: Client) -> int:
        task = await steer.update(client, run_id, name, change)
        console.print(f"{name}: done" + (f" ({task.id}: {task.status.value})" if task else ""))
        return 0

    _steer(send)


@tasks_app.command("add")
def tasks_add(
    run_id: str,
    task_id: Annotated[str, typer.Option("--id", help="The new task's id.")],
    role: Annotated[str, typer.Option(help="Its agent role.")],
    after: Annotated[str | None, typer.Option(help="Tasks it waits for, comma-separated.")] = None,
    before: Annotated[str | None, typer.Option(help="Pending tasks that must wait for it.")] = None,
    description: Annotated[str, typer.Option(help="What the agent should do.")] = "",
    model: Annotated[str | None, typer.Option(help="Model for this task.")] = None,
) -> None:
    """Add a task to a running goal."""
    _change(
        run_id,
        "add_task",
        NewTask(
            id=task_id,
            role=role,
            depends_on=_ids(after),
            before=_ids(before),
            description=description,
            model=model,
        ),
    )


@tasks_app.command("remove")
def tasks_remove(run_id: str, task: str) -> None:
    """Remove a pending task; its dependants inherit its dependencies."""
    _change(run_id, "remove_task", TaskRemoval(task=task))


@tasks_app.command("modify")
def tasks_modify(
    run_id: str,
    task: str,
    role: Annotated[str | None, typer.Option(help="New role.")] = None,
    after: Annotated[str | None, typer.Option(help="New dependencies, comma-separated.")] = None,
    model: Annotated[str | None, typer.Option(help="New model.")] = None,
    prompt: Annotated[str | None, typer.Option(help="Instructions added to its prompt.")] = None,
) -> None:
    """Change a pending task: role, dependencies, model, prompt additions."""
    _change(
        run_id,
        "modify_task",
        TaskModification(
            task=task,
            role=role,
            depends_on=_ids(after) if after is not None else None,
            model=model,
            prompt_addition=prompt,
        ),
    )


# --- templates --------------------------------------------------------------------------


@templates_app.command("list")
def templates_list() -> None:
    """List the built-in templates."""
    for name, path in available_templates().items():
        template = load_template(str(path), ROLES)
        console.print(
            f"{name}  [dim]{len(template.tasks)} tasks · {template.description.strip()[:80]}[/dim]"
        )


@templates_app.command("show")
def templates_show(
    name: Annotated[str, typer.Argument(help="Template name or YAML file.")],
) -> None:
    """Show a template's tasks and dependencies."""

    async def show() -> int:
        template = load_template(name, ROLES)
        console.print(f"[bold]{template.name}[/bold]: {template.description.strip()}")
        for task in template.tasks:
            extras = [f"after {', '.join(task.depends_on)}" if task.depends_on else "first"]
            if task.gate:
                extras.append(f"gate {task.gate}")
            if task.when:
                extras.append(f"when {task.when}")
            console.print(f"  {task.id:<16} {task.role:<18} {' · '.join(extras)}", highlight=False)
        return 0

    _run(show())


@templates_app.command("validate")
def templates_validate(
    file: Annotated[str, typer.Argument(help="YAML template file.")],
) -> None:
    """Validate a template file and name every problem."""

    async def check() -> int:
        template = load_template(file, ROLES)
        console.print(f"{file}: valid ({len(template.tasks)} tasks)")
        return 0

    _run(check())


# --- organizations and API keys (straight to the database) -------------------------------

orgs_app = typer.Typer(help="Organizations (tenants) of the API.", no_args_is_help=True)
app.add_typer(orgs_app, name="orgs")
keys_app = typer.Typer(help="API keys of an organization.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _role(value: str) -> OrgRole:
    try:
        return OrgRole(value.strip().lower())
    except ValueError:
        choices = ", ".join(role.value for role in OrgRole)
        raise ValueError(f"unknown role {value!r}: choose one of {choices}") from None


def _at(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def _print_secret(issued: IssuedKey) -> None:
    console.print(
        f"{issued.row.role} key {issued.row.id} ({issued.row.name}), shown once; store it now:",
        highlight=False,
    )
    console.print(issued.secret, markup=False, highlight=False)


@orgs_app.command("create")
def orgs_create(
    name: Annotated[str, typer.Argument(help="The organization's unique name.")],
    monthly_tokens: Annotated[
        int | None,
        typer.Option("--monthly-tokens", help="Input + output tokens per calendar month."),
    ] = None,
    monthly_cost_usd: Annotated[
        float | None, typer.Option("--monthly-cost-usd", help="Model cost per calendar month.")
    ] = None,
) -> None:
    """Create an organization and its first admin API key (the key is printed once)."""

    async def create() -> int:
        if not name.strip():
            raise ValueError("organization name is empty")
        if (monthly_tokens is not None and monthly_tokens < 0) or (
            monthly_cost_usd is not None and monthly_cost_usd < 0
        ):
            raise ValueError("monthly limits cannot be negative")
        db = get_database(get_settings().storage.resolved_database_url)
        org = await tenancy.create_org(
            db,
            name.strip(),
            monthly_token_limit=monthly_tokens,
            monthly_cost_limit_usd=monthly_cost_usd,
        )
        issued = await tenancy.create_key(db, org.id, "first admin key", OrgRole.ADMIN)
        console.print(f"organization {org.name}: {org.id}", highlight=False)
        _print_secret(issued)
        return 0

    _run(create())


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Option("--org", help="Organization id or name.")],
    role: Annotated[str, typer.Option("--role", help="admin, member or viewer.")] = "member",
    name: Annotated[str | None, typer.Option("--name", help="What the key is for.")] = None,
) -> None:
    """Issue an API key (the key is printed once: only its hash is stored)."""

    async def create() -> int:
        chosen = _role(role)
        db = get_database(get_settings().storage.resolved_database_url)
        found = await tenancy.get_org(db, org)
        label = (name or "").strip() or f"{chosen.value} key"
        _print_secret(await tenancy.create_key(db, found.id, label, chosen))
        return 0

    _run(create())


@keys_app.command("list")
def keys_list(
    org: Annotated[str, typer.Option("--org", help="Organization id or name.")],
) -> None:
    """List an organization's keys: never the key itself."""

    async def show() -> int:
        db = get_database(get_settings().storage.resolved_database_url)
        found = await tenancy.get_org(db, org)
        rows = await tenancy.list_keys(db, found.id)
        if not rows:
            console.print(f"organization {found.name} has no API keys", highlight=False)
            return 0
        console.print(
            f"{'ID':<36}  {'PREFIX':<12}  {'ROLE':<6}  {'CREATED':<20}  {'LAST USED':<20}  "
            f"{'REVOKED':<20}  NAME",
            highlight=False,
        )
        for row in rows:
            console.print(
                f"{row.id:<36}  {row.prefix:<12}  {row.role:<6}  {_at(row.created_at):<20}  "
                f"{_at(row.last_used_at):<20}  {_at(row.revoked_at):<20}  {row.name}",
                markup=False,
                highlight=False,
            )
        return 0

    _run(show())


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (`orchestrator keys list`).")],
) -> None:
    """Revoke an API key: from its next request on it is refused (401)."""

    async def revoke() -> int:
        db = get_database(get_settings().storage.resolved_database_url)
        row = await tenancy.revoke_key(db, key_id)
        console.print(
            f"key {row.id} ({row.name}) of {row.org_id} revoked at {_at(row.revoked_at)}",
            highlight=False,
        )
        return 0

    _run(revoke())


# --- the REST API ----------------------------------------------------------------------


class ListenError(ValueError):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _json_logs(settings: Settings) -> bool | None:
    return (
        None if settings.telemetry.log_format is None else settings.telemetry.log_format == "json"
    )


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@app.command("api")
def serve_api(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: all).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Serve the REST API (OpenAPI at /docs) until Ctrl-C."""

    async def serve() -> int:
        import uvicorn

        from api.app import create_app
        from api.server import server_config

        settings = get_settings()
        configure_logging(
            _json_logs(settings), settings.telemetry.log_level, settings_secrets(settings)
        )
        configure_tracing("orchestrator-api", settings)
        sock = _listening_socket(host, port)
        server = uvicorn.Server(
            server_config(create_app(settings), settings, host=host, port=port, log_config=None)
        )
        database = make_url(settings.storage.resolved_database_url).render_as_string(
            hide_password=True
        )
        console.print(f"API on http://{host}:{port} (docs at /docs), database {database}")
        try:
            await server.serve(sockets=[sock])
        finally:
            sock.close()
        return 0

    _run(serve())


def main() -> None:
    """Console entry point: exit without the interpreter's shutdown (sdk-python issue 300)."""
    # Interactive commands show their own progress: only warnings from the logs here;
    # `worker` and `api` switch to LOG_LEVEL.
    configure_logging(level="WARNING")
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    else:
        code = 0
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
