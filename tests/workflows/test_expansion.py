"""Work breakdowns as plain functions: the DSL's `stages:`, the checks, the expansion."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from agents.roles import ROLES
from core.contracts import (
    Finding,
    Severity,
    StagePlan,
    TaskPlan,
    WorkBreakdown,
    WorkPackage,
    owned_paths,
)
from core.services.templates import load_template, parse_template
from offline.breakdown import is_small, plan_work
from workflows.dsl import TemplateError, compile_plan, validate
from workflows.expansion import (
    before_stage,
    breakdown_request,
    check_breakdown,
    expand_stage,
    owns,
    plan_mermaid,
    plan_table,
)
from workflows.gates import offending_tasks

STAGE_TEMPLATE = """
name: t
tasks:
  - {id: plan, role: tech_lead}
  - {id: schema, role: database_engineer, depends_on: [plan]}
  - {id: api, role: backend_engineer, depends_on: [schema]}
  - {id: web, role: frontend_engineer, depends_on: [schema]}
  - {id: review, role: code_reviewer, gate: code_review, depends_on: [api, web]}
stages:
  - id: build
    expand: plan.work_packages
    tasks: [api, web]
"""


def compiled(text: str = STAGE_TEMPLATE, **kwargs: Any) -> list[TaskPlan]:
    return compile_plan(parse_template(textwrap.dedent(text)), goal="g", run_id="r", **kwargs).tasks


def stage(**fields: Any) -> StagePlan:
    base: dict[str, Any] = {
        "id": "build",
        "source_task": "plan",
        "tasks": ["api", "web"],
        "roles": ["backend_engineer", "frontend_engineer"],
    }
    return StagePlan(**{**base, **fields})


def pkg(
    id_: str, owns_: list[str], role: str = "backend_engineer", deps: list[str] | None = None
) -> WorkPackage:
    return WorkPackage(id=id_, role=role, description=id_, owns=owns_, depends_on=deps or [])


def problems_of(yaml_text: str) -> list[str]:
    with pytest.raises(TemplateError) as info:
        validate(parse_template(textwrap.dedent(yaml_text)), ROLES)
    return info.value.problems


def test_the_sdlc_template_expands_its_implementation_stage_from_the_architecture() -> None:
    plan = compile_plan(load_template("sdlc", ROLES), goal="g", run_id="r")
    [implementation] = plan.stages
    assert (implementation.source_task, implementation.tasks) == (
        "architecture",
        ["backend", "frontend"],
    )
    assert implementation.roles == ["backend_engineer", "frontend_engineer"]
    assert (implementation.max_packages, implementation.approval) == (12, False)
    assert {t.id for t in plan.tasks if t.stage} == {"backend", "frontend"}
    approving = compile_plan(load_template("sdlc", ROLES), goal="g", run_id="r", approve_plan=True)
    assert approving.stages[0].approval


def test_a_stage_default_roles_are_its_tasks_roles() -> None:
    plan = compile_plan(parse_template(textwrap.dedent(STAGE_TEMPLATE)), goal="g", run_id="r")
    assert plan.stages[0].roles == ["backend_engineer", "frontend_engineer"]


def test_stage_problems_are_each_named() -> None:
    problems = problems_of(
        STAGE_TEMPLATE.replace("expand: plan.work_packages", "expand: web.outline").replace(
            "tasks: [api, web]", "tasks: [api, review, ghost]\n    roles: [wizard]"
        )
    )
    assert "stage 'build' expands from 'web.outline': use web.work_packages" in problems
    assert "stage 'build' names unknown task 'ghost'" in problems
    assert "stage 'build': task 'review' is a gate or conditional" in problems
    assert "stage 'build': task 'api' does not come after 'web'" in problems
    assert "stage 'build' has unknown role 'wizard'" in problems
    unknown = problems_of(STAGE_TEMPLATE.replace("expand: plan.", "expand: nobody."))
    assert unknown == ["stage 'build' expands from unknown task 'nobody'"]


def test_a_condition_on_a_stage_task_is_refused() -> None:
    text = STAGE_TEMPLATE.replace(
        "  - {id: review,",
        "  - {id: docs, role: tech_lead, depends_on: [api], when: api.ok}\n  - {id: review,",
    )
    assert problems_of(text) == ["task 'docs' has a condition on stage 'build', which may expand"]


def test_a_valid_breakdown_has_no_problems_and_may_wait_for_tasks_before_the_stage() -> None:
    tasks = compiled()
    assert before_stage(tasks, stage()) == ["plan", "schema"]
    request = breakdown_request(tasks, stage())
    assert request.may_depend_on == ["plan", "schema"] and request.fixed_tasks == ["api", "web"]
    breakdown = WorkBreakdown(
        packages=[
            pkg("models", ["backend/models.py"], deps=["schema"]),
            pkg("routes", ["backend/app.py", "backend/tests/"], deps=["models"]),
            pkg("pages", ["frontend/"], role="frontend_engineer"),
        ]
    )
    assert check_breakdown(breakdown, stage(), tasks) == []


def test_every_problem_of_a_breakdown_is_named() -> None:
    tasks = compiled()
    breakdown = WorkBreakdown(
        packages=[
            pkg("review", ["backend/"]),
            pkg("a", ["backend/app.py"], role="wizard", deps=["a", "later", "review"]),
            pkg("b", ["../etc/passwd"]),
            pkg("b", ["docs/"]),
        ]
    )
    problems = check_breakdown(breakdown, stage(max_packages=3), tasks)
    assert "the breakdown has 4 packages; stage 'build' allows at most 3" in problems
    assert "package id 'review' is already a task or a reserved name" in problems
    assert any(
        p.startswith("package 'a' has role 'wizard'; stage 'build' allows") for p in problems
    )
    assert "package 'a' depends on itself" in problems
    assert any(p.startswith("package 'a' depends on 'later', which is neither") for p in problems)
    assert "package 'b' owns '../etc/passwd', which is not a relative path" in problems
    assert "package id 'b' is used twice" in problems
    assert "path 'backend/app.py' is owned by both 'review' and 'a'" in problems


def test_a_dependency_cycle_among_packages_is_named_as_a_path() -> None:
    breakdown = WorkBreakdown(
        packages=[pkg("x", ["x.py"], deps=["y"]), pkg("y", ["y.py"], deps=["x"])]
    )
    assert check_breakdown(breakdown, stage(), compiled()) == ["dependency cycle: x -> y -> x"]


def test_expanding_replaces_the_stage_and_rewires_what_came_after() -> None:
    tasks = compiled()
    breakdown = WorkBreakdown(
        packages=[
            pkg("models", ["backend/models.py"]),
            pkg("routes", ["backend/app.py"], deps=["models"]),
            pkg("pages", ["frontend/"], role="frontend_engineer"),
        ]
    )
    expanded = expand_stage(tasks, stage(), breakdown)
    by_id = {t.id: t for t in expanded}
    assert [t.id for t in expanded] == ["plan", "schema", "models", "routes", "pages", "review"]
    assert by_id["models"].depends_on == ["schema"]
    assert by_id["routes"].depends_on == ["schema", "models"]
    assert by_id["review"].depends_on == ["models", "routes", "pages"]
    assert by_id["review"].revises == ["models", "routes", "pages", "schema"]
    assert by_id["routes"].stage == "build" and by_id["routes"].owns == ["backend/app.py"]
    assert owned_paths(by_id["routes"].description) == ["backend/app.py"]
    assert by_id["pages"].max_turns == next(t for t in tasks if t.id == "web").max_turns


def test_ownership_compares_files_and_folders() -> None:
    assert owns(["backend/"], "backend/app.py") and owns(["backend/"], "./backend/x/y.py")
    assert owns(["backend/app.py"], "backend/app.py")
    assert not owns(["backend/app.py"], "backend/app.pyc") and not owns(["backend"], "backend/a.py")


def test_a_finding_goes_to_the_owner_before_the_writer() -> None:
    finding = Finding(
        source="code_reviewer", severity=Severity.HIGH, message="m", file="backend/report.py"
    )
    written = {"core": {"backend/report.py"}, "report": set()}
    owned = {"core": ["backend/app.py"], "report": ["backend/report.py"]}
    assert offending_tasks([finding], ["core", "report"], written, owned) == ["report"]
    assert offending_tasks([finding], ["core", "report"], written) == ["core"]


def test_the_plan_reads_as_a_table_and_a_mermaid_graph() -> None:
    breakdown = WorkBreakdown(
        packages=[
            pkg("models", ["backend/models.py"]),
            pkg("routes", ["backend/app.py"], deps=["models"]),
        ]
    )
    assert plan_table(breakdown).splitlines()[2:] == [
        "| models | backend_engineer | - | backend/models.py |",
        "| routes | backend_engineer | models | backend/app.py |",
    ]
    assert "    models --> routes" in plan_mermaid(breakdown).splitlines()


def test_the_offline_tech_lead_plans_the_goal_within_the_stage_limits() -> None:
    tasks = compile_plan(load_template("sdlc", ROLES), goal="g", run_id="r").tasks
    request = breakdown_request(
        tasks, compile_plan(load_template("sdlc", ROLES), goal="g", run_id="r").stages[0]
    )
    from core.contracts import breakdown_block

    block = breakdown_block(request)
    full = plan_work(block, "Build a recipe sharing API with user accounts")
    assert full is not None and [p.id for p in full.packages] == ["backend", "frontend"]
    assert "user accounts with bearer tokens" in full.packages[0].description
    small = plan_work(block, "Build a tiny notes API")
    assert small is not None and [p.owns for p in small.packages] == [["backend/"]]
    assert is_small("Write a small script that renames photos")
    assert not is_small("Build a small web frontend to browse recipes")
    only_backend = block.replace("backend_engineer,frontend_engineer", "backend_engineer")
    planned = plan_work(only_backend, "Build a todo API")
    assert planned is not None and [p.role for p in planned.packages] == ["backend_engineer"]
    assert plan_work("no breakdown asked", "Build a todo API") is None


def test_a_stage_whose_tasks_were_removed_has_nothing_to_expand() -> None:
    tasks = [t for t in compiled() if t.id not in ("api", "web")]
    breakdown = WorkBreakdown(packages=[pkg("models", ["backend/"])])
    assert check_breakdown(breakdown, stage(), tasks) == [
        "the tasks of stage 'build' were removed from the plan: nothing to expand"
    ]
