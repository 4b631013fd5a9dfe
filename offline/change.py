"""The offline model carries a change through an existing repository, deterministically.

It plays a change run (a task message with a repository map) like an engineer would: the
analyst and the tech lead read the map and write their notes under `.orchestrator/`; the
engineer picks the most relevant source file with a function from the map, views it, adds a
module and its test, edits that function (exact-string edit), and runs the repository's own
test command. Reviewers are left to the other plays. The same map and goal always give the
same change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from agents.commands import COMMAND_TOOL
from agents.context import REPOSITORY_TAG, TEST_COMMAND_LINE, parse_goal, parse_review_request
from agents.editor import EDIT_TOOL
from offline.delivery import Call
from offline.report import report
from offline.turn import Conversation, Turn, tool_calls

NOTES_DIR = ".orchestrator"
_MAP = re.compile(rf"<{REPOSITORY_TAG}>\n(.*?)\n</{REPOSITORY_TAG}>", re.S)
_OUTLINE = re.compile(r"^### (\S+\.py) \(python, \d+ lines\)$")
_TOP_FUNCTION = re.compile(r"^(?:async )?def (\w+)\(.*# L(\d+)")
_TEST_COMMAND = re.compile(rf"^{re.escape(TEST_COMMAND_LINE)}`(.+)`$", re.M)
_STOP = {"a", "an", "the", "to", "of", "and", "for", "with", "in", "on", "our", "that", "it"}


@dataclass(frozen=True)
class Target:
    """Where the change lands: the file and the function it edits, and what it adds."""

    path: str
    function: str
    line: int
    module: str
    test: str
    import_path: str
    name: str


def change_the_repository(conversation: Conversation) -> Turn | None:
    """The change run's turns; None for calls that are not a change run's, or are done."""
    repo_map = _repository_map(conversation.task_message)
    if repo_map is None or parse_review_request(conversation.task_message) is not None:
        return None
    target = choose_target(repo_map, parse_goal(conversation.task_message))
    hands = conversation.offers(EDIT_TOOL) and conversation.offers(COMMAND_TOOL)
    if not hands:
        return _notes(conversation, target) if conversation.turn == 0 else None
    if target is None:
        return report(conversation)  # nothing to change: say so, never build greenfield
    if conversation.turn == 0:
        view = (EDIT_TOOL, {"command": "view", "path": target.path})
        said = conversation.says(f"reading {target.path}, the most relevant file in the map.")
        return Turn([said, *tool_calls(conversation, view)], "tool_use")
    if conversation.turn == 1:
        return _edit(conversation, target, repo_map)
    # Done: the closing report, never another play's greenfield work.
    return report(conversation)


def _repository_map(task_message: str) -> str | None:
    found = _MAP.search(task_message)
    return found.group(1) if found else None


def choose_target(repo_map: str, goal: str) -> Target | None:
    """The first file of the ranked outlines that is not a test and has a top-level function."""
    current: str | None = None
    for line in repo_map.splitlines():
        header = _OUTLINE.match(line)
        if header:
            current = header.group(1)
            continue
        function = _TOP_FUNCTION.match(line)
        if current is None or function is None or _is_test(current):
            continue
        return _target(current, function.group(1), int(function.group(2)), goal, repo_map)
    return None


def _is_test(path: str) -> bool:
    name = PurePosixPath(path).name
    return name.startswith("test_") or name.endswith("_test.py") or "tests" in path.split("/")


def _target(path: str, function: str, line: int, goal: str, repo_map: str) -> Target:
    name = goal_slug(goal)
    folder = PurePosixPath(path).parent
    module = (folder / f"{name}.py").as_posix()
    package = ".".join(folder.parts)
    import_path = f"{package}.{name}" if package else name
    tests = "tests/" if re.search(r"^tests/$", repo_map, re.M) else ""
    return Target(path, function, line, module, f"{tests}test_{name}.py", import_path, name)


def goal_slug(goal: str) -> str:
    """A module name from the goal's first words, e.g. `add_percentage_helper`."""
    words = [w for w in re.findall(r"[a-z0-9]+", goal.lower()) if w not in _STOP][:3]
    slug = "_".join(words) or "change"
    return f"change_{slug}" if slug[0].isdigit() else slug


def _notes(conversation: Conversation, target: Target | None) -> Turn:
    task_id = re.search(r'<task id="([^"]+)"', conversation.task_message)
    path = f"{NOTES_DIR}/{task_id.group(1) if task_id else conversation.role}.md"
    goal = parse_goal(conversation.task_message)
    where = (
        f"- edit `{target.function}` in `{target.path}` (line {target.line});\n"
        f"- add `{target.module}` and its test `{target.test}`;\n"
        if target
        else "- no source file with a function was found in the map;\n"
    )
    text = (
        f"# {conversation.role}: {goal}\n\n{where}- run the repository's tests before and after.\n"
    )
    call: Call = ("write_file", {"path": path, "content": text})
    said = conversation.says(f"read the repository map; writing {path}.")
    return Turn([said, *tool_calls(conversation, call)], "tool_use")


def _edit(conversation: Conversation, target: Target, repo_map: str) -> Turn | None:
    """Add the module and its test, edit the function, and run the repository's tests."""
    results = conversation.results()
    viewed = next((results[c.id] for c in conversation.latest_calls() if c.id in results), None)
    if viewed is None or viewed.is_error:
        return None
    goal = parse_goal(conversation.task_message)
    edit = _function_edit(viewed.content, target, goal)
    if edit is None:
        return None
    calls: list[Call] = [
        (
            EDIT_TOOL,
            {"command": "create", "path": target.module, "file_text": _module(goal, target)},
        ),
        (EDIT_TOOL, {"command": "create", "path": target.test, "file_text": _test(goal, target)}),
        (EDIT_TOOL, {"command": "str_replace", "path": target.path, **edit}),
    ]
    command = _TEST_COMMAND.search(repo_map)
    if command:
        calls.append((COMMAND_TOOL, {"command": command.group(1)}))
    said = conversation.says(
        f"adding {target.module} and {target.test}, editing {target.function} in "
        f"{target.path}" + (f", then running `{command.group(1)}`." if command else ".")
    )
    return Turn([said, *tool_calls(conversation, *calls)], "tool_use")


def _function_edit(viewed: str, target: Target, goal: str) -> dict[str, str] | None:
    """A comment at the top of the function's body pointing at the new module."""
    lines = [re.sub(r"^\d+: ", "", line, count=1) for line in viewed.splitlines()]
    index = target.line - 1
    if index + 1 >= len(lines) or not lines[index].rstrip().endswith(":"):
        return None
    head, first = lines[index], lines[index + 1]
    indent = first[: len(first) - len(first.lstrip())] or "    "
    note = f"{indent}# See {target.import_path} for {goal[:60].rstrip()!r}."
    return {"old_str": f"{head}\n{first}", "new_str": f"{head}\n{note}\n{first}"}


def _module(goal: str, target: Target) -> str:
    return (
        f'"""{_doc(goal)}"""\n\nfrom __future__ import annotations\n\n\n'
        f"def {target.name}_summary() -> str:\n"
        f'    """What this change adds, in one line."""\n'
        f"    return {goal!r}\n"
    )


def _test(goal: str, target: Target) -> str:
    return (
        f"from {target.import_path} import {target.name}_summary\n\n\n"
        f"def test_{target.name}_summary_names_the_goal() -> None:\n"
        f"    assert {target.name}_summary() == {goal!r}\n"
    )


def _doc(goal: str) -> str:
    return goal.replace("\\", "\\\\").replace('"""', "'''")
