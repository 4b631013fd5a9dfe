from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agents.roles import ROLES
from core.services.templates import load_template, parse_template
from workflows.dag import find_cycle
from workflows.dsl import TemplateError, compile_plan, validate


def template_problems(yaml_text: str) -> list[str]:
    template = parse_template(textwrap.dedent(yaml_text))
    with pytest.raises(TemplateError) as info:
        validate(template, ROLES)
    return info.value.problems


def test_sdlc_template_is_the_documented_dag() -> None:
    template = load_template("sdlc", ROLES)
    deps = {t.id: t.depends_on for t in template.tasks}
    assert deps["planning"] == ["requirements"]
    assert deps["design"] == ["planning"]
    assert deps["architecture"] == ["design"]
    assert deps["database"] == ["architecture"]
    # backend and frontend share their only dependency, so they run in parallel
    assert deps["backend"] == deps["frontend"] == ["database"]
    gates = {t.id: t.gate for t in template.tasks if t.gate}
    assert gates == {"code_review": "code_review", "security_review": "security_review"}
    assert "backend" in deps["code_review"] and "frontend" in deps["code_review"]
    assert deps["security_review"] == ["code_review"]
    optional = {t.id: t.when for t in template.tasks if t.when}
    assert set(optional) == {"data_science", "cleanup"}
    assert {t.role for t in template.tasks} <= set(ROLES)


def test_compile_binds_goal_and_lists_what_gates_revise() -> None:
    plan = compile_plan(load_template("sdlc", ROLES), goal="  Build a todo API ", run_id="r1")
    assert plan.goal == "Build a todo API"
    code_review = next(t for t in plan.tasks if t.id == "code_review")
    assert set(code_review.revises) == {"backend", "frontend", "database", "data_science"}


def test_empty_goal_is_refused() -> None:
    with pytest.raises(ValueError, match="goal is empty"):
        compile_plan(load_template("sdlc", ROLES), goal="   ", run_id="r1")


def test_unknown_role() -> None:
    problems = template_problems(
        """
        name: t
        tasks:
          - {id: a, role: wizard}
        """
    )
    assert problems == [f"task 'a' has unknown role 'wizard' (known: {', '.join(sorted(ROLES))})"]


def test_unknown_dependency_and_duplicate_id() -> None:
    problems = template_problems(
        """
        name: t
        tasks:
          - {id: a, role: tech_lead}
          - {id: a, role: tech_lead}
          - {id: b, role: tech_lead, depends_on: [nope]}
        """
    )
    assert "duplicate task id 'a'" in problems
    assert "task 'b' depends on unknown task 'nope'" in problems


def test_cycle_is_printed_as_a_path() -> None:
    problems = template_problems(
        """
        name: t
        tasks:
          - {id: a, role: tech_lead, depends_on: [c]}
          - {id: b, role: tech_lead, depends_on: [a]}
          - {id: c, role: tech_lead, depends_on: [b]}
        """
    )
    assert problems == ["dependency cycle: a -> c -> b -> a"]


def test_find_cycle_none_for_a_dag() -> None:
    assert find_cycle({"a": [], "b": ["a"], "c": ["a", "b"]}) is None


def test_gate_without_a_task_to_revise() -> None:
    problems = template_problems(
        """
        name: t
        tasks:
          - {id: review, role: code_reviewer, gate: code_review}
        """
    )
    assert problems == [
        "gate 'review' has no task to revise: it must depend on a task that is not a gate"
    ]


def test_condition_must_name_an_upstream_task() -> None:
    problems = template_problems(
        """
        name: t
        tasks:
          - {id: a, role: tech_lead}
          - {id: b, role: tech_lead, when: a.flag}
          - {id: c, role: tech_lead, when: b.flag}
          - {id: d, role: tech_lead, depends_on: [a], when: "this is not a condition"}
        """
    )
    assert problems[0].startswith("task 'b' has condition on 'a'")
    assert problems[1].startswith("task 'c' has condition on 'b'")
    assert "cannot parse condition" in problems[2]


def test_schema_errors_name_the_field() -> None:
    with pytest.raises(TemplateError) as info:
        parse_template(
            "name: t\ntasks:\n  - {id: a, role: tech_lead, max_revisions: -1, color: red}\n"
        )
    text = str(info.value)
    assert "tasks.0.max_revisions" in text
    assert "tasks.0.color: Extra inputs are not permitted" in text


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(TemplateError, match="not valid YAML at line 2"):
        parse_template("name: t\n  bad: : x\ntasks: []\n")


def test_missing_template_file(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="no such template or file"):
        load_template(str(tmp_path / "missing.yaml"), ROLES)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[" * 5000 + "]" * 5000, "not valid YAML at line 1"),
        ("name: t\ntasks:\n" + "".join("  " * i + "- \n" for i in range(1, 40)), "nested deeper"),
        ("a: &x [1, 2]\nb: [*x, *x]\n", "aliases (*name) are not supported"),
        ("name: t\ntasks: []\n" + "#" * 200_000, "at most 200000 are allowed"),
    ],
    ids=["deep-flow", "deep-block", "aliases", "too-long"],
)
def test_yaml_that_could_exhaust_the_parser_is_refused(text: str, problem: str) -> None:
    with pytest.raises(TemplateError) as info:
        parse_template(text)
    assert problem in str(info.value)


def test_a_template_is_bounded_in_tasks_and_text() -> None:
    too_many = "name: t\ntasks:\n" + "".join(
        f"  - {{id: t{i}, role: tech_lead}}\n" for i in range(201)
    )
    with pytest.raises(TemplateError, match="tasks: List should have at most 200 items"):
        parse_template(too_many)
    long_description = (
        f"name: t\ntasks:\n  - {{id: a, role: tech_lead, description: {'x' * 20_001}}}\n"
    )
    with pytest.raises(
        TemplateError, match=r"tasks\.0\.description: String should have at most 20000"
    ):
        parse_template(long_description)
    deep_condition = (
        f"name: t\ntasks:\n  - {{id: a, role: tech_lead, when: 'a.x == {'[' * 500}'}}\n"
    )
    with pytest.raises(TemplateError, match=r"tasks\.0\.when: String should have at most 500"):
        parse_template(deep_condition)
    long_name = f"name: {'n' * 201}\ntasks:\n  - {{id: a, role: tech_lead}}\n"
    with pytest.raises(TemplateError, match="name: String should have at most 200"):
        parse_template(long_name)
