"""The file editor tool on a real workspace: Anthropic's text editor semantics and results."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from agents.editor import EDIT_TOOL, MAX_VIEW_CHARACTERS
from agents.tool_kit import ToolOutcome
from core.contracts import TurnKey
from core.persistence import storage
from core.persistence.db import Database
from tests.helpers import agent_tools

KEY = TurnKey(run_id="r1", workflow_id="run-r1", task_id="backend", turn=0)
APP = "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n"

Edit = Callable[..., Awaitable[ToolOutcome]]


@pytest.fixture
async def edit(sqlite_db: Database) -> AsyncIterator[Edit]:
    await storage.write_artifact(
        sqlite_db, KEY.model_copy(update={"task_id": "seed"}), path="backend/app.py",
        content=APP, role="backend_engineer", model="m",
    )  # fmt: skip
    async with storage.turn_workspace(sqlite_db, KEY, role="backend_engineer", model="m") as ws:
        tool = agent_tools(ws, "backend_engineer")

        async def call(**args: Any) -> ToolOutcome:
            return await tool(EDIT_TOOL, args)

        yield call


async def test_view_numbers_the_lines_and_honours_a_range(edit: Edit) -> None:
    whole = await edit(command="view", path="backend/app.py")
    assert whole.content.splitlines()[:2] == ["1: def add(a, b):", "2:     return a - b"]
    part = await edit(command="view", path="backend/app.py", view_range=[5, -1])
    assert part.content == "5: def sub(a, b):\n6:     return a - b"
    bad = await edit(command="view", path="backend/app.py", view_range=[7, 9])
    assert bad.is_error and "the file has 6 lines" in bad.content


async def test_view_of_a_folder_lists_its_files(edit: Edit) -> None:
    listed = await edit(command="view", path="backend")
    assert listed.content == "Files under backend:\nbackend/app.py"
    missing = await edit(command="view", path="nowhere/x.py")
    assert missing.is_error and missing.content == "Error: File not found: nowhere/x.py"


async def test_str_replace_needs_exactly_one_match(edit: Edit) -> None:
    twice = await edit(command="str_replace", path="backend/app.py", old_str="return a - b")
    assert twice.is_error and twice.content == (
        "Error: Found 2 matches for replacement text. Please provide more context to make a "
        "unique match."
    )
    none = await edit(command="str_replace", path="backend/app.py", old_str="return a * b")
    assert none.is_error and "No match found for replacement" in none.content

    fixed = await edit(
        command="str_replace",
        path="backend/app.py",
        old_str="def add(a, b):\n    return a - b",
        new_str="def add(a, b):\n    return a + b",
    )
    assert fixed.content == "Successfully replaced text at exactly one location."
    view = await edit(command="view", path="backend/app.py", view_range=[2, 2])
    assert view.content == "2:     return a + b"


async def test_two_edits_of_one_file_in_one_turn_keep_both(edit: Edit) -> None:
    first = await edit(
        command="insert", path="backend/app.py", insert_line=0, new_str="import math"
    )
    second = await edit(
        command="str_replace", path="backend/app.py", old_str="def sub", new_str="def minus"
    )
    assert first.content == "Successfully inserted text after line 0."
    assert [ref.version for ref in first.written + second.written] == [2, 2]
    text = (await edit(command="view", path="backend/app.py")).content
    assert text.startswith("1: import math\n2: def add") and "def minus" in text


async def test_insert_is_bounded_by_the_file(edit: Edit) -> None:
    past = await edit(command="insert", path="backend/app.py", insert_line=99, new_str="x = 1")
    assert past.is_error and "from 0 to 6" in past.content
    end = await edit(command="insert", path="backend/app.py", insert_line=6, new_str="# end")
    assert not end.is_error
    tail = await edit(command="view", path="backend/app.py", view_range=[7, 7])
    assert tail.content == "7: # end"


async def test_create_writes_a_whole_file_and_refuses_binary_text(edit: Edit) -> None:
    made = await edit(command="create", path="backend/util.py", file_text="X = 1\n")
    assert made.content == "File created successfully: backend/util.py"
    again = await edit(command="create", path="backend/util.py", file_text="X = 2\n")
    assert again.content == "File overwritten: backend/util.py"
    nul = await edit(command="create", path="backend/bin.dat", file_text="a\x00b")
    assert nul.is_error
    escape = await edit(command="create", path="../etc/passwd", file_text="x")
    assert escape.is_error and "leaves the workspace" in escape.content


async def test_a_long_view_is_cut_at_max_characters(edit: Edit) -> None:
    big = "\n".join(f"line {n}" for n in range(20_000))
    await edit(command="create", path="big.txt", file_text=big)
    shown = await edit(command="view", path="big.txt")
    assert len(shown.content) < MAX_VIEW_CHARACTERS + 200
    assert "more characters: view a line range to see them" in shown.content


async def test_roles_without_the_editor_are_refused(sqlite_db: Database) -> None:
    async with storage.turn_workspace(sqlite_db, KEY, role="validator", model="m") as ws:
        refused = await agent_tools(ws, "validator")(EDIT_TOOL, {"command": "view", "path": "."})
    assert refused.refused and refused.is_error
