"""Workspace tools the agents call, as the model sees them and as they run.

The workspace itself is storage (`core.storage`); this module only translates a
tool call into workspace operations and back into a tool result.
"""

from __future__ import annotations

import posixpath
from typing import Any, Protocol

from agents.protocol import ToolDefinition

TOOL_DEFINITIONS: dict[str, ToolDefinition] = {
    tool.name: tool
    for tool in (
        ToolDefinition(
            name="write_file",
            description="Create or overwrite a file in the run's workspace (the delivered repository).",
            input_schema={
                "type": "object",
                "properties": {
                    "path": {
                        "type": "string",
                        "description": "Relative POSIX path, e.g. backend/app.py",
                    },
                    "content": {"type": "string", "description": "Full file content"},
                },
                "required": ["path", "content"],
            },
        ),
        ToolDefinition(
            name="read_file",
            description="Read a file from the run's workspace.",
            input_schema={
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        ),
        ToolDefinition(
            name="list_files",
            description="List the files in the run's workspace, optionally under a folder.",
            input_schema={
                "type": "object",
                "properties": {"prefix": {"type": "string", "description": "Folder, e.g. docs/"}},
            },
        ),
        ToolDefinition(
            name="set_outputs",
            description=(
                "Record named decisions (booleans, numbers, short strings) that later tasks "
                'can branch on, e.g. {"needs_data_science": false}.'
            ),
            input_schema={
                "type": "object",
                "properties": {"outputs": {"type": "object"}},
                "required": ["outputs"],
            },
        ),
    )
}


class ToolInputError(ValueError):
    """A tool call the agent got wrong; it goes back to the model as an error result."""


def normalize_path(path: Any) -> str:
    """A safe relative POSIX path inside the workspace, or ToolInputError."""
    if not isinstance(path, str) or not path.strip():
        raise ToolInputError("path must be a non-empty string")
    cleaned = posixpath.normpath(path.strip().replace("\\", "/")).lstrip("/")
    if cleaned in ("", ".") or cleaned.startswith("..") or "/../" in f"/{cleaned}/":
        raise ToolInputError(f"path {path!r} leaves the workspace")
    return cleaned


class Workspace(Protocol):
    async def write(self, path: str, content: str) -> str: ...
    async def read(self, path: str) -> str | None: ...
    async def list(self, prefix: str) -> list[str]: ...
