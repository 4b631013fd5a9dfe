"""How every command runs: its coroutine on an event loop, its output on one console, and a
user error as one line on stderr with exit code 1, never a traceback."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import typer
from rich.console import Console

from agents.llm import ProviderConfigError
from core.infrastructure.local_stack import LocalStackError
from core.infrastructure.temporal import TemporalUnavailable
from core.persistence.db import DatabaseUnavailable
from core.services.runs import RunNotRecorded, StateUnavailable
from core.services.steering import SteeringError
from workers.main import UnknownQueueError
from workflows.dsl import TemplateError

# Lines never wrap (run ids and paths stay copyable); piped output gets a wide table.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, soft_wrap=True)

USER_ERRORS = (
    TemplateError,
    TemporalUnavailable,
    DatabaseUnavailable,
    LocalStackError,
    UnknownQueueError,
    ProviderConfigError,
    RunNotRecorded,
    StateUnavailable,
    SteeringError,
    ValueError,
)


def run_command(
    coro: Coroutine[Any, Any, int | None],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> None:
    """Run a command; a user error is one line on stderr and exit code 1, never a traceback."""
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            code = runner.run(coro) or 0
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


def fast_event_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (Linux, macOS): the API serves each request
    with less CPU on it. None: asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
