"""A plan's DAG as a Mermaid flowchart: what `orchestrator templates show --mermaid`,
`orchestrator graph`, `GET /runs/{id}/graph` and the deliverable's PROVENANCE.md show.

One pure function draws it from the tasks (a template's, a plan's or a run's state, which
all name their id, role, dependencies and gate kind), with each task's state when given.
GitHub, GitLab and the Mermaid Live Editor render the text as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Protocol

from core.contracts import GateKind, RunState

STATE_CLASSES = {
    "pending": "fill:#f4f4f4,stroke:#999999,color:#333333",
    "running": "fill:#fff3cd,stroke:#d39e00,color:#333333",
    "waiting": "fill:#f3d9fa,stroke:#9c36b5,stroke-width:3px,color:#333333",
    "dead_lettered": "fill:#f8d7da,stroke:#721c24,stroke-width:3px,color:#333333",
    "completed": "fill:#d4edda,stroke:#28a745,color:#333333",
    "skipped": "fill:#e2e3e5,stroke:#6c757d,stroke-dasharray:4 2,color:#333333",
    "failed": "fill:#f8d7da,stroke:#dc3545,color:#333333",
}
"""One `classDef` per task state (the values of `TaskStatus`)."""

_LABEL_ESCAPES = {'"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "#": "#35;"}
_NOT_ID = re.compile(r"[^A-Za-z0-9_]")


class GraphTask(Protocol):
    """What a task needs to be drawn: `TaskSpec`, `TaskPlan` and `TaskState` all have it."""

    @property
    def id(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def depends_on(self) -> list[str]: ...

    @property
    def gate(self) -> GateKind | None: ...


def mermaid(tasks: Sequence[GraphTask], states: Mapping[str, str] | None = None) -> str:
    """The tasks as a top-down flowchart: an edge from each dependency to its dependant;
    checked gates as hexagons, human approval gates as diamonds, other tasks rounded; with
    `states` (task id -> state), each task's state in its label and as its class."""
    ids = node_ids([task.id for task in tasks])
    lines = ["flowchart TD"]
    for task in tasks:
        label = f"{task.id}<br/>{task.role}"
        if states and task.id in states:
            label += f"<br/>{states[task.id]}"
        opened, closed = _shape(task.gate)
        lines.append(f'    {ids[task.id]}{opened}"{_escape(label)}"{closed}')
    for task in tasks:
        for dep in task.depends_on:
            if dep in ids:
                lines.append(f"    {ids[dep]} --> {ids[task.id]}")
    if states:
        lines += _state_classes(tasks, ids, states)
    return "\n".join(lines) + "\n"


def run_mermaid(state: RunState) -> str:
    """A run's graph with the state of each task."""
    return mermaid(state.tasks, {task.id: task.status.value for task in state.tasks})


def node_ids(task_ids: Sequence[str]) -> dict[str, str]:
    """A Mermaid node id per task id: letters, digits and `_` only, behind a prefix that no
    keyword (`end`, `class`...) or edge syntax (`o`, `x` after `--`) can be mistaken for, and
    unique even where two task ids differ only in characters replaced."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for task_id in task_ids:
        base = "t_" + _NOT_ID.sub("_", task_id)
        node, n = base, 1
        while node in taken:
            n += 1
            node = f"{base}_{n}"
        ids[task_id] = node
        taken.add(node)
    return ids


def _shape(gate: GateKind | None) -> tuple[str, str]:
    if gate is None:
        return "(", ")"
    return ("{{", "}}") if gate.checked else ("{", "}")


def _escape(label: str) -> str:
    """Mermaid's entity codes for what would end a quoted label or read as markup; the
    `<br/>` line breaks this module writes stay."""
    parts = label.split("<br/>")
    return "<br/>".join("".join(_LABEL_ESCAPES.get(c, c) for c in part) for part in parts)


def _state_classes(
    tasks: Sequence[GraphTask], ids: Mapping[str, str], states: Mapping[str, str]
) -> list[str]:
    lines = []
    by_state: dict[str, list[str]] = {}
    for task in tasks:
        state = states.get(task.id)
        if state in STATE_CLASSES:
            by_state.setdefault(state, []).append(ids[task.id])
    for state, nodes in by_state.items():
        lines.append(f"    classDef {state} {STATE_CLASSES[state]}")
        lines.append(f"    class {','.join(nodes)} {state}")
    return lines
