"""Done means green, the decisions: which folders a task's own checks cover, when failures
go back to its agent, what it reads, and where that stands in its conversation."""

from __future__ import annotations

import pytest

from agents.conversation import build_messages, render_note
from agents.protocol import Message, TextBlock
from core.contracts import DeliveredNote, Finding, FollowUp, GateKind, Severity, TaskPlan, TaskState
from tests.workflows.test_collaboration import answer, assert_alternates, note, results
from workflows.own_checks import (
    LISTED_FINDINGS,
    Outcome,
    check_paths,
    gate_context,
    gate_notes,
    new_attempt,
    outcome,
    render_followup,
    wants_own_checks,
)


def blocking(source: str, rule: str, where: str, message: str) -> Finding:
    file, line = where.split(":")
    return Finding(
        source=source, severity=Severity.HIGH, message=message, file=file, line=int(line), rule=rule
    )


FAILING_TEST = blocking(
    "pytest",
    "test-failure",
    "backend/test_app.py:5",
    "test backend/test_app.py::test_add failed: assert -1 == 5",
)
UNDEFINED_NAME = blocking("ruff", "F821", "backend/app.py:2", "Undefined name `sub`")


@pytest.mark.parametrize(
    ("written", "paths"),
    [
        (["backend/app.py", "backend/tests/test_app.py"], ["backend"]),
        (["backend/app.py", "frontend/index.html", "docs/api.md"], ["backend", "docs", "frontend"]),
        # a README at the top says nothing about where the code is ...
        (["README.md", "backend/app.py"], ["backend"]),
        # ... a Python file there makes the whole repository the task's
        (["main.py", "backend/app.py"], ["."]),
        # no Python, no tests: nothing to check
        (["docs/requirements.md", "frontend/index.html"], None),
        ([], None),
    ],
)
def test_a_tasks_folders_are_the_top_level_folders_of_its_files(
    written: list[str], paths: list[str] | None
) -> None:
    assert check_paths(written) == paths


def test_only_tasks_that_produce_work_check_it() -> None:
    engineer = TaskPlan(id="backend", role="backend_engineer")
    assert wants_own_checks(engineer, review_of=None)
    assert not wants_own_checks(engineer, review_of="frontend")  # a supervisor judges instead
    gate = TaskPlan(id="code_review", role="code_reviewer", gate=GateKind.CODE_REVIEW)
    assert not wants_own_checks(gate, review_of=None)
    assert not wants_own_checks(engineer.model_copy(update={"max_check_rounds": 0}), None)


@pytest.mark.parametrize(
    ("blocking", "rounds", "turns_left", "expected"),
    [
        ([], 0, 5, Outcome.GREEN),
        ([], 2, 0, Outcome.GREEN),
        ([FAILING_TEST], 0, 5, Outcome.SEND_BACK),
        ([FAILING_TEST], 1, 5, Outcome.SEND_BACK),
        ([FAILING_TEST], 2, 5, Outcome.RECORD),  # the rounds ran out
        ([FAILING_TEST], 0, 0, Outcome.RECORD),  # no turn left to fix it in
    ],
)
def test_failures_go_back_while_rounds_and_turns_are_left(
    blocking: list[Finding], rounds: int, turns_left: int, expected: Outcome
) -> None:
    assert outcome(blocking, rounds=rounds, max_rounds=2, turns_left=turns_left) == expected


def test_the_follow_up_names_each_failure_like_a_gate_finding() -> None:
    text = render_followup([FAILING_TEST, UNDEFINED_NAME], paths=["backend"], round_=1, rounds=2)
    lines = text.splitlines()
    assert "the tests in backend" in lines[0] and "check round 1 of 2" in lines[0]
    assert lines[1] == (
        "- HIGH pytest [test-failure] backend/test_app.py:5: "
        "test backend/test_app.py::test_add failed: assert -1 == 5"
    )
    assert lines[2] == "- HIGH ruff [F821] backend/app.py:2: Undefined name `sub`"
    assert "After round 2" in lines[3]
    whole = render_followup([FAILING_TEST], paths=["."], round_=2, rounds=2)
    assert "the tests in the whole repository" in whole


def test_a_long_list_of_failures_is_cut_where_it_would_only_fill_the_context() -> None:
    failures = [
        blocking("pytest", "test-failure", f"backend/test_app.py:{n}", f"test {n} failed")
        for n in range(1, LISTED_FINDINGS + 6)
    ]
    lines = render_followup(failures, paths=["backend"], round_=1, rounds=2).splitlines()
    assert len([line for line in lines if line.startswith("- HIGH")]) == LISTED_FINDINGS
    assert lines[-2] == "- ... and 5 more"


def test_a_gate_sees_the_tasks_that_completed_with_failing_checks() -> None:
    green = TaskState(id="frontend", role="frontend_engineer")
    red = TaskState(
        id="backend", role="backend_engineer", check_rounds=2, check_failures=[FAILING_TEST]
    )
    assert gate_context([green]) == "" and gate_notes([green]) == []
    context = gate_context([green, red])
    assert "backend completed with its own checks failing (after 2 check rounds)" in context
    assert "backend/test_app.py:5" in context and "frontend" not in context
    assert gate_notes([green, red]) == [
        "backend completed with 1 failing checks of its own after 2 check rounds"
    ]


def test_a_new_attempt_starts_without_rounds_follow_ups_or_failures() -> None:
    state = TaskState(
        id="backend",
        role="backend_engineer",
        check_rounds=2,
        check_failures=[FAILING_TEST],
        followups=[FollowUp(turn=1, text="fix it")],
    )
    new_attempt(state)
    assert (state.check_rounds, state.check_failures, state.followups) == (0, [], [])


# --------------------------------------------------------------------------- the conversation


def test_a_follow_up_stands_right_after_the_answer_of_the_turn_that_ended() -> None:
    followup = FollowUp(turn=1, text="Your work is not done yet: ...")
    # turn 0 wrote files, turn 1 said it was done, turn 2 fixes (conversation at turn 3)
    messages = build_messages(
        "task",
        [answer(0), answer(1, tools=False), answer(2)],
        [results(0), [], results(2)],
        followups=[followup],
    )
    assert_alternates(messages)
    assert len(messages) == 7
    assert messages[3] == Message(role="assistant", content=[TextBlock(text="turn 1")])
    assert messages[4] == Message(role="user", content=[TextBlock(text=followup.text)])
    assert messages[6].content == results(2)


def test_a_follow_up_comes_after_tool_results_and_notes_and_changes_no_earlier_turn() -> None:
    followup = FollowUp(turn=0, text="checks failed")
    delivered = [DeliveredNote(note=note(1, "all"), turn=1)]
    before = build_messages("task", [answer(0)], [results(0)], delivered)
    after = build_messages("task", [answer(0)], [results(0)], delivered, followups=[followup])
    assert after[:2] == before[:2]
    assert_alternates(after)
    # Anthropic rejects text before tool_result blocks: the follow-up closes the message
    assert after[2].content == [
        *results(0),
        TextBlock(text=render_note(delivered[0].note)),
        TextBlock(text="checks failed"),
    ]
    later = build_messages(
        "task",
        [answer(0), answer(1, tools=False)],
        [results(0)],
        delivered,
        followups=[followup, FollowUp(turn=1, text="still failing")],
    )
    assert later[: len(after)] == after
    assert later[-1] == Message(role="user", content=[TextBlock(text="still failing")])
