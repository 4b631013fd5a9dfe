"""The first user message of a task: goal, task, and the upstream artifacts it builds on.

The format is stable XML-ish tags so both humans and the offline model can read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GOAL_RE = re.compile(r"<goal>\n?(.*?)\n?</goal>", re.S)
REVIEW_RE = re.compile(r'<review-request task="([^"]+)">')
ARTIFACT_RE = re.compile(r'<artifact path="([^"]+)"[^>]*>\n?(.*?)\n?</artifact>', re.S)


@dataclass(frozen=True)
class UpstreamFile:
    path: str
    task_id: str
    content: str


def build_task_message(
    *,
    goal: str,
    task_id: str,
    role: str,
    description: str,
    upstream: list[UpstreamFile],
    feedback: str = "",
    review_of: str | None = None,
) -> str:
    """The task's first message; `feedback` carries findings to fix, `review_of` asks for a review."""
    parts = [
        f"<goal>\n{goal}\n</goal>",
        f'<task id="{task_id}" role="{role}">\n{description or task_id}\n</task>',
    ]
    if feedback:
        parts.append(f"<feedback>\n{feedback}\n</feedback>")
    if review_of:
        parts.append(
            f'<review-request task="{review_of}">\nReview the work of task {review_of!r} in '
            "the upstream artifacts and call submit_verdict: 'pass' to accept it, 'block' "
            "with findings (file, line, severity, suggested fix) to send it back.\n"
            "</review-request>"
        )
    if upstream:
        files = "\n".join(
            f'<artifact path="{f.path}" task="{f.task_id}">\n{f.content}\n</artifact>'
            for f in upstream
        )
        parts.append(f"<upstream>\n{files}\n</upstream>")
    parts.append(
        "Do your part of the goal with the workspace tools: write every deliverable with "
        "write_file, record decisions later tasks branch on with set_outputs, and end your "
        "turn with a short summary when you are done."
    )
    return "\n\n".join(parts)


def parse_review_request(message: str) -> str | None:
    match = REVIEW_RE.search(message)
    return match.group(1) if match else None


def parse_goal(message: str) -> str:
    match = GOAL_RE.search(message)
    return match.group(1).strip() if match else message.strip()


def parse_upstream(message: str) -> dict[str, str]:
    """Path -> content of every upstream artifact quoted in a task message."""
    return {path: content for path, content in ARTIFACT_RE.findall(message)}
