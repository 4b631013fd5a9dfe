"""The `orchestrator` command."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.service import RPCError

from agents.llm import ProviderConfigError
from agents.roles import ROLES
from cli.render import OFFLINE_MODEL_NOTE, failures, run_table
from cli.stack import temporal_stack
from core import storage
from core.contracts import (
    RunState,
    RunStatus,
    workflow_id_for,
)
from core.db import DatabaseUnavailable, get_database
from core.export import export_repository
from core.local_stack import DevServer, LocalStackError
from core.settings import Settings, get_settings
from core.temporal import TemporalUnavailable, connect, ensure_search_attributes, start_run
from workers.main import UnknownQueueError, parse_queues, run_workers
from workflows.dsl import (
    DEFAULT_TEMPLATE,
    TemplateError,
    available_templates,
    compile_plan,
    load_template,
)

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
    return f"{settings.ui_url}/namespaces/{settings.temporal_namespace}/workflows/{workflow_id_for(run_id)}"


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


# --- run --------------------------------------------------------------------------------


@app.command()
def run(
    goal: Annotated[str, typer.Argument(help="What to build, e.g. 'Build a todo API'.")],
    template: Annotated[
        str, typer.Option(help="Built-in template name or YAML file.")
    ] = DEFAULT_TEMPLATE,
    model: Annotated[
        str | None, typer.Option(help="Model for every task (default: LLM_MODEL).")
    ] = None,
    detach: Annotated[bool, typer.Option(help="Start the run and return at once.")] = False,
    out: Annotated[
        Path | None, typer.Option(help="Where to write the delivered repository.")
    ] = None,
) -> None:
    """Run GOAL through a template's agent DAG and deliver the repository."""
    _run(_run_goal(goal, template, model, detach, out))


async def _run_goal(
    goal: str, template_name: str, model: str | None, detach: bool, out: Path | None
) -> int:
    settings = get_settings()
    template = load_template(template_name, ROLES)
    run_id = uuid.uuid4().hex
    plan = compile_plan(
        template,
        goal=goal,
        run_id=run_id,
        model=model or settings.llm_model,
        heartbeat_timeout_seconds=settings.model_heartbeat_timeout_seconds,
    )
    db = get_database(settings.resolved_database_url)
    await db.ensure_schema()
    provider = settings.resolved_provider
    async with temporal_stack(settings, with_worker=not detach) as stack:
        if detach and stack.embedded:
            raise LocalStackError(
                "--detach needs a stack that outlives this command: start `orchestrator up` "
                "or set TEMPORAL_ADDRESS"
            )
        await start_run(stack.client, plan)
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
    console.print(
        f"Run {run_id} {final.status.value}: {final.usage.total:,} tokens, ${final.cost_usd:.4f}. "
        f"Deliverable: {target} ({len(files)} files, provenance in {target / 'PROVENANCE.md'})"
    )
    if (target / "backend").is_dir():
        console.print(f"Run its tests: cd {target / 'backend'} && python -m pytest -q")
    return 0 if final.status == RunStatus.COMPLETED else 2


# --- status and artifacts ---------------------------------------------------------------


async def load_state(settings: Settings, run_id: str) -> RunState:
    """A closed run from the database; a running one from the workflow's `status` query."""
    db = get_database(settings.resolved_database_url)
    run = await storage.get_run(db, run_id)
    if run is None:
        raise RunNotFound(f"no run with id {run_id!r}")
    if run.final_state:
        return RunState.model_validate_json(run.final_state)
    client = await connect(settings)
    handle = client.get_workflow_handle(workflow_id_for(run_id))
    description = await handle.describe()
    if description.status != WorkflowExecutionStatus.RUNNING:
        return RunState(
            run_id=run_id,
            goal=run.goal,
            template=run.template,
            status=RunStatus.FAILED,
            error=f"workflow is {description.status.name if description.status else 'unknown'}",
        )
    state = await handle.query("status", result_type=RunState)
    if state is None:
        return RunState(run_id=run_id, goal=run.goal, template=run.template)
    return state


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
        db = get_database(settings.resolved_database_url)
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
        db = get_database(get_settings().resolved_database_url)
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
) -> None:
    """Serve task queues: the orchestrator queue and/or agent.<role> queues."""

    async def serve() -> int:
        settings = get_settings()
        selected = parse_queues(queues)
        client = await connect(settings)
        await ensure_search_attributes(client)
        console.print(f"worker serving {', '.join(selected)} on {settings.target_address}")
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
            console.print(f"Temporal Web UI: {settings.ui_url}")
            console.print(f"Database: {settings.resolved_database_url}")
            console.print("Worker serving all queues. Ctrl-C stops the stack.")
            await run_workers(client, settings)
        finally:
            server.stop()
        return 0

    _run(serve())


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


def main() -> None:
    """Console entry point: exit without the interpreter's shutdown (sdk-python issue 300)."""
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    else:
        code = 0
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
