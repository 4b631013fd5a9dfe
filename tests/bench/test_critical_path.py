"""The benches' critical path: each task weighted by its work, model time alone beside it."""

from __future__ import annotations

from bench.makespan import ideal_seconds, work_seconds
from bench.overhead import overhead_per_call
from core.contracts import RunState, TaskState


def state() -> RunState:
    """design -> (backend | frontend) -> review; the backend ran its tests and was checked."""
    tasks = [
        TaskState(id="design", role="ux_engineer", turns=2),
        TaskState(
            id="backend",
            role="backend_engineer",
            depends_on=["design"],
            turns=3,
            command_seconds=2.5,
            check_seconds=1.0,
        ),
        TaskState(id="frontend", role="frontend_engineer", depends_on=["design"], turns=5),
        TaskState(
            id="review",
            role="code_reviewer",
            depends_on=["backend", "frontend"],
            turns=1,
            check_seconds=0.5,
        ),
    ]
    return RunState(run_id="r", goal="g", template="t", tasks=tasks)


def test_a_task_weighs_its_model_time_commands_and_checks() -> None:
    backend = state().task("backend")
    assert work_seconds(backend, 1.0) == 6.5
    assert work_seconds(backend, 1.0, model_only=True) == 3.0


def test_the_path_runs_through_the_branch_with_the_most_work() -> None:
    # Model time alone: design 2 + frontend 5 + review 1 = 8 (the backend's 3 is shorter).
    assert ideal_seconds(state(), 1.0, model_only=True) == 8.0
    # With its tests and checks the backend (6.5) outweighs the frontend (5): 2 + 6.5 + 1.5.
    assert ideal_seconds(state(), 1.0) == 10.0


def test_overhead_per_call_leaves_out_the_work_on_the_path() -> None:
    # At zero latency the path is the backend's commands and checks and the review's checks.
    assert ideal_seconds(state(), 0.0) == 4.0
    assert abs(overhead_per_call(4.0 + 1.1, state()) - 0.1) < 1e-9
