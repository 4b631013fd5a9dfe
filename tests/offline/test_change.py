"""The offline model's change play decides from the map alone: which file and function it
edits, what it adds, and that a call without a map is not its to answer."""

from __future__ import annotations

from agents.repomap import build_outline, render_map
from offline.change import choose_target, goal_slug

FILES = {
    "calc/__init__.py": "",
    "calc/core.py": "def add(a: int, b: int) -> int:\n    return a + b\n",
    "calc/models.py": "class Total:\n    def value(self) -> int:\n        return 0\n",
    "tests/test_core.py": "def test_add() -> None:\n    assert add(1, 2) == 3\n",
}


def test_the_target_is_the_most_relevant_source_file_with_a_function() -> None:
    repo_map = render_map(build_outline(FILES), "add a percentage to the calculator core", 2000)
    target = choose_target(repo_map, "Add a percentage helper")
    assert target is not None
    assert (target.path, target.function, target.line) == ("calc/core.py", "add", 1)
    assert target.module == "calc/add_percentage_helper.py"
    assert target.test == "tests/test_add_percentage_helper.py"
    assert target.import_path == "calc.add_percentage_helper"


def test_tests_and_classes_alone_are_no_target() -> None:
    only = {k: v for k, v in FILES.items() if k != "calc/core.py"}
    assert choose_target(render_map(build_outline(only), "anything", 2000), "x") is None


def test_the_slug_is_a_module_name_from_the_goals_first_words() -> None:
    assert goal_slug("Add rate limiting to our API") == "add_rate_limiting"
    assert goal_slug("2FA for the login") == "change_2fa_login"
    assert goal_slug("!!!") == "change"
