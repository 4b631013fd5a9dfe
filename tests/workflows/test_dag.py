from __future__ import annotations

import pytest

from core.contracts import TaskPlan, TaskStatus
from workflows.conditions import ConditionError, parse_condition
from workflows.dag import (
    blocked_tasks,
    critical_path,
    find_cycle,
    ready_tasks,
    should_run,
    topological_order,
    upstream_ids,
)

P, R, C, S, F = (
    TaskStatus.PENDING,
    TaskStatus.RUNNING,
    TaskStatus.COMPLETED,
    TaskStatus.SKIPPED,
    TaskStatus.FAILED,
)

TASKS = [
    TaskPlan(id="db", role="database_engineer"),
    TaskPlan(id="be", role="backend_engineer", depends_on=["db"]),
    TaskPlan(id="fe", role="frontend_engineer", depends_on=["db"]),
    TaskPlan(id="ds", role="data_scientist", depends_on=["db"], when="db.analytics"),
    TaskPlan(id="review", role="code_reviewer", depends_on=["be", "fe", "ds"], gate="code_review"),
]


def ids(tasks: list[TaskPlan]) -> list[str]:
    return [t.id for t in tasks]


def test_ready_tasks_start_together_once_dependencies_finish() -> None:
    assert ids(ready_tasks(TASKS, {"db": P, "be": P, "fe": P, "ds": P, "review": P})) == ["db"]
    assert ids(ready_tasks(TASKS, {"db": C, "be": P, "fe": P, "ds": P, "review": P})) == [
        "be",
        "fe",
        "ds",
    ]
    assert ids(ready_tasks(TASKS, {"db": C, "be": C, "fe": R, "ds": S, "review": P})) == []
    assert ids(ready_tasks(TASKS, {"db": C, "be": C, "fe": C, "ds": S, "review": P})) == ["review"]


def test_failure_blocks_everything_downstream_only() -> None:
    statuses = {"db": C, "be": F, "fe": R, "ds": P, "review": P}
    assert ids(blocked_tasks(TASKS, statuses)) == ["review"]
    assert blocked_tasks(TASKS, {"db": C, "be": C, "fe": C, "ds": C, "review": P}) == []


def test_conditions() -> None:
    ds = TASKS[3]
    assert should_run(ds, {"db": {"analytics": True}})
    assert not should_run(ds, {"db": {}})
    assert should_run(TASKS[0], {})
    assert parse_condition("not a.x").evaluate({"a": {"x": False}})
    assert parse_condition("a.kind == 'api'").evaluate({"a": {"kind": "api"}})
    assert parse_condition("a.n != 3").evaluate({"a": {"n": 4}})
    assert parse_condition("a.ok == true").evaluate({"a": {"ok": True}})
    with pytest.raises(ConditionError):
        parse_condition("__import__('os')")


def test_upstream_ids_are_transitive_in_plan_order() -> None:
    assert upstream_ids(TASKS, "review") == ["db", "be", "fe", "ds"]
    assert upstream_ids(TASKS, "db") == []


def test_critical_path_is_the_longest_chain() -> None:
    cost = {"db": 1.0, "be": 3.0, "fe": 2.0, "ds": 0.0, "review": 1.0}
    assert critical_path(TASKS, cost) == 5.0


def test_topological_order_keeps_plan_order_among_ready_tasks() -> None:
    assert ids(topological_order(TASKS)) == ["db", "be", "fe", "ds", "review"]
    assert ids(topological_order(list(reversed(TASKS)))) == ["db", "ds", "fe", "be", "review"]
    looped = [
        TaskPlan(id="a", role="r", depends_on=["b"]),
        TaskPlan(id="b", role="r", depends_on=["a"]),
    ]
    with pytest.raises(ValueError, match="cycle"):
        topological_order(looped)


def test_graph_walks_survive_a_chain_deeper_than_the_stack() -> None:
    """Plans are the user's to shape: a recursive walk of a long chain overflowed the stack."""
    n = 20_000
    chain = [
        TaskPlan(id=f"t{i}", role="tech_lead", depends_on=[f"t{i + 1}"] if i + 1 < n else [])
        for i in range(n)
    ]
    assert critical_path(chain, {t.id: 1.0 for t in chain}) == n
    assert ids(topological_order(chain))[:2] == [f"t{n - 1}", f"t{n - 2}"]
    edges = {t.id: list(t.depends_on) for t in chain}
    assert find_cycle(edges) is None
    edges[f"t{n - 1}"] = ["t0"]
    cycle = find_cycle(edges)
    assert cycle is not None
    assert (len(cycle), cycle[:2], cycle[-2:]) == (n + 1, ["t0", "t1"], [f"t{n - 1}", "t0"])
