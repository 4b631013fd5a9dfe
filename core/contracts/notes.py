"""Notes between agents: what they post, how the workflow numbers and delivers them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class NoteDraft(BaseModel):
    """What an agent's `post_note` call says; the workflow numbers and stamps it."""

    to: str
    """A task id, a role, or `all`."""
    subject: str
    text: str


class AgentNote(NoteDraft):
    """A note one agent posted to others: part of the run's state, delivered at their next turn."""

    seq: int
    from_task: str
    from_role: str
    turn: int
    """The sender's turn (0-based) whose tool calls posted it."""
    at: datetime


class DeliveredNote(BaseModel):
    """A note as one receiver gets it in a model call."""

    note: AgentNote
    turn: int
    """The receiver's turn at which it was first delivered: its conversation keeps it there."""


class NoteWait(BaseModel):
    """A `wait_for_note` call: the workflow holds the agent's next turn until a note comes."""

    sender: str | None = None
    """A task id or role the note must come from; None: anyone."""
    timeout_seconds: float
