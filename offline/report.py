"""The last turn: once the tool results are back, the agent ends with a summary of what it
wrote, recorded and posted, and of any tool call that failed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TypeVar

from agents.protocol import Message, TextBlock, ToolResultBlock, ToolUseBlock
from offline.contract import api_contract_from
from offline.turn import Conversation, Turn

Block = TypeVar("Block", ToolUseBlock, ToolResultBlock)


def _describe_call(use: ToolUseBlock | None, tool_id: str) -> str:
    if use is None:
        return tool_id
    return f"{use.name} {use.input['path']}" if "path" in use.input else use.name


def _blocks(messages: Iterable[Message], sender: str, kind: type[Block]) -> list[Block]:
    """The `kind` blocks of every message `sender` sent, in order."""
    return [
        block
        for message in messages
        if message.role == sender
        for block in message.content
        if isinstance(block, kind)
    ]


def report(conversation: Conversation) -> Turn:
    """The closing turn; it answers any call no other play took."""
    messages = conversation.request.messages
    uses = {use.id: use for use in _blocks(messages, "assistant", ToolUseBlock)}
    results = {res.tool_use_id: res for res in _blocks(messages, "user", ToolResultBlock)}

    def succeeded(tool: str) -> list[ToolUseBlock]:
        return [
            use
            for tool_id, use in uses.items()
            if use.name == tool and tool_id in results and not results[tool_id].is_error
        ]

    written = [str(use.input.get("path")) for use in succeeded("write_file")]
    failed = [
        f"{_describe_call(uses.get(tool_id), tool_id)}: {result.content}"
        for tool_id, result in results.items()
        if result.is_error
    ]
    parts = [f"Offline model ({conversation.model}): done."]
    parts.append(f"Wrote {', '.join(written)}." if written else "Wrote no files.")
    for use in succeeded("set_outputs"):
        recorded = use.input.get("outputs", {})
        parts.append(f"Recorded outputs {json.dumps(recorded, sort_keys=True)}.")
    for use in succeeded("post_note"):
        parts.append(f"Posted note {use.input.get('subject')!r} to {use.input.get('to')}.")
    contract = api_contract_from(conversation.notes())
    if contract is not None and any(path.startswith("frontend/") for path in written):
        received, lines = contract
        parts.append(
            f"API contract from {received.from_task} ({received.from_role}), used in the "
            f"frontend: {', '.join(lines)}."
        )
    if failed:
        parts.append(f"{len(failed)} tool call(s) failed: {'; '.join(failed)}.")
    return Turn([TextBlock(text=" ".join(parts))], "end_turn")
