"""The file editor tool: view with line ranges, exact-string replace, insert at a line, create.

Its semantics and results are those of Anthropic's text editor tool
(`text_editor_20250728`, named `str_replace_based_edit_tool`): Claude models are trained on
it, and on Anthropic it costs no schema tokens. Other providers get the same tool as a JSON
schema. An edit changes one file of the run's workspace, which keeps every version.
"""

from __future__ import annotations

from typing import Any

from agents.protocol import ToolDefinition
from agents.tool_kit import ToolInputError, ToolOutcome, Workspace, normalize_path

EDIT_TOOL = "str_replace_based_edit_tool"
MAX_VIEW_CHARACTERS = 40_000
"""What one `view` shows at most (the tool's `max_characters`); view a range for the rest."""

EDIT_TOOL_DEFINITION = ToolDefinition(
    name=EDIT_TOOL,
    native_type="text_editor_20250728",
    native_options={"max_characters": MAX_VIEW_CHARACTERS},
    description=(
        "View, create and edit files of the run's workspace (paths relative to the "
        "repository root, e.g. backend/app.py). `view` shows a file with line numbers "
        "(`view_range` [start, end], end -1 for the last line) or lists a folder; "
        "`str_replace` replaces `old_str`, which must match exactly once, with `new_str`; "
        "`insert` puts `new_str` after line `insert_line` (0: at the top); `create` writes "
        "`file_text` as the whole file."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "command": {"type": "string", "enum": ["view", "str_replace", "insert", "create"]},
            "path": {"type": "string"},
            "view_range": {
                "type": "array",
                "items": {"type": "integer"},
                "minItems": 2,
                "maxItems": 2,
            },
            "old_str": {"type": "string"},
            "new_str": {"type": "string"},
            "insert_line": {"type": "integer", "minimum": 0},
            "file_text": {"type": "string"},
        },
        "required": ["command", "path"],
    },
)


async def edit(workspace: Workspace, args: dict[str, Any]) -> ToolOutcome:
    """Run one editor command; the agent's mistakes come back as error results."""
    command = args.get("command")
    if command == "view":
        return await _view(workspace, args)
    path = normalize_path(args.get("path"))
    if command == "create":
        return await _create(workspace, path, args)
    text = await _existing(workspace, path)
    if command == "str_replace":
        return await _str_replace(workspace, path, text, args)
    if command == "insert":
        return await _insert(workspace, path, text, args)
    raise ToolInputError(
        f"Error: unknown command {command!r}; use view, str_replace, insert or create"
    )


async def _existing(workspace: Workspace, path: str) -> str:
    text = await workspace.read(path)
    if text is None:
        raise ToolInputError(f"Error: File not found: {path}")
    return text


async def _view(workspace: Workspace, args: dict[str, Any]) -> ToolOutcome:
    raw = args.get("path")
    folder = isinstance(raw, str) and raw.strip().strip("/") in ("", ".")
    path = "" if folder else normalize_path(raw)
    text = None if folder else await workspace.read(path)
    if text is None:
        prefix = f"{path}/" if path else ""
        files = await workspace.list(prefix)
        if not files:
            raise ToolInputError(f"Error: File not found: {path or '.'}")
        listing = "\n".join(name for name, _ in files)
        return ToolOutcome(content=_capped(f"Files under {path or '.'}:\n{listing}"))
    lines = text.splitlines()
    first, last = _view_range(args.get("view_range"), len(lines))
    numbered = "\n".join(f"{n}: {lines[n - 1]}" for n in range(first, last + 1))
    return ToolOutcome(content=_capped(numbered))


def _view_range(value: Any, count: int) -> tuple[int, int]:
    if value is None:
        return 1, count
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in value)
    ):
        raise ToolInputError("Error: view_range must be two line numbers, [start, end]")
    first, last = value
    last = count if last == -1 else last
    if not 1 <= first <= max(count, 1) or not first <= last <= count:
        raise ToolInputError(
            f"Error: Invalid view_range {value}: the file has {count} lines "
            "(lines count from 1; end -1 means the last line)"
        )
    return first, last


def _capped(text: str) -> str:
    if len(text) <= MAX_VIEW_CHARACTERS:
        return text
    hidden = len(text) - MAX_VIEW_CHARACTERS
    return (
        text[:MAX_VIEW_CHARACTERS]
        + f"\n[... {hidden} more characters: view a line range to see them ...]"
    )


async def _create(workspace: Workspace, path: str, args: dict[str, Any]) -> ToolOutcome:
    text = args.get("file_text")
    if not isinstance(text, str):
        raise ToolInputError("Error: create needs `file_text` as a string")
    _check_text(text)
    existed = await workspace.read(path) is not None
    ref = await workspace.write(path, text)
    done = "File overwritten" if existed else "File created successfully"
    return ToolOutcome(content=f"{done}: {path}", written=[ref])


async def _str_replace(
    workspace: Workspace, path: str, text: str, args: dict[str, Any]
) -> ToolOutcome:
    old, new = args.get("old_str"), args.get("new_str", "")
    if not isinstance(old, str) or not old:
        raise ToolInputError("Error: str_replace needs `old_str`, the exact text to replace")
    if not isinstance(new, str):
        raise ToolInputError("Error: `new_str` must be a string")
    _check_text(new)
    matches = text.count(old)
    if matches == 0:
        raise ToolInputError(
            "Error: No match found for replacement. Please check your text and try again."
        )
    if matches > 1:
        raise ToolInputError(
            f"Error: Found {matches} matches for replacement text. Please provide more "
            "context to make a unique match."
        )
    ref = await workspace.write(path, text.replace(old, new, 1))
    return ToolOutcome(content="Successfully replaced text at exactly one location.", written=[ref])


async def _insert(workspace: Workspace, path: str, text: str, args: dict[str, Any]) -> ToolOutcome:
    line, new = args.get("insert_line"), args.get("new_str")
    if not isinstance(new, str):
        raise ToolInputError("Error: insert needs `new_str`, the text to insert")
    _check_text(new)
    lines = text.splitlines(keepends=True)
    if not isinstance(line, int) or isinstance(line, bool) or not 0 <= line <= len(lines):
        raise ToolInputError(
            f"Error: insert_line must be a line number from 0 to {len(lines)} (0: at the top)"
        )
    if lines and not lines[-1].endswith("\n") and line == len(lines):
        lines[-1] += "\n"
    block = new if new.endswith("\n") else new + "\n"
    ref = await workspace.write(path, "".join([*lines[:line], block, *lines[line:]]))
    return ToolOutcome(content=f"Successfully inserted text after line {line}.", written=[ref])


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise ToolInputError("Error: the text has a NUL character; the workspace holds text files")
