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

from agents.conversation import ReceivedNote, parse_notes
from agents.protocol import ContentBlock, ModelRequest, StopReason, TextBlock


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

    @classmethod
    def of(cls, request: ModelRequest, default_model: str) -> Conversation:
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

    def offers(self, tool: str) -> bool:
        return any(t.name == tool for t in self.request.tools)

    def says(self, text: str) -> TextBlock:
        """The text that opens a turn, so no reader takes it for a real model's words."""
        return TextBlock(text=f"Offline model ({self.model}, deterministic, no LLM): {text}")


@dataclass(frozen=True)
class Turn:
    content: list[ContentBlock]
    stop_reason: StopReason


Play = Callable[[Conversation], Turn | None]
"""Something the offline model may do on a turn; None when the call is not one for it."""
