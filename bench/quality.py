"""Quality of what the product delivers: a fixed set of goals, end to end, judged by running them.

    .venv/bin/python -m bench.quality [--goals N] [--only NAME[,NAME...]] [--concurrency 2]
                                      [--out DIR] [--template sdlc] [--budget-usd X]
                                      [--database-url URL]

Runs each goal of `GOALS` (or the first `--goals`, or those named by `--only`) through the
whole product, `--concurrency` at a time: a Temporal dev server, the workers of every queue
in this process, the provider the environment configures (offline without settings;
`ANTHROPIC_API_KEY`, or `LLM_PROVIDER=openai` with its settings, measure a real model),
and a fresh SQLite database unless `--database-url` names another. Then each deliverable
is run in the sandbox (`bench.executability`). Per goal and in total it reports
executability, lines of code, tokens, cost and wall time (from the ledger), gate revisions
and human interventions (from the run's final state).

It writes `quality.md`, `quality.png` and `quality.json` into `--out` (default
`bench/results/quality-<date>/`, git-ignored), with every delivered repository under
`repos/<goal>/`, and prints the summary table.

Nobody answers a decision here: the runs use an escalation policy that approves at once,
so a run that asks for a human still delivers something to judge, and the ask is counted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

from temporalio.client import Client, WorkflowFailureError

from agents.llm import ProviderConfigError
from agents.roles import ROLES
from bench.common import dev_server, scratch_directory
from bench.executability import assess
from bench.quality_report import (
    Goal,
    GoalResult,
    QualityReport,
    count_lines,
    provider_line,
    summary_lines,
    write_report,
)
from checks.sandbox import SandboxLimits
from core.contracts import (
    AutoDecision,
    EscalationPolicy,
    EventType,
    RunPlan,
    RunState,
    Usage,
    workflow_id_for,
)
from core.infrastructure.logs import configure_logging
from core.infrastructure.settings import Settings
from core.persistence import storage
from core.persistence.db import Database
from core.services.export import export_repository
from core.services.plans import build_plan
from core.services.providers import make_provider
from core.services.runs import goal_handle, start_goal, stored_state
from core.services.templates import load_template
from workers.main import serving

RESULTS = Path(__file__).resolve().parent / "results"

GOALS: tuple[Goal, ...] = (
    Goal(
        "bookstore_api",
        "REST API",
        "Build a REST API for a bookstore inventory: books with title, author, price and stock",
        expects_api=True,
    ),
    Goal(
        "csv_to_json_cli",
        "CLI tool",
        "Build a command-line tool that converts CSV files to JSON, with options for the "
        "delimiter and pretty printing",
        expects_api=False,
    ),
    Goal(
        "units_library",
        "library",
        "Build a Python library that converts units of length, mass and temperature, with a "
        "small documented public API",
        expects_api=False,
    ),
    Goal(
        "sales_pipeline",
        "data pipeline",
        "Build a data pipeline that ingests daily sales records from CSV files, cleans and "
        "deduplicates them, and reports revenue per month and product",
        expects_api=False,
    ),
    Goal(
        "tic_tac_toe",
        "game logic",
        "Build the game logic of tic-tac-toe: board state, legal moves, win and draw detection "
        "and a computer opponent that never loses",
        expects_api=False,
    ),
    Goal(
        "recipe_frontend",
        "web frontend",
        "Build a small web frontend to browse and search a recipe collection",
        expects_api=False,
    ),
    Goal(
        "job_scheduler",
        "scheduler/worker",
        "Build a job scheduler with a worker that runs queued jobs at their scheduled time, "
        "with retries and exponential backoff",
        expects_api=False,
    ),
    Goal(
        "expression_parser",
        "parser",
        "Build a parser and evaluator for arithmetic expressions with variables, operator "
        "precedence and clear syntax errors",
        expects_api=False,
    ),
    Goal(
        "chat_service",
        "chat/websocket service",
        "Build a chat service with rooms, message history and real-time delivery over websockets",
        expects_api=True,
    ),
    Goal(
        "auth_service",
        "auth service",
        "Build an authentication service with user registration, login, password hashing and "
        "JWT access tokens",
        expects_api=True,
    ),
)

DECIDE_AT_ONCE = EscalationPolicy(
    tier1_after_seconds=0,
    tier2_after_seconds=0,
    tier3_after_seconds=0,
    auto_decision=AutoDecision.APPROVE,
)
"""Nobody watches a benchmark: every decision a run asks for is the policy's, at once."""


async def measure(
    client: Client,
    db: Database,
    goals: list[Goal],
    *,
    settings: Settings,
    out: Path,
    concurrency: int = 2,
    template: str = "sdlc",
    budget_usd: float | None = None,
) -> QualityReport:
    """Run the goals with the configured provider, judge them, write the report into `out`."""
    provider = make_provider(settings.provider)
    limiter = asyncio.Semaphore(concurrency)

    async def one(goal: Goal) -> GoalResult:
        async with limiter:
            plan = build_plan(
                load_template(template, ROLES),
                goal=goal.text,
                run_id=uuid.uuid4().hex,
                provider=settings.provider,
                response_cache=False,  # every goal pays for its own calls
                budget_usd=budget_usd,
                escalation=DECIDE_AT_ONCE,
            )
            return await run_goal(client, db, goal, plan, settings, out / "repos")

    started = time.perf_counter()
    try:
        async with serving(client, db=db, provider=provider, settings=settings):
            results = await asyncio.gather(*(one(goal) for goal in goals))
    finally:
        close = getattr(provider, "aclose", None)
        if close is not None:
            await close()
    models = sorted({model for r in results for model in r.models})
    report = QualityReport(
        date=datetime.date.today().isoformat(),
        provider=provider.name,
        models=models or [provider.default_model],
        template=template,
        concurrency=concurrency,
        wall_seconds=time.perf_counter() - started,
        results=list(results),
    )
    write_report(report, out)
    return report


async def run_goal(
    client: Client, db: Database, goal: Goal, plan: RunPlan, settings: Settings, repos: Path
) -> GoalResult:
    """One goal end to end, then its figures from the ledger, the state and the sandbox."""
    started = time.perf_counter()
    state: RunState | None = None
    error = None
    try:
        await start_goal(client, db, plan)
        state = await goal_handle(client, plan.run_id).result()
    except WorkflowFailureError as exc:
        error = str(exc.cause or exc)
    wall = time.perf_counter() - started
    if state is None:  # the workflow failed: its last state is the one the database kept
        run = await storage.get_run(db, plan.run_id)
        state = stored_state(run) if run is not None else None
    workflow_id = workflow_id_for(plan.run_id)
    entries = await storage.ledger_entries(db, workflow_id)
    files = {a.path: a.content for a in await storage.latest_artifacts(db, plan.run_id)}
    shutil.rmtree(repos / goal.name, ignore_errors=True)  # an earlier run's, same --out
    await export_repository(db, plan.run_id, workflow_id, repos / goal.name)
    executability = await assess(
        files,
        expects_api=goal.expects_api,
        limits=SandboxLimits.from_settings(settings.sandbox),
        backend=settings.sandbox.backend,
    )
    lines, test_lines = count_lines(files)
    tasks = state.tasks if state is not None else []
    return GoalResult(
        goal=goal,
        run_id=plan.run_id,
        status=state.status.value if state is not None else "failed",
        wall_seconds=wall,
        usage=sum((storage.entry_usage(e) for e in entries), Usage()),
        cost_usd=sum(e.cost_usd for e in entries),
        model_calls=len(entries),
        models=sorted({e.model for e in entries}),
        lines=lines,
        test_lines=test_lines,
        gate_revisions=sum(not v.passed for task in tasks for v in task.verdicts),
        human_interventions=sum(
            e.type == EventType.DECISION_REQUESTED for e in (state.events if state else [])
        ),
        executability=executability,
        error=error or (state.error if state is not None else None),
    )


def select_goals(count: int | None, only: str | None) -> list[Goal]:
    """The first `count` goals, or those named in `only` (comma-separated); ValueError else."""
    if only:
        by_name = {goal.name: goal for goal in GOALS}
        names = [name.strip() for name in only.split(",") if name.strip()]
        unknown = [name for name in names if name not in by_name]
        if unknown:
            raise ValueError(f"unknown goal {', '.join(unknown)}; known: {', '.join(by_name)}")
        return [by_name[name] for name in names]
    return list(GOALS[:count] if count else GOALS)


async def main(args: argparse.Namespace) -> int:
    goals = select_goals(args.goals, args.only)
    out = args.out or RESULTS / f"quality-{datetime.date.today().isoformat()}"
    settings = Settings()
    configure_logging(level="WARNING")  # the table, not every model call, is the output
    with scratch_directory("bench-quality-") as tmp:
        db = Database(args.database_url or f"sqlite+aiosqlite:///{tmp / 'quality.db'}")
        try:
            await db.ensure_schema()
            async with dev_server() as env:
                report = await measure(
                    env.client,
                    db,
                    goals,
                    settings=settings,
                    out=out,
                    concurrency=args.concurrency,
                    template=args.template,
                    budget_usd=args.budget_usd,
                )
        finally:
            await db.dispose()
    print(f"bench.quality: {len(goals)} goals, {args.concurrency} at a time")
    print(provider_line(report))
    print("\n".join(summary_lines(report)))
    print(f"report: {out / 'quality.md'}, chart: {out / 'quality.png'}, repos: {out / 'repos'}")
    return 0 if all(r.status == "completed" for r in report.results) else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--goals", type=int, default=None, help=f"the first N of {len(GOALS)}")
    parser.add_argument("--only", default=None, help="goal names, comma-separated")
    parser.add_argument("--concurrency", type=int, default=2, help="goals at a time")
    parser.add_argument(
        "--out", type=Path, default=None, help="default bench/results/quality-<date>"
    )
    parser.add_argument("--template", default="sdlc")
    parser.add_argument("--budget-usd", type=float, default=None, help="cost limit per goal")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or (args.goals is not None and args.goals < 1):
        parser.error("--concurrency and --goals must be at least 1")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    try:
        code = asyncio.run(main(arguments))
    except (ValueError, ProviderConfigError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    # Leave without interpreter teardown: the Temporal runtime can abort it (sdk-python#300).
    sys.stdout.flush()
    os._exit(code)
