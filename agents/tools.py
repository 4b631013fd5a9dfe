"""Workspace tools the agents call, as the model sees them and as they run.

The workspace itself is storage (`core.storage`); this module only translates a
tool call into workspace operations and back into a tool result.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from agents.protocol import ToolDefinition
from core.contracts import VERDICT_OUTPUT, ArtifactRef, ReviewVerdict

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
        ToolDefinition(
            name="submit_verdict",
            description=(
                "Reviewers only: submit your verdict on the work under review, 'pass' or "
                "'block', with every finding (severity high blocks; say file, line and a "
                "suggested fix)."
            ),
            input_schema=ReviewVerdict.model_json_schema(),
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
    """The run's files as the tools see them (implemented by `core.storage.RunWorkspace`)."""

    async def write(self, path: str, content: str) -> ArtifactRef: ...
    async def read(self, path: str) -> str | None: ...
    async def list(self, prefix: str) -> list[tuple[str, int]]: ...


MAX_READ_CHARS = 100_000


@dataclass
class ToolOutcome:
    content: str
    is_error: bool = False
    written: ArtifactRef | None = None
    outputs: dict[str, Any] = field(default_factory=dict)


async def run_tool(workspace: Workspace, name: str, args: dict[str, Any]) -> ToolOutcome:
    """Run one tool call; a mistake of the agent's becomes an error result, not an exception."""
    try:
        return await _dispatch(workspace, name, args)
    except ToolInputError as exc:
        return ToolOutcome(content=str(exc), is_error=True)


async def _dispatch(workspace: Workspace, name: str, args: dict[str, Any]) -> ToolOutcome:
    if name == "write_file":
        path = normalize_path(args.get("path"))
        content = args.get("content")
        if not isinstance(content, str):
            raise ToolInputError("write_file needs 'content' as a string")
        ref = await workspace.write(path, content)
        return ToolOutcome(
            content=f"wrote {path} ({ref.size} bytes, version {ref.version})", written=ref
        )
    if name == "read_file":
        path = normalize_path(args.get("path"))
        text = await workspace.read(path)
        if text is None:
            raise ToolInputError(f"no file {path!r} in the workspace")
        return ToolOutcome(content=text[:MAX_READ_CHARS])
    if name == "list_files":
        files = await workspace.list(str(args.get("prefix") or ""))
        return ToolOutcome(
            content="\n".join(f"{path} ({size} bytes)" for path, size in files) or "(no files)"
        )
    if name == "set_outputs":
        outputs = args.get("outputs")
        if not isinstance(outputs, dict):
            raise ToolInputError("set_outputs needs 'outputs' as an object")
        return ToolOutcome(
            content=f"recorded outputs: {', '.join(sorted(outputs))}", outputs=outputs
        )
    if name == "submit_verdict":
        try:
            verdict = ReviewVerdict.model_validate(args)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ToolInputError(f"submit_verdict: {first['msg']} at {where}") from None
        return ToolOutcome(
            content=f"verdict recorded: {verdict.verdict} with {len(verdict.findings)} findings",
            outputs={VERDICT_OUTPUT: verdict.model_dump(mode="json")},
        )
    raise ToolInputError(f"unknown tool {name!r}")
