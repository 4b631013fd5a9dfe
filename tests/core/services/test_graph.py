"""The plan as a Mermaid flowchart: node ids Mermaid accepts, edges from `depends_on`,
gates shaped apart, one class per task state."""

from __future__ import annotations

import re

from agents.roles import ROLES
from core.contracts import GateKind, RunState, TaskPlan, TaskState, TaskStatus
from core.services.graph import STATE_CLASSES, mermaid, node_ids, run_mermaid
from core.services.templates import load_template

NODE = re.compile(r'^    (t_\w+)(\(|\{\{|\{)"([^"]*)"(\)|\}\}|\})$')
EDGE = re.compile(r"^    (t_\w+) --> (t_\w+)$")
CLASS_DEF = re.compile(r"^    classDef (\w+) (\S.*)$")
CLASS = re.compile(r"^    class (t_\w+(?:,t_\w+)*) (\w+)$")


def parse(text: str) -> tuple[dict[str, tuple[str, str]], list[tuple[str, str]], dict[str, str]]:
    """Nodes (id -> shape, label), edges, and the class of each node; every line must be one
    of the statements the module writes, so anything else fails here."""
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    nodes: dict[str, tuple[str, str]] = {}
    edges: list[tuple[str, str]] = []
    defined: set[str] = set()
    classes: dict[str, str] = {}
    for line in lines[1:]:
        if node := NODE.match(line):
            assert node[1] not in nodes, f"node {node[1]} declared twice"
            nodes[node[1]] = (node[2], node[3])
        elif edge := EDGE.match(line):
            edges.append((edge[1], edge[2]))
        elif class_def := CLASS_DEF.match(line):
            defined.add(class_def[1])
        elif assigned := CLASS.match(line):
            assert assigned[2] in defined, f"class {assigned[2]} used before its classDef"
            for node_id in assigned[1].split(","):
                classes[node_id] = assigned[2]
        else:
            raise AssertionError(f"not a statement of the flowchart: {line!r}")
    assert all(a in nodes and b in nodes for a, b in edges)
    assert set(classes) <= set(nodes)
    return nodes, edges, classes


def test_a_template_draws_every_task_and_every_dependency_with_gates_as_hexagons() -> None:
    template = load_template("sdlc", ROLES)
    nodes, edges, classes = parse(mermaid(template.tasks))
    ids = node_ids([t.id for t in template.tasks])
    assert set(nodes) == set(ids.values())
    assert sorted(edges) == sorted(
        (ids[dep], ids[t.id]) for t in template.tasks for dep in t.depends_on
    )
    shapes = {task.id: nodes[ids[task.id]][0] for task in template.tasks}
    assert shapes["code_review"] == shapes["security_review"] == "{{"
    assert {shapes[t.id] for t in template.tasks if not t.gate} == {"("}
    assert nodes[ids["backend"]][1] == "backend<br/>backend_engineer"
    assert classes == {}


def test_ids_are_sanitized_unique_and_never_a_keyword_and_labels_cannot_break_out() -> None:
    tasks = [
        TaskPlan(id="end", role='analyst "quoted" <b>bold</b> & #1'),
        TaskPlan(id="o", role="tech_lead", depends_on=["end"]),
        TaskPlan(id="a-b", role="tech_lead", depends_on=["o"]),
        TaskPlan(id="a_b", role="pm", depends_on=["a-b", "gone"], gate=GateKind.HUMAN_APPROVAL),
    ]
    nodes, edges, _ = parse(mermaid(tasks))
    ids = node_ids([t.id for t in tasks])
    assert ids == {"end": "t_end", "o": "t_o", "a-b": "t_a_b", "a_b": "t_a_b_2"}
    assert nodes["t_a_b_2"][0] == "{"  # a human approval gate: a diamond
    label = nodes["t_end"][1]
    assert label == "end<br/>analyst #quot;quoted#quot; #lt;b#gt;bold#lt;/b#gt; #amp; #35;1"
    # An unknown dependency (a task removed meanwhile) draws no edge to nowhere.
    assert ("t_a_b", "t_a_b_2") in edges and ("t_o", "t_a_b") in edges
    assert len(edges) == 3


def test_a_run_draws_each_task_in_its_state_with_one_class_per_state() -> None:
    statuses = list(TaskStatus)
    state = RunState(
        run_id="r",
        goal="g",
        template="t",
        tasks=[
            TaskState(
                id=f"task{i}",
                role="tech_lead",
                status=status,
                depends_on=[f"task{i - 1}"] if i else [],
                gate=GateKind.CODE_REVIEW if status == TaskStatus.WAITING else None,
            )
            for i, status in enumerate(statuses)
        ],
    )
    text = run_mermaid(state)
    nodes, edges, classes = parse(text)
    assert set(STATE_CLASSES) == {s.value for s in TaskStatus}
    assert classes == {f"t_task{i}": status.value for i, status in enumerate(statuses)}
    assert nodes["t_task2"][1] == "task2<br/>tech_lead<br/>waiting"
    assert len(edges) == len(statuses) - 1
    assert text.count("classDef ") == len(statuses)
