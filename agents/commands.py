"""The command tool: a shell command run in the sandbox, at the root of the run's workspace.

Its input is that of Anthropic's bash tool (`bash_20250124`: `command`, or `restart`), which
Claude models are trained on; other providers get it as a JSON schema. Every command runs
in a fresh sandbox on the workspace as it stands, so files persist between commands and
shell state (variables, the current folder) does not. It runs where the sandbox is: the
tool-call activity on the checks queue (activities/commands.py).
"""

from __future__ import annotations

from typing import Any

from agents.protocol import ToolDefinition
from agents.tool_kit import ToolInputError

COMMAND_TOOL = "bash"
MAX_COMMAND_CHARS = 10_000
OUTPUT_BUDGET_CHARS = 20_000
"""What the agent reads of one command's output: its head and its tail, the middle marked."""

COMMAND_TOOL_DEFINITION = ToolDefinition(
    name=COMMAND_TOOL,
    native_type="bash_20250124",
    description=(
        "Run a shell command in the sandbox at the root of the run's workspace, e.g. "
        "`cd backend && python -m pytest -q`. No network; only the installed packages. "
        "Each command starts in a fresh shell at the repository root: files persist between "
        "commands, shell state does not. The result has the exit code, stdout and stderr."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "The shell command to run."},
            "restart": {
                "type": "boolean",
                "description": "Restart the shell (every command already gets a fresh one).",
            },
        },
    },
)


def command_of(args: dict[str, Any]) -> str | None:
    """The command to run; None for `restart`, which has nothing to reset here."""
    if args.get("restart") is True and not args.get("command"):
        return None
    command = args.get("command")
    if not isinstance(command, str) or not command.strip():
        raise ToolInputError("Error: bash needs `command`, the shell command to run")
    if len(command) > MAX_COMMAND_CHARS or "\x00" in command:
        raise ToolInputError(
            f"Error: the command must be text of at most {MAX_COMMAND_CHARS} characters; "
            "put long scripts in a file and run the file"
        )
    return command


def render_result(
    *,
    exit_code: int | None,
    stdout: str,
    stderr: str,
    limit_reason: str | None,
    changed: list[str],
    not_kept: list[str],
) -> str:
    """The tool result the agent reads: output within the budget, then what happened."""
    parts = []
    if stdout:
        parts.append(clip(stdout, OUTPUT_BUDGET_CHARS * 2 // 3))
    if stderr:
        parts.append("[stderr]\n" + clip(stderr, OUTPUT_BUDGET_CHARS // 3))
    if limit_reason is not None:
        parts.append(f"[the command was stopped: it {limit_reason}]")
    else:
        parts.append(f"[exit code {exit_code}]")
    if changed:
        parts.append("[files kept: " + ", ".join(changed) + "]")
    if not_kept:
        parts.append("[not kept: " + "; ".join(not_kept) + "]")
    return "\n".join(parts)


def clip(text: str, budget: int) -> str:
    """`text` within `budget` characters: its head and tail, with what was cut marked."""
    if len(text) <= budget:
        return text
    half = budget // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n[... {cut} characters elided ...]\n{text[-half:]}"
