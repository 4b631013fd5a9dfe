"""The `orchestrator` command: the command groups composed into one typer app, and `main()`."""

from __future__ import annotations

import os
import sys

import typer
from rich.text import Text

from cli import admin, processes, runs, steering, templates
from cli.runner import errors
from core.infrastructure.logs import configure_logging
from core.infrastructure.settings import TelemetrySettings

app = typer.Typer(help="Durable multi-agent software delivery on Temporal.", no_args_is_help=True)
# A sub-app added without a name lends its commands to `orchestrator` itself. The order
# here is the order `orchestrator --help` lists the commands in.
app.add_typer(runs.app)
app.add_typer(processes.workers_app)
app.add_typer(steering.app)
app.add_typer(processes.api_app)
app.add_typer(templates.app, name="templates")
app.add_typer(steering.dead_letters_app, name="dlq")
app.add_typer(steering.tasks_app, name="tasks")
app.add_typer(admin.orgs_app, name="orgs")
app.add_typer(admin.keys_app, name="keys")


def _activity_failed(line: str) -> None:
    errors.print(Text(line, style="yellow"), soft_wrap=True)


def main() -> None:
    """Console entry point: exit without the interpreter's shutdown (sdk-python issue 300)."""
    # Interactive commands show their own progress: only warnings from the logs here (all of
    # it with LOG_LEVEL=debug), an activity's classified failure (a retried 429) as one
    # line; `worker` and `api` switch to LOG_LEVEL.
    debug = TelemetrySettings().log_level.upper() == "DEBUG"
    configure_logging(level="DEBUG" if debug else "WARNING", failure_notices=_activity_failed)
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    else:
        code = 0
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
