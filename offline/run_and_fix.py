"""The offline backend engineer uses its hands: it writes the service and its tests with the
editor, runs the tests in the sandbox, reads the failure, fixes it with an exact-string edit
and runs the tests again, until they pass.

It plays this only when the request offers both the editor and the command tool; without
them the backend engineer writes its files with `write_file` and ends (`offline.delivery`).
Each turn is decided by what came back from the last one, read from the tool results, so
the same results always get the same answer.
"""

from __future__ import annotations

import dataclasses

from agents.commands import COMMAND_TOOL
from agents.context import parse_review_request
from agents.editor import EDIT_TOOL
from agents.protocol import ContentBlock, ToolResultBlock, ToolUseBlock
from offline.delivery import Call, delivery_turn, role_deliverable, write_turn
from offline.pytest_report import Edit, PytestRun, read_test_run, status_edit
from offline.turn import Conversation, Turn, tool_calls

ROLE = "backend_engineer"
APP = "backend/app.py"
TEST_COMMAND = "cd backend && python -m pytest -q -p no:cacheprovider"
MAX_TEST_RUNS = 3
"""Runs of the tests one conversation makes at most: the draft's, then one per fix."""

# The first draft has one deliberate defect, so that the engineer's own tests have
# something to catch and the loop shows: the delete route answers 200 OK where its test
# (`test_delete_removes_the_record`) expects 204 No Content. The rest of the draft is the
# deliverable as `offline.backend` writes it, and the fix restores exactly that.
_CORRECT = "return Response(status_code=status.HTTP_204_NO_CONTENT)"
_DEFECT = "return Response(status_code=status.HTTP_200_OK)"


def run_tests_and_fix(conversation: Conversation) -> Turn | None:
    if not _has_hands(conversation):
        return None
    if conversation.turn == delivery_turn(conversation):
        return Turn(_draft(conversation), "tool_use")
    latest, results = conversation.latest_calls(), conversation.results()
    edits = [call for call in latest if call.name == EDIT_TOOL]
    if any(call.id not in results or results[call.id].is_error for call in edits):
        return None  # an edit went wrong: the closing report says which
    test_run = next((call for call in latest if _is_test_run(call)), None)
    if test_run is None:
        if edits and _test_runs(conversation) < MAX_TEST_RUNS:
            return Turn(_run_tests(conversation), "tool_use")
        return None
    result = results.get(test_run.id)
    return _fix(conversation, result) if result is not None else None


def _has_hands(conversation: Conversation) -> bool:
    return (
        conversation.role == ROLE
        and conversation.offers(EDIT_TOOL)
        and conversation.offers(COMMAND_TOOL)
        and parse_review_request(conversation.task_message) is None
    )


def create_call(path: str, content: str) -> Call:
    return (EDIT_TOOL, {"command": "create", "path": path, "file_text": content})


def _draft(conversation: Conversation) -> list[ContentBlock]:
    made = role_deliverable(conversation)
    files = dict(made.files)
    if files.get(APP, "").count(_CORRECT) == 1:
        files[APP] = files[APP].replace(_CORRECT, _DEFECT)
    draft = dataclasses.replace(made, files=files)
    return write_turn(conversation, draft, create_call, then=", then running the tests")


def _is_test_run(call: ToolUseBlock) -> bool:
    return call.name == COMMAND_TOOL and call.input.get("command") == TEST_COMMAND


def _test_runs(conversation: Conversation) -> int:
    return sum(_is_test_run(call) for call in conversation.calls())


def _run_tests(conversation: Conversation) -> list[ContentBlock]:
    calls: list[Call] = [(COMMAND_TOOL, {"command": TEST_COMMAND})]
    pause = conversation.command_pause_seconds
    if pause > 0:
        calls.append((COMMAND_TOOL, {"command": f"sleep {pause:g}"}))
    again = "running the tests again" if _test_runs(conversation) else "running the tests"
    return [conversation.says(f"{again}: `{TEST_COMMAND}`."), *tool_calls(conversation, *calls)]


def _fix(conversation: Conversation, result: ToolResultBlock) -> Turn | None:
    """The edit the test run calls for; None when it passed, or nothing can be placed."""
    run = read_test_run(result.content)
    source = _written_text(conversation, APP)
    if run.exit_code == 0 or source is None:
        return None
    found = _desk_check(source, result) if run.exit_code is None else _from_failures(source, run)
    if found is None:
        return None
    edit, reading = found
    replace = {
        "command": "str_replace",
        "path": edit.path,
        "old_str": edit.old,
        "new_str": edit.new,
    }
    said = conversation.says(
        f"{reading}: {edit.why}. Fixing {edit.path} with an exact-string edit."
    )
    return Turn([said, *tool_calls(conversation, (EDIT_TOOL, replace))], "tool_use")


def _from_failures(source: str, run: PytestRun) -> tuple[Edit, str] | None:
    for failure in run.failures:
        edit = status_edit(APP, source, failure)
        if edit is not None:
            tally = run.tally or "the tests failed"
            return edit, f"{tally}; {failure.test} failed with `{failure.assertion}`"
    return None


def _desk_check(source: str, result: ToolResultBlock) -> tuple[Edit, str] | None:
    """The tests could not run (no sandbox on the worker, the time for commands spent): the
    engineer reads its code instead, and corrects the one defect it knows it left."""
    if source.count(_DEFECT) != 1:
        return None
    said = result.content.strip().splitlines()[0] if result.content.strip() else "no output"
    why = "the delete route answers 200 where it should answer 204 (No Content)"
    return Edit(APP, _DEFECT, _CORRECT, why), f"the tests could not run ({said}); reading the code"


def _written_text(conversation: Conversation, path: str) -> str | None:
    """`path` as the agent's own successful edits left it, in the order it made them."""
    results = conversation.results()
    text: str | None = None
    for call in conversation.calls():
        result = results.get(call.id)
        if call.name != EDIT_TOOL or call.input.get("path") != path or result is None:
            continue
        if result.is_error:
            continue
        if call.input.get("command") == "create":
            text = str(call.input.get("file_text", ""))
        elif call.input.get("command") == "str_replace" and text is not None:
            text = text.replace(str(call.input["old_str"]), str(call.input.get("new_str", "")), 1)
    return text
