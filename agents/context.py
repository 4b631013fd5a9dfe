"""The first user message of a task: goal, the upstream artifacts it builds on, the task.

The format is stable XML-ish tags so both humans and the offline model can read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agents.protocol import CacheControl, TextBlock

GOAL_RE = re.compile(r"<goal>\n?(.*?)\n?</goal>", re.S)
REVIEW_RE = re.compile(r'<review-request task="([^"]+)">')
ARTIFACT_RE = re.compile(r'<artifact path="([^"]+)"[^>]*>\n?(.*?)\n?</artifact>', re.S)


@dataclass(frozen=True)
class UpstreamFile:
    path: str
    task_id: str
    content: str


REPOSITORY_TAG = "repository"
"""The task message's block holding a change run's repository map."""
TEST_COMMAND_LINE = "The repository's own tests run with: "
"""Ends a change run's repository block, followed by the command in backquotes."""


def task_message_blocks(
    *,
    goal: str,
    task_id: str,
    role: str,
    description: str,
    upstream: list[UpstreamFile],
    feedback: str = "",
    review_of: str | None = None,
    assignment: str = "",
    repository_map: str = "",
    work_breakdown: str = "",
) -> list[TextBlock]:
    """The task's first message as blocks, shared context first.

    The goal and the upstream artifacts come before anything task-specific, in the run's
    task order, so agents of one run send the same leading blocks; the last upstream block
    carries a cache breakpoint, and the provider's prompt cache serves that prefix to every
    later agent whose upstream starts the same way. `feedback` carries findings to fix,
    `review_of` asks for a review, `assignment` names the role the agent plays.
    """
    blocks = [TextBlock(text=f"<goal>\n{goal}\n</goal>")]
    blocks.extend(
        TextBlock(text=f'<artifact path="{f.path}" task="{f.task_id}">\n{f.content}\n</artifact>')
        for f in upstream
    )
    if upstream:
        blocks[-1].cache_control = CacheControl()
    parts = [f'<task id="{task_id}" role="{role}">\n{description or task_id}\n</task>']
    if repository_map:
        # Ranked for this task, so after the shared prefix: the files themselves are read
        # on demand with the editor tool.
        parts.append(f"<{REPOSITORY_TAG}>\n{repository_map}\n</{REPOSITORY_TAG}>")
    if assignment:
        parts.append(assignment)
    if work_breakdown:
        parts.append(work_breakdown)
    if feedback:
        parts.append(f"<feedback>\n{feedback}\n</feedback>")
    if review_of:
        parts.append(
            f'<review-request task="{review_of}">\nReview the work of task {review_of!r} in '
            "the upstream artifacts and call submit_verdict: 'pass' to accept it, 'block' "
            "with findings (file, line, severity, suggested fix) to send it back.\n"
            "</review-request>"
        )
    parts.append(
        "Do your part of the goal with the workspace tools: write every deliverable with "
        "write_file, record decisions later tasks branch on with set_outputs, and end your "
        "turn with a short summary when you are done."
    )
    blocks.append(TextBlock(text="\n\n".join(parts)))
    return blocks


def build_task_message(**fields: Any) -> str:
    """The task's first message as one text (see `task_message_blocks` for the fields)."""
    return "\n\n".join(block.text for block in task_message_blocks(**fields))


def parse_review_request(message: str) -> str | None:
    match = REVIEW_RE.search(message)
    return match.group(1) if match else None


def parse_goal(message: str) -> str:
    match = GOAL_RE.search(message)
    return match.group(1).strip() if match else message.strip()


def parse_upstream(message: str) -> dict[str, str]:
    """Path -> content of every upstream artifact quoted in a task message."""
    return {path: content for path, content in ARTIFACT_RE.findall(message)}
