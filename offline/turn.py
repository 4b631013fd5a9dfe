"""One model call as the offline model reads it, and the turn it answers with.

The offline model answers a call by trying its plays in order (see `offline.provider`); a
play is a function that returns the turn it would take, or None when the call is not for it.
A new behaviour (a tool loop, a work-package breakdown) is a new play, not an edit to the
others.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents.conversation import ReceivedNote, parse_notes
from agents.protocol import (
    ContentBlock,
    ModelRequest,
    StopReason,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)


def digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


@dataclass(frozen=True)
class Conversation:
    request: ModelRequest
    model: str
    """The model the answer names: the requested one, else the offline default."""
    task_message: str
    """The text of the first message: goal, upstream files, peers."""
    turn: int
    """How many times the agent has answered already."""
    command_pause_seconds: float = 0.0
    """How long the offline engineer sleeps, as a command of its own, after each test run
    (`OFFLINE_COMMAND_PAUSE_SECONDS`): a window in which tests kill the checks worker."""

    @classmethod
    def of(
        cls, request: ModelRequest, default_model: str, *, command_pause_seconds: float = 0.0
    ) -> Conversation:
        first = request.messages[0] if request.messages else None
        return cls(
            request=request,
            model=request.model or default_model,
            task_message="\n".join(
                block.text for block in first.content if isinstance(block, TextBlock)
            )
            if first
            else "",
            turn=sum(message.role == "assistant" for message in request.messages),
            command_pause_seconds=command_pause_seconds,
        )

    @property
    def role(self) -> str:
        return self.request.role

    @property
    def tool_id_prefix(self) -> str:
        # The digest keeps ids unique across tasks (and revisions) of the same role.
        role_slug = re.sub(r"[^a-z0-9_]", "", self.role) or "agent"
        return f"toolu_off_{role_slug}_{digest(self.task_message)[:8]}"

    def notes(self) -> list[ReceivedNote]:
        return parse_notes(self.request.messages)

    def calls(self) -> list[ToolUseBlock]:
        """Every tool call of the agent's answers so far, in order."""
        return [
            block
            for message in self.request.messages
            if message.role == "assistant"
            for block in message.content
            if isinstance(block, ToolUseBlock)
        ]

    def results(self) -> dict[str, ToolResultBlock]:
        """Every tool result that came back, by the id of its call."""
        return {
            block.tool_use_id: block
            for message in self.request.messages
            if message.role == "user"
            for block in message.content
            if isinstance(block, ToolResultBlock)
        }

    def latest_calls(self) -> list[ToolUseBlock]:
        """The tool calls of the agent's latest answer (none before its first)."""
        answers = [m for m in self.request.messages if m.role == "assistant"]
        if not answers:
            return []
        return [block for block in answers[-1].content if isinstance(block, ToolUseBlock)]

    def offers(self, tool: str) -> bool:
        return any(t.name == tool for t in self.request.tools)

    def says(self, text: str) -> TextBlock:
        """The text that opens a turn, so no reader takes it for a real model's words."""
        return TextBlock(text=f"Offline model ({self.model}, deterministic, no LLM): {text}")


@dataclass(frozen=True)
class Turn:
    content: list[ContentBlock]
    stop_reason: StopReason


def tool_calls(
    conversation: Conversation, *calls: tuple[str, dict[str, Any]]
) -> list[ToolUseBlock]:
    """The turn's calls, numbered; after the first turn the ids name the turn too, so no two
    calls of one conversation share an id."""
    stem = conversation.tool_id_prefix
    if conversation.turn:
        stem += f"_t{conversation.turn}"
    return [
        ToolUseBlock(id=f"{stem}_{n}", name=name, input=data)
        for n, (name, data) in enumerate(calls, start=1)
    ]


Play = Callable[[Conversation], Turn | None]
"""Something the offline model may do on a turn; None when the call is not one for it."""
