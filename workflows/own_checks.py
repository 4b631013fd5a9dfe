"""Done means green: when an implementing agent ends its turn, its own work is checked.

The checks are the fast part of `code_review` (lint, and the tests of the test projects)
scoped to the task's folders: the top-level folders of the files it wrote. Blocking
findings go back into the same conversation, as a follow-up to the turn that ended, and
the agent takes another turn; after `max_check_rounds` of them (or when its turns run
out) the task completes with the failures recorded on its state and a `task.checks_failed`
event, and the gates see them. The decisions are the plain functions here; `OwnChecks`
runs them in the workflow.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from core.contracts import (
        RUN_CHECKS,
        ChecksInput,
        ChecksReport,
        EventType,
        Finding,
        FollowUp,
        GateKind,
        Severity,
        TaskPlan,
        TaskState,
    )
    from workflows.gates import render_findings

from workflows.run_context import RunContext, describe_failure

# workflow.patched id: histories recorded before own checks replay without them.
PATCH_OWN_CHECKS = "done-means-green"

WHOLE_WORKSPACE = "."
EVENT_FINDINGS = 5
"""Blocking findings an event names (the task's state holds all of them)."""
LISTED_FINDINGS = 30
"""Findings a message lists: the first ones are what to fix; the rest would only fill the
context (every turn's request repeats the message)."""


class Outcome(StrEnum):
    GREEN = "green"
    """Nothing blocks: the work goes on to validation and the gates."""
    SEND_BACK = "send_back"
    """The failures go back to the agent, which takes another turn."""
    RECORD = "record"
    """Rounds (or turns) ran out: the task completes with the failures recorded."""


def wants_own_checks(task: TaskPlan, review_of: str | None) -> bool:
    """Tasks that produce work check it; gates and reviewers judge work instead, and
    `max_check_rounds: 0` turns the checks off (the gates still run them on everything)."""
    return task.gate is None and review_of is None and task.max_check_rounds > 0


def check_paths(written: Iterable[str]) -> list[str] | None:
    """The folders of a task's own checks: the top-level folders of the files it wrote.

    None when it wrote no Python file (no code, no tests): nothing to check. Other files at
    the top of the repository (a README) say nothing about where the code is; a Python file
    there makes the whole workspace the task's.
    """
    paths = list(written)
    if not any(p.endswith(".py") for p in paths):
        return None
    if any(p.endswith(".py") and "/" not in p for p in paths):
        return [WHOLE_WORKSPACE]
    return sorted({p.split("/", 1)[0] for p in paths if "/" in p})


def outcome(blocking: list[Finding], *, rounds: int, max_rounds: int, turns_left: int) -> Outcome:
    """What follows a run of the checks, after `rounds` earlier send-backs this attempt."""
    if not blocking:
        return Outcome.GREEN
    if rounds < max_rounds and turns_left > 0:
        return Outcome.SEND_BACK
    return Outcome.RECORD


def render_followup(blocking: list[Finding], *, paths: list[str], round_: int, rounds: int) -> str:
    """The follow-up the agent reads after the turn it ended: the failures, like a gate's."""
    where = "the whole repository" if paths == [WHOLE_WORKSPACE] else ", ".join(paths)
    heading = (
        f"Your work is not done yet: its own checks (lint, and the tests in {where}) "
        f"failed when you ended your turn (check round {round_} of {rounds}):"
    )
    return "\n".join(
        [
            _listed(blocking, heading=heading),
            "Fix every failure above and run the tests to see them pass before you end your "
            f"turn. After round {rounds} the task completes with whatever still fails recorded "
            "for the code review gate.",
        ]
    )


def _listed(findings: list[Finding], *, heading: str) -> str:
    """Findings as a gate renders them, the first `LISTED_FINDINGS` of them."""
    text = render_findings(findings[:LISTED_FINDINGS], heading=heading)
    more = len(findings) - LISTED_FINDINGS
    return f"{text}\n- ... and {more} more" if more > 0 else text


def not_run(reason: str) -> Finding:
    """What stands for checks that could not run: recorded, never taken for a pass."""
    return Finding(
        source="sandbox",
        severity=Severity.MEDIUM,
        message=f"the task's own checks could not run: {reason}",
        rule="checks-not-run",
    )


def gate_context(tasks: Iterable[TaskState]) -> str:
    """For a gate's reviewer: the tasks that completed with their own checks failing."""
    parts = [
        _listed(
            t.check_failures,
            heading=f"{t.id} completed with its own checks failing "
            f"(after {t.check_rounds} check rounds):",
        )
        for t in tasks
        if t.check_failures
    ]
    if not parts:
        return ""
    return "\n".join(["Tasks whose own checks still failed when they completed:", *parts])


def gate_notes(tasks: Iterable[TaskState]) -> list[str]:
    """One line per task with open failures of its own checks, for a gate's verdict."""
    return [
        f"{t.id} completed with {len(t.check_failures)} failing checks of its own "
        f"after {t.check_rounds} check rounds"
        for t in tasks
        if t.check_failures
    ]


def new_attempt(task_state: TaskState) -> None:
    """A new attempt (a revision) is a new conversation: its own rounds and follow-ups."""
    task_state.check_rounds = 0
    task_state.followups = []
    task_state.check_failures = []


class OwnChecks:
    """Runs a task's own checks when its agent ends a turn, and settles what follows."""

    def __init__(self, run: RunContext) -> None:
        self._run = run

    async def sent_back(
        self, task: TaskPlan, task_state: TaskState, *, turn: int, label: str
    ) -> bool:
        """Check the work after turn `turn` ended; True when failures went back to the agent
        (a follow-up to that turn) and it must take another turn."""
        paths = check_paths(ref.path for ref in task_state.artifacts)
        if paths is None or not workflow.patched(PATCH_OWN_CHECKS):
            return False
        round_ = task_state.check_rounds + 1
        try:
            report: ChecksReport = await self._run.sandboxed(
                RUN_CHECKS,
                ChecksInput(
                    run_id=self._run.plan.run_id,
                    gate=GateKind.CODE_REVIEW.value,
                    paths=paths,
                    test_command=self._run.test_command,
                ),
                result_type=ChecksReport,
                summary=f"{label}: own checks, round {round_}",
            )
            blocking = report.blocking
            task_state.check_seconds += report.seconds
        except ActivityError as exc:
            if is_cancelled_exception(exc):
                raise
            # The gate runs the same checks: a broken checks worker must not stop the task.
            self._record(task, task_state, [not_run(describe_failure(exc))])
            return False
        step = outcome(
            blocking,
            rounds=task_state.check_rounds,
            max_rounds=task.max_check_rounds,
            turns_left=task.max_turns - task_state.next_turn,
        )
        if step == Outcome.SEND_BACK:
            task_state.check_rounds = round_
            text = render_followup(
                blocking, paths=paths, round_=round_, rounds=task.max_check_rounds
            )
            task_state.followups.append(FollowUp(turn=turn, text=text))
            return True
        if step == Outcome.RECORD:
            self._record(task, task_state, blocking)
        else:
            task_state.check_failures = []
        return False

    def _record(self, task: TaskPlan, task_state: TaskState, failures: list[Finding]) -> None:
        task_state.check_failures = failures
        self._run.emit(
            EventType.TASK_CHECKS_FAILED,
            task.id,
            rounds=task_state.check_rounds,
            failures=len(failures),
            findings=[f.message for f in failures[:EVENT_FINDINGS]],
        )
