"""What every agent tool shares: the workspace it acts on, its outcome, the agent's mistakes.

The workspace itself is storage (`core.persistence.storage.RunWorkspace`); tools only
translate a call into workspace operations and back into a tool result.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.contracts import ArtifactRef, CommandRun, NoteDraft, NoteWait


class ToolInputError(ValueError):
    """A tool call the agent got wrong; it goes back to the model as an error result."""


def normalize_path(path: Any) -> str:
    """A safe relative POSIX path inside the workspace, or ToolInputError."""
    if not isinstance(path, str) or not path.strip():
        raise ToolInputError("path must be a non-empty string")
    require_printable("path", path)
    cleaned = posixpath.normpath(path.strip().replace("\\", "/")).lstrip("/")
    if cleaned in ("", ".") or cleaned.startswith("..") or "/../" in f"/{cleaned}/":
        raise ToolInputError(f"path {path!r} leaves the workspace")
    return cleaned


def require_printable(what: str, value: str) -> None:
    # A NUL cannot be stored in PostgreSQL text, and control or invisible characters make
    # paths that look like other paths: the agent hears about it, the database never does.
    if not value.isprintable():
        raise ToolInputError(f"{what} {value!r} contains a control or non-printable character")


class Workspace(Protocol):
    """The run's files as the tools see them (implemented by `core.persistence.storage.RunWorkspace`)."""

    async def write(self, path: str, content: str) -> ArtifactRef: ...
    async def read(self, path: str) -> str | None: ...
    async def list(self, prefix: str) -> list[tuple[str, int]]: ...


MAX_READ_CHARS = 100_000


@dataclass
class ToolOutcome:
    content: str
    is_error: bool = False
    written: list[ArtifactRef] = field(default_factory=list)
    """Files the call created or changed, newest version each."""
    command: CommandRun | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    note: NoteDraft | None = None
    wait: NoteWait | None = None
    refused: bool = False
    """The tool exists but the agent's role was not given it."""
