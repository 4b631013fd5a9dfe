"""What the repository map knows about a repository: files, their symbols and imports.

Stored once per snapshot as JSON (`agents.repomap.outline_json`) and rendered per task by
`agents.repomap.render_map`; the parsers that fill it live in `agents.repomap_parse`.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel

SymbolKind = Literal["class", "function", "method"]

LANGUAGES = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".md": "markdown",
    ".rst": "rst",
    ".txt": "text",
    ".json": "json",
    ".toml": "toml",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".ini": "ini",
    ".cfg": "ini",
    ".html": "html",
    ".css": "css",
    ".sql": "sql",
    ".sh": "shell",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".rb": "ruby",
    ".c": "c",
    ".h": "c",
    ".cpp": "cpp",
}
FILE_NAMES = {"Makefile": "make", "Dockerfile": "dockerfile"}


class Symbol(BaseModel):
    """A class or function of a file, with what a caller needs to use it."""

    kind: SymbolKind
    name: str
    signature: str
    """As written, e.g. `def create_task(title: str, done: bool = False) -> Task`."""
    line: int
    doc: str = ""
    """The first line of its docstring (JSDoc in JavaScript), or ""."""
    decorators: list[str] = []
    """Without the `@`, e.g. `router.post('/login')`."""
    members: list[Symbol] = []
    """A class's methods and nested classes."""


class FileOutline(BaseModel):
    path: str
    language: str
    lines: int
    symbols: list[Symbol] = []
    imports: list[str] = []
    """Module names it imports (Python: absolute dotted names; JavaScript: the specifiers)."""


class RepoOutline(BaseModel):
    files: list[FileOutline] = []


def language_of(path: str) -> str:
    """Guessed from the suffix (or a well-known file name); "text" when unknown."""
    name = PurePosixPath(path).name
    if name in FILE_NAMES:
        return FILE_NAMES[name]
    return LANGUAGES.get(PurePosixPath(path).suffix.lower(), "text")


def python_module(path: str) -> str:
    """The dotted module a Python file is imported as (`src/` layouts included)."""
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if parts[:1] == ["src"] and len(parts) > 1:
        parts = parts[1:]
    if parts[-1:] == ["__init__"]:
        parts = parts[:-1]
    return ".".join(parts)
