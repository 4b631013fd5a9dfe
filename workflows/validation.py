"""Semantic validation as plain functions: which tasks it checks, what the validator is
asked, how its result is read, and what a task sent round again is told.

After a task finishes, a validator agent (a cheap model by default) checks its work
against the goal, the task's description and its role's contract, and submits
`ValidationResult` (passed, issues). A failed validation reruns the task with the issues,
at most `max_validation_rounds` times; after that the task completes with the issues
recorded. Gates and reviewers are not validated: judging work is what they do.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from core.contracts import (
    VALIDATION_OUTPUT,
    VALIDATOR_ROLE,
    RunPlan,
    TaskPlan,
    TaskState,
    ValidationResult,
)

JUDGING_ROLES = frozenset({"code_reviewer", "security_reviewer", VALIDATOR_ROLE})
"""Roles whose work is a judgement of other work: validating it would judge a judge."""

VALIDATOR_MAX_TURNS = 6
"""The files come quoted in the request; a few turns leave room to read what is missing."""

MAX_ISSUES_IN_EVENT = 10


def should_validate(task: TaskPlan, plan: RunPlan) -> bool:
    return plan.validate_tasks and task.gate is None and task.role not in JUDGING_ROLES


def validator_task(task: TaskPlan, state: TaskState, plan: RunPlan) -> TaskPlan:
    """The validator's assignment for one round; its own id keeps its turns apart in the ledger."""
    return TaskPlan(
        id=f"{task.id}.validate",
        role=VALIDATOR_ROLE,
        model=plan.validation_model,
        max_turns=VALIDATOR_MAX_TURNS,
        description=validation_request(task, state),
    )


def validation_request(task: TaskPlan, state: TaskState) -> str:
    """What the validator is asked: the task as it was given and what it delivered."""
    assignment = "\n\n".join(p for p in (task.description, task.prompt_addition) if p)
    lines = [
        f"Validate the work of task {task.id!r}, done by the {task.role} role.",
        "",
        "The task as it was given:",
        assignment or f"(no description: the {task.role} role's contract is the assignment)",
        "",
        f"Check the work against the goal, this task and the contract of the {task.role} role "
        f"(its section in the team handbook: what it must deliver, record and meet).",
        "",
    ]
    if state.artifacts:
        lines.append("Files it delivered, quoted in full among the upstream artifacts:")
        lines += [f"- {ref.path} ({ref.size} bytes)" for ref in state.artifacts]
    else:
        lines.append("It delivered no files.")
    if state.outputs:
        lines.append(f"Outputs it recorded: {json.dumps(state.outputs, sort_keys=True)}")
    if state.summary:
        lines += ["", "Its closing summary:", state.summary]
    lines += [
        "",
        "Call submit_validation once: passed true, or false with every issue to fix.",
    ]
    return "\n".join(lines)


def submitted_validation(outputs: dict[str, Any]) -> ValidationResult | None:
    raw = outputs.get(VALIDATION_OUTPUT)
    if raw is None:
        return None
    try:
        return ValidationResult.model_validate(raw)
    except ValidationError:
        return None


def validation_outcome(outputs: dict[str, Any]) -> ValidationResult:
    """The round's result; a validator that submitted nothing does not hold the work up.

    Validation is a cheap second look, not a gate: a model that failed to follow its
    instructions must not send an expensive task round again.
    """
    submitted = submitted_validation(outputs)
    if submitted is not None:
        return submitted
    return ValidationResult(
        passed=True, summary="the validator submitted no result; the work was not checked"
    )


def skipped_result(reason: str) -> ValidationResult:
    """A validator that dead-lettered and was skipped by a human: the work stands unchecked."""
    return ValidationResult(passed=True, summary=f"validation skipped ({reason}): not checked")


def rerun_feedback(result: ValidationResult, round_: int) -> str:
    """The issues, as the task's agent reads them in the feedback of its next attempt."""
    lines = [f"Validation of your work failed (round {round_}):"]
    lines += [f"- {issue}" for issue in result.issues]
    if result.summary:
        lines.append(f"Validator's summary: {result.summary}")
    lines.append(
        "Fix every issue above: write each affected file again, complete, with write_file, "
        "record any missing outputs, then end your turn with a short summary."
    )
    return "\n".join(lines)


def should_rerun(round_: int, plan: RunPlan) -> bool:
    """Whether a failure in `round_` (1-based) sends the task round once more."""
    return round_ <= plan.max_validation_rounds


def event_issues(result: ValidationResult) -> list[str]:
    return result.issues[:MAX_ISSUES_IN_EVENT]
