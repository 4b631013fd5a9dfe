"""Starting, estimating and reading runs: `run`, `estimate`, `status`, `artifacts`, `runs`."""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from temporalio.client import Client, WorkflowFailureError

from agents.roles import ROLES
from cli.estimate_view import based_on, comparison_table, estimate_table
from cli.progress import follow
from cli.render import (
    OFFLINE_MODEL_NOTE,
    breakdown_text,
    failures,
    run_table,
    runs_table,
    tool_lines,
)
from cli.repositories import GitOutput, deliver_change, import_repository
from cli.runner import console, errors, run_command
from cli.stack import temporal_stack
from core.contracts import EscalationPolicy, RunPlan, RunState, RunStatus, workflow_id_for
from core.infrastructure.git import GitError
from core.infrastructure.local_stack import LocalStackError
from core.infrastructure.settings import Settings, get_settings
from core.infrastructure.temporal import TemporalUnavailable, connect
from core.persistence import storage
from core.persistence.db import Database, get_database
from core.services.breakdowns import stage_views
from core.services.delivery import DeliveryError, RunHistory, clone_run
from core.services.escalation import PRESETS, check_escalation, named_policy
from core.services.estimate import RunNotRecorded, estimate_run, predicted_vs_actual
from core.services.export import export_repository
from core.services.graph import run_mermaid
from core.services.plans import build_plan, default_template
from core.services.providers import make_provider
from core.services.runs import load_state, recorded_run, start_goal, web_ui_link
from core.services.templates import DEFAULT_TEMPLATE, load_template

app = typer.Typer()

# What `run` and `estimate` both take.
GoalArg = Annotated[str, typer.Argument(help="What to build, e.g. 'Build a todo API'.")]
TemplateOpt = Annotated[str, typer.Option(help="Built-in template name or YAML file.")]
RunTemplateOpt = Annotated[
    str | None,
    typer.Option(
        help="Built-in template name or YAML file (default: `change` with --repo, else `sdlc`)."
    ),
]
ESCALATION_HELP = (
    f"Escalation policy: a preset ({', '.join(PRESETS)}), a JSON file, or JSON as `escalation` "
    'in POST /runs, e.g. \'{"webhook_url": "https://hooks.example.com/x", '
    "\"tier3_after_seconds\": 3600}' (default: the template's `settings.escalation`, else "
    "`default`)."
)
ModelOpt = Annotated[str | None, typer.Option(help="Model for every task (default: LLM_MODEL).")]


# --- run --------------------------------------------------------------------------------


@app.command()
def run(
    goal: GoalArg,
    template: RunTemplateOpt = None,
    model: ModelOpt = None,
    repo: Annotated[
        str | None,
        typer.Option(
            help="Start from this git repository (a path, or a URL where the network allows): "
            "the run changes it and delivers a branch orchestrator/RUN_ID, a patch and a "
            "pull-request description."
        ),
    ] = None,
    ref: Annotated[str, typer.Option(help="The commit, branch or tag of --repo.")] = "HEAD",
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
        typer.Option(help=ESCALATION_HELP),
    ] = None,
    require_human: Annotated[
        bool,
        typer.Option(
            "--require-human",
            help="Every code_review and security_review gate waits for a human decision after "
            "its checks and reviewer pass (REQUIRE_HUMAN_APPROVAL does it for every run).",
        ),
    ] = False,
    approve_plan: Annotated[
        bool | None,
        typer.Option(
            "--approve-plan/--no-approve-plan",
            help="Wait for a person to approve, edit or reject the planner's work breakdown "
            "before the stage expands (default: the template stage's `approval`, off in sdlc).",
        ),
    ] = None,
) -> None:
    """Run GOAL through a template's agent DAG and deliver the repository."""
    choices = RunChoices(
        model, validate, response_cache, escalation, require_human, repo, ref, approve_plan
    )
    run_command(_run_goal(goal, template or default_template(repo), choices, detach, out))


@dataclass(frozen=True)
class RunChoices:
    """What `run` lets a user choose for the plan; None follows the template and settings."""

    model: str | None = None
    validate: bool | None = None
    response_cache: bool | None = None
    escalation: str | None = None
    require_human: bool = False
    repo: str | None = None
    ref: str = "HEAD"
    approve_plan: bool | None = None


async def _escalation_policy(value: str, settings: Settings) -> EscalationPolicy:
    """The `--escalation` policy, refused in one line before anything starts."""
    try:
        policy = named_policy(value)
    except (ValueError, OSError) as exc:
        raise ValueError(f"--escalation: {exc}") from None
    await check_escalation(policy, settings)
    return policy


async def _run_goal(
    goal: str, template_name: str, choices: RunChoices, detach: bool, out: Path | None
) -> int:
    settings = get_settings()
    run_id = uuid.uuid4().hex
    escalation = choices.escalation
    db = get_database(settings.storage.resolved_database_url)
    await db.ensure_schema()
    repository = None
    if choices.repo is not None:
        repository = await import_repository(db, settings, choices.repo, choices.ref)
    plan = build_plan(
        load_template(template_name, ROLES),
        goal=goal,
        run_id=run_id,
        provider=settings.provider,
        gates=settings.gates,
        model=choices.model,
        validate=choices.validate,
        response_cache=choices.response_cache,
        escalation=None if escalation is None else await _escalation_policy(escalation, settings),
        require_human=choices.require_human,
        repository=repository,
        approve_plan=choices.approve_plan,
    )
    if escalation is None:
        await check_escalation(plan.escalation, settings)  # the template's own
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
            final = await follow(stack.client, db, run_id)
        except WorkflowFailureError as exc:
            raise RuntimeError(f"run {run_id} failed: {exc.cause}") from None
    for line in tool_lines(final):
        console.print(line, highlight=False, markup=False)
    target = out or Path("deliverables") / run_id
    if choices.repo is not None:
        return await _delivered_change(db, settings, plan, final, choices.repo, target)
    history = await _cloned(db, run_id, target)
    files = await export_repository(db, run_id, workflow_id_for(run_id), target, final)
    if history is not None:
        console.print(f"Git: {len(history.commits)} commits, one per task, on {history.branch}")
    for line in failures(final):
        errors.print(f"[red]failed[/red] {line}", highlight=False)
    await _show_prediction(db, settings, plan)
    console.print(
        f"Run {run_id} {final.status.value}: {final.usage.total:,} tokens, ${final.cost_usd:.4f}. "
        f"Deliverable: {target} ({len(files)} files, provenance in {target / 'PROVENANCE.md'})"
    )
    if (target / "backend").is_dir():
        console.print(f"Run its tests: cd {target / 'backend'} && {sys.executable} -m pytest -q")
    return 0 if final.status == RunStatus.COMPLETED else 2


async def _cloned(db: Database, run_id: str, target: Path) -> RunHistory | None:
    """A greenfield deliverable is a git repository, one commit per task; None where the
    folder already has files or the run wrote none."""
    if target.exists() and any(target.iterdir()):
        return None
    try:
        return await clone_run(db, run_id, target)
    except (DeliveryError, GitError) as exc:
        errors.print(f"[yellow]no git history:[/yellow] {exc}", highlight=False)
        return None


async def _delivered_change(
    db: Database, settings: Settings, plan: RunPlan, final: RunState, repo: str, target: Path
) -> int:
    """A change run's end: its branch, patch and PR text, whatever its status."""
    for line in failures(final):
        errors.print(f"[red]failed[/red] {line}", highlight=False)
    for line in await deliver_change(db, plan.run_id, repo, target):
        console.print(line, highlight=False, markup=False)
    await _show_prediction(db, settings, plan)
    console.print(
        f"Run {plan.run_id} {final.status.value}: {final.usage.total:,} tokens, "
        f"${final.cost_usd:.4f}."
    )
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
            gates=settings.gates,
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
        for line in tool_lines(view.state):
            console.print(line, highlight=False, markup=False)
        for line in failures(view.state):
            console.print(f"[red]failed[/red] {line}", highlight=False)
        return 0

    run_command(show())


@app.command()
def graph(
    run_id: Annotated[str, typer.Argument(help="The run id printed by `orchestrator run`.")],
) -> None:
    """Print a run's DAG as a Mermaid flowchart, each task in its state (paste it into a
    Markdown file on GitHub or GitLab, or the Mermaid Live Editor)."""

    async def show() -> int:
        settings = get_settings()
        db = get_database(settings.storage.resolved_database_url)
        run = await recorded_run(db, run_id)
        view = await load_state(db, await _temporal_if_reachable(settings), run)
        print(run_mermaid(view.state), end="")
        return 0

    run_command(show())


@app.command()
def plan(
    run_id: Annotated[str, typer.Argument(help="The run id printed by `orchestrator run`.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the breakdowns as JSON (to edit one).")
    ] = False,
) -> None:
    """Show the work breakdown of each stage the run's planner expands: what became of it,
    its packages as a table, and their dependencies as a Mermaid graph."""

    async def show() -> int:
        settings = get_settings()
        db = get_database(settings.storage.resolved_database_url)
        run = await recorded_run(db, run_id)
        view = await load_state(db, await _temporal_if_reachable(settings), run)
        stages = stage_views(view.state)
        if as_json:
            print(json.dumps([s.model_dump(mode="json") for s in stages], indent=2))
            return 0
        if not stages:
            console.print(f"run {run_id} has no stage a planner expands")
        for stage in stages:
            print(breakdown_text(stage))
        return 0

    run_command(show())


@app.command()
def artifacts(
    run_id: Annotated[str, typer.Argument()],
    content: Annotated[bool, typer.Option(help="Print each file's content.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write the repository to this folder.")] = None,
    patch: Annotated[
        bool, typer.Option("--patch", help="Print the run's change as one patch (`git apply`).")
    ] = False,
    bundle: Annotated[
        Path | None,
        typer.Option(help="Write the run's commits as a git bundle to this file."),
    ] = None,
    pull_request: Annotated[
        bool, typer.Option("--pull-request", help="Print the pull-request description.")
    ] = False,
    branch_in: Annotated[
        Path | None,
        typer.Option(
            help="Add the run's commits as branch orchestrator/RUN_ID to this git repository."
        ),
    ] = None,
) -> None:
    """List a run's artifacts, print them, write the generated repository to a folder, or
    give its work as git: a patch, a bundle, a pull-request text or a branch."""

    async def show() -> int:
        settings = get_settings()
        db = get_database(settings.storage.resolved_database_url)
        run = await recorded_run(db, run_id)
        git_output = GitOutput(patch, bundle, pull_request, branch_in)
        if git_output.asked:
            for line in await git_output.write(db, run_id):
                print(line, end="" if line.endswith("\n") else "\n")
            return 0
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
        found = await storage.list_runs(db, limit)
        if found:
            console.print(runs_table(found))
        else:
            console.print("no runs yet: start one with orchestrator run GOAL")
        return 0

    run_command(show())
