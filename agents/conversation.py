"""Rebuild an agent's conversation from what storage holds, turn by turn."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import TypeAdapter

from agents.protocol import ContentBlock, Message, ModelResponse, TextBlock, ToolResultBlock
from core.contracts import AgentNote, DeliveredNote, FollowUp

_BLOCKS = TypeAdapter(list[ContentBlock])

NOTE_RE = re.compile(
    r'<note seq="(\d+)" from="([^"]*)" role="([^"]*)" subject="([^"]*)">\n(.*?)\n</note>', re.S
)
PEER_RE = re.compile(r"^- (\S+) \(([^)]+)\)$", re.M)


def response_json(response: ModelResponse) -> str:
    return response.model_dump_json()


def response_from_json(text: str) -> ModelResponse:
    return ModelResponse.model_validate_json(text)


def tool_results_json(blocks: list[ToolResultBlock]) -> str:
    return json.dumps([b.model_dump() for b in blocks])


def tool_results_from_json(text: str) -> list[ContentBlock]:
    return _BLOCKS.validate_json(text)


def build_messages(
    first_message: str | Sequence[TextBlock],
    responses: list[ModelResponse],
    tool_results: list[list[ContentBlock]],
    notes: Iterable[DeliveredNote] = (),
    peers: Mapping[str, str] | None = None,
    followups: Iterable[FollowUp] = (),
) -> list[Message]:
    """The task message, then for each earlier turn the model's answer and its tool results.

    `tool_results[k]` answers turn k (empty for a turn that called no tools). Notes from
    other agents go into the user message of the turn they were first delivered at: turn 0
    is the task message, turn k the message with turn k-1's tool results. They come after
    the task text and after the tool results (Anthropic rejects text before tool_result
    blocks), and a note stamped for a turn with no tool results gets a user message of its
    own. The workflow's follow-up to turn k (e.g. the failures of the task's own checks)
    closes the user message after turn k's answer. Either way a message stays where it
    first appeared, so the turns before the newest are the same on every rebuild (the
    prompt cache relies on it).
    """
    first = (
        [TextBlock(text=first_message)] if isinstance(first_message, str) else list(first_message)
    )
    if peers:
        first.append(TextBlock(text=render_peers(peers)))
    by_turn: dict[int, list[TextBlock]] = {}
    for delivered in sorted(notes, key=lambda d: (d.turn, d.note.seq)):
        by_turn.setdefault(delivered.turn, []).append(TextBlock(text=render_note(delivered.note)))
    after: dict[int, list[TextBlock]] = {}
    for followup in followups:
        after.setdefault(followup.turn, []).append(TextBlock(text=followup.text))
    messages = [Message(role="user", content=[*first, *by_turn.get(0, [])])]
    for turn, response in enumerate(responses):
        messages.append(Message(role="assistant", content=list(response.content)))
        results = tool_results[turn] if turn < len(tool_results) else []
        added = [*by_turn.get(turn + 1, []), *after.get(turn, [])]
        if results or added:
            messages.append(Message(role="user", content=[*results, *added]))
    return messages


def render_note(note: AgentNote) -> str:
    def attr(value: str) -> str:
        return html.escape(value, quote=True)

    return (
        f'<note seq="{note.seq}" from="{attr(note.from_task)}" role="{attr(note.from_role)}" '
        f'subject="{attr(note.subject)}">\n{note.text}\n</note>'
    )


def render_peers(peers: Mapping[str, str]) -> str:
    listed = "\n".join(f"- {task_id} ({role})" for task_id, role in peers.items())
    return (
        "<peers>\nThese tasks may run at the same time as yours. Tell them what they need "
        'from you with post_note (to: a task id, a role or "all"); notes to you arrive as '
        f"<note> blocks.\n{listed}\n</peers>"
    )


@dataclass(frozen=True)
class ReceivedNote:
    seq: int
    from_task: str
    from_role: str
    subject: str
    text: str


def parse_notes(messages: Iterable[Message]) -> list[ReceivedNote]:
    """Every note delivered in a conversation, in the order it shows them."""
    found: list[ReceivedNote] = []
    for message in messages:
        if message.role != "user":
            continue
        for block in message.content:
            if isinstance(block, TextBlock):
                found.extend(
                    ReceivedNote(
                        int(seq),
                        html.unescape(sender),
                        html.unescape(role),
                        html.unescape(subject),
                        text,
                    )
                    for seq, sender, role, subject, text in NOTE_RE.findall(block.text)
                )
    return found


def parse_peers(message: str) -> dict[str, str]:
    """Task id -> role of the peers a task message names."""
    start, end = message.find("<peers>"), message.find("</peers>")
    if start < 0 or end < start:
        return {}
    return dict(PEER_RE.findall(message[start:end]))
