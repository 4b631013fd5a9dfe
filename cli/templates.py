"""Task DSL templates: list the built-in ones, show one, validate a file."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from agents.roles import ROLES
from cli.runner import console, run_command
from core.services.graph import mermaid
from core.services.templates import available_templates, load_template

app = typer.Typer(help="Task DSL templates.", no_args_is_help=True)


@app.command("list")
def templates_list() -> None:
    """List the built-in templates."""
    table = Table()
    table.add_column("template", no_wrap=True)
    table.add_column("tasks", justify="right")
    # Wrapped at word boundaries, never cut: the description says what the template is for.
    table.add_column("description")
    for name, path in available_templates().items():
        template = load_template(str(path), ROLES)
        table.add_row(name, str(len(template.tasks)), " ".join(template.description.split()))
    console.print(table)


@app.command("show")
def templates_show(
    name: Annotated[str, typer.Argument(help="Template name or YAML file.")],
    as_mermaid: Annotated[
        bool,
        typer.Option("--mermaid", help="Print the DAG as a Mermaid flowchart (gates as hexagons)."),
    ] = False,
) -> None:
    """Show a template's tasks and dependencies."""

    async def show() -> int:
        template = load_template(name, ROLES)
        if as_mermaid:
            print(mermaid(template.tasks), end="")
            return 0
        console.print(f"[bold]{template.name}[/bold]: {template.description.strip()}")
        for task in template.tasks:
            extras = [f"after {', '.join(task.depends_on)}" if task.depends_on else "first"]
            if task.gate:
                extras.append(f"gate {task.gate}")
            if task.when:
                extras.append(f"when {task.when}")
            console.print(f"  {task.id:<16} {task.role:<18} {' · '.join(extras)}", highlight=False)
        return 0

    run_command(show())


@app.command("validate")
def templates_validate(
    file: Annotated[str, typer.Argument(help="YAML template file.")],
) -> None:
    """Validate a template file and name every problem."""

    async def check() -> int:
        template = load_template(file, ROLES)
        console.print(f"{file}: valid ({len(template.tasks)} tasks)")
        return 0

    run_command(check())
