"""The turn on which an agent does its work: the offline model writes the role's
deliverables and records its outputs (or, as validator or supervisor, gives its verdict)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agents.context import parse_goal, parse_review_request, parse_upstream
from agents.protocol import ContentBlock, ToolUseBlock
from core.contracts import BREAKDOWN_TOOL, VALIDATOR_ROLE
from offline.blueprint import Blueprint
from offline.breakdown import plan_work
from offline.contract import CONTRACT_SUBJECT, api_contract_note, contract_readers
from offline.job import Deliverable
from offline.roster import deliverables
from offline.turn import Conversation, Turn, tool_calls
from offline.validation import validation_input


def delivery_turn(conversation: Conversation) -> int:
    """The turn that writes the deliverables: the first, or the one after waiting for a note."""
    answers = [m for m in conversation.request.messages if m.role == "assistant"]
    waited = bool(answers) and any(
        isinstance(block, ToolUseBlock) and block.name == "wait_for_note"
        for block in answers[0].content
    )
    return 1 if waited else 0


def _validate(conversation: Conversation) -> list[ContentBlock]:
    result = validation_input(parse_upstream(conversation.task_message))
    verdict = "passes" if result["passed"] else f"fails: {len(result['issues'])} issues"
    return [
        conversation.says(f"the work {verdict}."),
        *tool_calls(conversation, ("submit_validation", result)),
    ]


def _supervise(conversation: Conversation, reviewed: str) -> list[ContentBlock]:
    # The offline model accepts what its own templates produced.
    accept = {"verdict": "pass", "summary": f"{reviewed}: accepted by {conversation.role}"}
    return [
        conversation.says(f"reviewing {reviewed}."),
        *tool_calls(conversation, ("submit_verdict", accept)),
    ]


def role_deliverable(conversation: Conversation) -> Deliverable:
    """What the conversation's role delivers for its goal, upstream files and notes."""
    return deliverables(
        conversation.role,
        parse_goal(conversation.task_message),
        parse_upstream(conversation.task_message),
        conversation.model,
        conversation.notes(),
    )


Call = tuple[str, dict[str, Any]]
FileCall = Callable[[str, str], Call]


def write_file_call(path: str, content: str) -> Call:
    return ("write_file", {"path": path, "content": content})


def write_turn(
    conversation: Conversation,
    made: Deliverable,
    file_call: FileCall = write_file_call,
    then: str = "",
) -> list[ContentBlock]:
    """The turn that delivers `made`: its files (each by `file_call`), its outputs and
    verdict, and the API contract to the frontend engineers beside it; `then` ends the
    opening sentence with what the agent does next."""
    calls = [file_call(path, content) for path, content in made.files.items()]
    if made.outputs:
        calls.append(("set_outputs", {"outputs": made.outputs}))
    if made.verdict and conversation.offers("submit_verdict"):
        calls.append(("submit_verdict", made.verdict))
    breakdown = (
        plan_work(conversation.task_message, parse_goal(conversation.task_message))
        if conversation.offers(BREAKDOWN_TOOL)
        else None
    )
    if breakdown is not None:
        calls.append((BREAKDOWN_TOOL, breakdown.model_dump(mode="json")))
    contract_to = contract_readers(conversation)
    if contract_to:
        note = api_contract_note(Blueprint.from_goal(parse_goal(conversation.task_message)))
        calls += [
            ("post_note", {"to": task_id, "subject": CONTRACT_SUBJECT, "text": note})
            for task_id in contract_to
        ]
    recorded = f" and recording {', '.join(made.outputs)}" if made.outputs else ""
    telling = f", telling {', '.join(contract_to)} the API contract" if contract_to else ""
    intro = conversation.says(f"writing {', '.join(made.files)}{recorded}{telling}{then}.")
    return [intro, *tool_calls(conversation, *calls)]


def deliver(conversation: Conversation) -> Turn | None:
    if conversation.turn != delivery_turn(conversation):
        return None
    if conversation.role == VALIDATOR_ROLE:
        return Turn(_validate(conversation), "tool_use")
    reviewed = parse_review_request(conversation.task_message)
    if reviewed is not None:
        return Turn(_supervise(conversation, reviewed), "tool_use")
    return Turn(write_turn(conversation, role_deliverable(conversation)), "tool_use")
