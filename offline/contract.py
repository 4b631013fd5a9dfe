"""The API contract the backend engineer posts to the frontend engineers working beside it,
and finding it again among the notes an agent received."""

from __future__ import annotations

import re
from collections.abc import Iterable

from agents.context import parse_review_request
from agents.conversation import ReceivedNote, parse_peers
from agents.protocol import ToolUseBlock
from offline.blueprint import Blueprint, endpoints
from offline.turn import Conversation, Turn

CONTRACT_SUBJECT = "API contract"
_CONTRACT_LINE = re.compile(r"^(?:GET|POST|PUT|PATCH|DELETE) /\S*", re.M)


def api_contract_note(bp: Blueprint) -> str:
    """What the backend engineer tells the frontend engineer: every endpoint it serves."""
    lines = [
        f"{ep.method} {ep.path}{' (bearer token)' if ep.auth else ''}: body {ep.body}, "
        f"{ep.success}; errors {ep.errors}"
        for ep in endpoints(bp)
    ]
    auth = (
        " Sign in with POST /auth/login and send `Authorization: Bearer <access_token>`."
        if bp.auth
        else ""
    )
    return (
        f"{bp.project.removesuffix(' API')} API at http://127.0.0.1:8000 (JSON bodies; backend/README.md has the "
        f"details).{auth}\n" + "\n".join(lines)
    )


def api_contract_from(notes: Iterable[ReceivedNote]) -> tuple[ReceivedNote, list[str]] | None:
    """The newest note from a backend engineer that lists endpoints, with those endpoints."""
    for note in reversed(list(notes)):
        found = _CONTRACT_LINE.findall(note.text)
        if note.from_role == "backend_engineer" and found:
            return note, found
    return None


def _peers_with_role(conversation: Conversation, role: str, tool: str) -> list[str]:
    """Peer tasks of `role` named in the task message, when the request offers `tool`."""
    if not conversation.offers(tool):
        return []
    peers = parse_peers(conversation.task_message)
    return [task_id for task_id, peer_role in peers.items() if peer_role == role]


def _is_review(conversation: Conversation) -> bool:
    return parse_review_request(conversation.task_message) is not None


def contract_readers(conversation: Conversation) -> list[str]:
    """A backend engineer tells the frontend engineers running beside it its endpoints."""
    if conversation.role != "backend_engineer" or _is_review(conversation):
        return []
    return _peers_with_role(conversation, "frontend_engineer", "post_note")


def _awaited_backend(conversation: Conversation) -> str | None:
    """The backend task a frontend engineer waits for before writing its API client."""
    if conversation.role != "frontend_engineer" or _is_review(conversation):
        return None
    if api_contract_from(conversation.notes()) is not None:
        return None  # the contract is already here
    backends = _peers_with_role(conversation, "backend_engineer", "wait_for_note")
    return backends[0] if backends else None


def wait_for_contract(conversation: Conversation) -> Turn | None:
    """A frontend engineer's first turn, when a backend peer will post the API contract."""
    if conversation.turn != 0:
        return None
    backend = _awaited_backend(conversation)
    if backend is None:
        return None
    wait = ToolUseBlock(
        id=f"{conversation.tool_id_prefix}_wait",
        name="wait_for_note",
        input={"from": backend, "timeout_seconds": 300},
    )
    text = f"waiting for the API contract from {backend} before writing the frontend."
    return Turn([conversation.says(text), wait], "tool_use")
