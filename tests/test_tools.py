"""Workspace tools against a real database: what an agent's tool calls do and refuse."""

from __future__ import annotations

import pytest

from agents.tools import ToolInputError, normalize_path, run_tool
from core import storage
from core.contracts import TurnKey
from core.db import Database

KEY = TurnKey(run_id="r1", workflow_id="run-r1", task_id="backend", turn=0)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("backend/app.py", "backend/app.py"), ("/docs/./a.md", "docs/a.md"), ("a\\b.txt", "a/b.txt")],
)
def test_paths_are_normalized(raw: str, clean: str) -> None:
    assert normalize_path(raw) == clean


@pytest.mark.parametrize("raw", ["", "  ", "..", "../etc/passwd", "a/../../b", ".", 7])
def test_paths_leaving_the_workspace_are_refused(raw: object) -> None:
    with pytest.raises(ToolInputError):
        normalize_path(raw)


async def test_a_turn_of_tool_calls(sqlite_db: Database) -> None:
    async with storage.turn_workspace(sqlite_db, KEY, role="backend_engineer", model="m") as ws:
        wrote = await run_tool(ws, "write_file", {"path": "backend/app.py", "content": "x = 1\n"})
        assert wrote.written is not None and wrote.written.size == 6 and not wrote.is_error
        read = await run_tool(ws, "read_file", {"path": "backend/app.py"})
        assert read.content == "x = 1\n"  # a turn reads its own writes
        listed = await run_tool(ws, "list_files", {"prefix": "backend/"})
        assert listed.content == "backend/app.py (6 bytes)"
        outputs = await run_tool(ws, "set_outputs", {"outputs": {"needs_auth": True}})
        assert outputs.outputs == {"needs_auth": True}

        missing = await run_tool(ws, "read_file", {"path": "nope.txt"})
        escape = await run_tool(ws, "write_file", {"path": "../x", "content": "y"})
        no_content = await run_tool(ws, "write_file", {"path": "a.txt"})
        unknown = await run_tool(ws, "rm_rf", {})
        bad_outputs = await run_tool(ws, "set_outputs", {"outputs": [1]})
    for outcome, message in [
        (missing, "no file 'nope.txt'"),
        (escape, "leaves the workspace"),
        (no_content, "needs 'content'"),
        (unknown, "unknown tool 'rm_rf'"),
        (bad_outputs, "needs 'outputs' as an object"),
    ]:
        assert outcome.is_error and message in outcome.content
    assert [a.path for a in await storage.latest_artifacts(sqlite_db, "r1")] == ["backend/app.py"]
