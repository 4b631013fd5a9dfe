"""The offline backend engineer's loop, turn by turn, from the tool results it is given: what
it writes, what it runs, what it reads in the output and the edit it makes of it.

The whole loop through the real sandbox and ledger is tests/workflows/test_offline_engineer.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from agents.commands import COMMAND_TOOL
from agents.context import build_task_message
from agents.editor import EDIT_TOOL
from agents.protocol import (
    Message,
    ModelRequest,
    ModelResponse,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from agents.roles import ROLES
from agents.tools import TOOL_DEFINITIONS
from offline import OFFLINE_MODEL, OfflineProvider
from offline.pytest_report import Failure, read_test_run, status_edit
from offline.run_and_fix import TEST_COMMAND

GOAL = "Build a bookstore inventory service"
ENGINEER_TOOLS = ROLES["backend_engineer"].tools
WRITE_ONLY = tuple(t for t in ENGINEER_TOOLS if t not in (EDIT_TOOL, COMMAND_TOOL))

# What the sandbox gave back for the draft's test run (pytest -q, then the exit code line).
FAILED_RUN = """\
.....F...                                                                [100%]
=================================== FAILURES ===================================
________________________ test_delete_removes_the_record ________________________

client = <starlette.testclient.TestClient object at 0x7f4e12586290>

    def test_delete_removes_the_record(client: TestClient, headers: dict[str, str]) -> None:
        created = create(client, headers)
        url = f"{ROUTE}/{created['id']}"
>       assert client.delete(url, headers=headers).status_code == 204
E       AssertionError: assert 200 == 204
E        +  where 200 = <Response [200 OK]>.status_code

tests/test_app.py:102: AssertionError
=========================== short test summary info ============================
FAILED tests/test_app.py::test_delete_removes_the_record - AssertionError: as...
1 failed, 8 passed in 2.04s
[exit code 1]"""
PASSED_RUN = """\
.........                                                                [100%]
9 passed in 1.91s
[exit code 0]"""
NO_SANDBOX = "Error: no sandbox on this worker: neither bubblewrap nor unshare works here"


def request(tools: tuple[str, ...], messages: list[Message]) -> ModelRequest:
    return ModelRequest(
        model=OFFLINE_MODEL,
        system="You are an agent.",
        messages=messages,
        role="backend_engineer",
        tools=[TOOL_DEFINITIONS[name] for name in tools],
    )


def first_message() -> Message:
    text = build_task_message(
        goal=GOAL, task_id="backend", role="backend_engineer", description="d", upstream=[]
    )
    return Message(role="user", content=[TextBlock(text=text)])


def editor(call: ToolUseBlock) -> str:
    if call.input["command"] == "create":
        return f"File created successfully: {call.input['path']}"
    return "Successfully replaced text at exactly one location."


def converse(
    answer_command: Callable[[int, ToolUseBlock], str],
    *,
    tools: tuple[str, ...] = ENGINEER_TOOLS,
    provider: OfflineProvider | None = None,
) -> list[ModelResponse]:
    """The engineer's answers until it ends its turn; `answer_command(n, call)` is what the
    n-th command (from 0) gives back, every other call succeeds."""
    provider = provider or OfflineProvider()
    messages, commands = [first_message()], 0
    answers: list[ModelResponse] = []
    while len(answers) < 10:
        answer = asyncio.run(provider.complete(request(tools, messages)))
        answers.append(answer)
        if answer.stop_reason != "tool_use":
            return answers
        results = []
        for call in answer.tool_uses:
            if call.name == COMMAND_TOOL:
                content, commands = answer_command(commands, call), commands + 1
            else:
                content = editor(call) if call.name == EDIT_TOOL else "ok"
            results.append(ToolResultBlock(tool_use_id=call.id, content=content))
        messages += [
            Message(role="assistant", content=answer.content),
            Message(role="user", content=results),
        ]
    raise AssertionError("the engineer never ended its turn")


def first_fails(n: int, call: ToolUseBlock) -> str:
    return FAILED_RUN if n == 0 else PASSED_RUN


THE_LOOP = [["create"] * 5, [COMMAND_TOOL], ["str_replace"], [COMMAND_TOOL], ["end"]]
"""Write, run (it fails), fix, run again (it passes), end."""


def steps(answer: ModelResponse) -> list[str]:
    return [
        str(c.input["command"]) if c.name == EDIT_TOOL else c.name for c in answer.tool_uses
    ] or ["end"]


def test_it_writes_runs_reads_the_failure_fixes_and_reruns() -> None:
    answers = converse(first_fails)

    assert [steps(a) for a in answers] == THE_LOOP
    draft = {c.input["path"]: c.input["file_text"] for c in answers[0].tool_uses}
    assert "return Response(status_code=status.HTTP_200_OK)" in draft["backend/app.py"]
    assert answers[1].tool_uses[0].input == {"command": TEST_COMMAND}
    assert answers[2].tool_uses[0].input == {
        "command": "str_replace",
        "path": "backend/app.py",
        "old_str": "    return Response(status_code=status.HTTP_200_OK)",
        "new_str": "    return Response(status_code=status.HTTP_204_NO_CONTENT)",
    }
    said = answers[2].text
    assert "1 failed, 8 passed; test_delete_removes_the_record failed" in said
    assert "`assert 200 == 204`" in said and "the delete route answers 200" in said
    assert "(exit 1, 1 failed, 8 passed); then" in answers[-1].text
    assert answers[-1].text.endswith("(exit 0, 9 passed).")
    ids = [c.id for a in answers for c in a.tool_uses]
    assert len(set(ids)) == len(ids)


def test_the_fixed_draft_is_the_deliverable_it_writes_without_the_loop() -> None:
    [written, _] = converse(first_fails, tools=WRITE_ONLY)
    assert [c.name for c in written.tool_uses] == ["write_file"] * 5
    delivered = {c.input["path"]: c.input["content"] for c in written.tool_uses}

    answers = converse(first_fails)
    files = {c.input["path"]: c.input["file_text"] for c in answers[0].tool_uses}
    fix = answers[2].tool_uses[0].input
    files[fix["path"]] = files[fix["path"]].replace(fix["old_str"], fix["new_str"], 1)
    assert files == delivered


@pytest.mark.parametrize("missing", [EDIT_TOOL, COMMAND_TOOL])
def test_without_both_tools_it_writes_files_as_before(missing: str) -> None:
    tools = tuple(t for t in ENGINEER_TOOLS if t != missing)
    answers = converse(first_fails, tools=tools)
    assert [steps(a) for a in answers] == [["write_file"] * 5, ["end"]]


def test_same_results_same_answers() -> None:
    first = [a.model_dump() for a in converse(first_fails)]
    second = [a.model_dump() for a in converse(first_fails)]
    assert first == second


def test_a_failure_it_cannot_place_is_reported_not_guessed() -> None:
    broken = "E   ModuleNotFoundError: No module named 'fastapi'\n1 error in 0.31s\n[exit code 2]"
    answers = converse(lambda n, call: broken)
    assert [steps(a) for a in answers] == [["create"] * 5, [COMMAND_TOOL], ["end"]]
    assert f"Ran `{TEST_COMMAND}` (exit 2, 1 error)." in answers[-1].text


def test_when_the_tests_cannot_run_it_checks_its_code_by_reading_it() -> None:
    answers = converse(lambda n, call: NO_SANDBOX if n == 0 else PASSED_RUN)
    assert [steps(a) for a in answers] == THE_LOOP
    assert f"the tests could not run ({NO_SANDBOX}); reading the code" in answers[2].text
    assert answers[2].tool_uses[0].input["new_str"].endswith("HTTP_204_NO_CONTENT)")


def test_a_failure_its_fix_did_not_clear_is_reported_not_fixed_again() -> None:
    answers = converse(lambda n, call: FAILED_RUN)
    assert [steps(a) for a in answers] == THE_LOOP
    assert "(exit 1, 1 failed, 8 passed); then" in answers[-1].text


def with_sleeps(n: int, call: ToolUseBlock) -> str:
    """The first test run fails, the next passes; every `sleep` ends well."""
    if str(call.input["command"]).startswith("sleep "):
        return "[exit code 0]"
    return FAILED_RUN if n == 0 else PASSED_RUN


def test_the_pause_is_a_command_of_its_own_after_each_test_run() -> None:
    answers = converse(with_sleeps, provider=OfflineProvider(command_pause_seconds=2.5))
    commands = [[c.input.get("command") for c in a.tool_uses] for a in answers]
    assert commands[1] == commands[3] == [TEST_COMMAND, "sleep 2.5"]
    assert steps(answers[2]) == ["str_replace"]  # read from the test run, not from the sleep
    assert steps(answers[4]) == ["end"]


def test_reading_a_run() -> None:
    run = read_test_run(FAILED_RUN)
    assert (run.exit_code, run.tally) == (1, "1 failed, 8 passed")
    assert run.failures == (
        Failure("tests/test_app.py", "test_delete_removes_the_record", "200", "204"),
    )
    assert read_test_run(NO_SANDBOX).exit_code is None
    assert read_test_run(PASSED_RUN).failures == ()


def test_a_status_edit_goes_where_the_route_names_the_wrong_status() -> None:
    source = (
        "@router.put('/items/{item_id}')\n"
        "def update_item(item_id: int) -> Response:\n"
        "    if item_id < 0:\n"
        "        return Response(status_code=status.HTTP_201_CREATED)\n"
        "    return Response(status_code=status.HTTP_201_CREATED)\n"
        "\n\n"
        "def create_item() -> Response:\n"
        "    return Response(status_code=status.HTTP_201_CREATED)\n"
    )
    update = Failure("tests/test_app.py", "test_update_replaces_the_record", "201", "200")
    # twice in the update route: it cannot tell which, so it does not guess
    assert status_edit("app.py", source, update) is None
    once = source.replace(
        "    if item_id < 0:\n        return Response(status_code=status.HTTP_201_CREATED)\n", ""
    )
    edit = status_edit("app.py", once, update)
    assert edit is not None and once.count(edit.old) == 1
    assert edit.new == edit.old.replace("HTTP_201_CREATED", "HTTP_200_OK")
    assert "def update_item" in edit.old  # widened until it names one place
    assert status_edit("app.py", once, Failure("t.py", "test_listing", "201", "200")) is None
    assert status_edit("app.py", once, Failure("t.py", "test_update_x", "abc", "200")) is None
