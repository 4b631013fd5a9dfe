"""The last turn: once the tool results are back, the agent ends with a summary of what it
wrote, edited, ran, recorded and posted, and of any tool call that failed."""

from __future__ import annotations

import json

from agents.commands import COMMAND_TOOL
from agents.editor import EDIT_TOOL
from agents.protocol import TextBlock, ToolResultBlock, ToolUseBlock
from offline.contract import api_contract_from
from offline.pytest_report import read_test_run
from offline.turn import Conversation, Turn


def _describe_call(use: ToolUseBlock | None, tool_id: str) -> str:
    if use is None:
        return tool_id
    return f"{use.name} {use.input['path']}" if "path" in use.input else use.name


def _ran(use: ToolUseBlock, result: ToolResultBlock) -> str:
    """One command and how it ended, as its result says (the tally without its timing)."""
    run = read_test_run(result.content)
    ended = "did not finish" if run.exit_code is None else f"exit {run.exit_code}"
    tally = f", {run.tally}" if run.tally else ""
    return f"`{use.input.get('command')}` ({ended}{tally})"


def _editor_parts(succeeded: list[ToolUseBlock]) -> list[str]:
    edited = [use for use in succeeded if use.input.get("command") in ("str_replace", "insert")]
    if not edited:
        return []
    paths = ", ".join(dict.fromkeys(str(use.input.get("path")) for use in edited))
    return [f"Edited {paths} in place ({len(edited)} edit(s))."]


def report(conversation: Conversation) -> Turn:
    """The closing turn; it answers any call no other play took."""
    uses = {use.id: use for use in conversation.calls()}
    results = conversation.results()

    def succeeded(tool: str) -> list[ToolUseBlock]:
        return [
            use
            for tool_id, use in uses.items()
            if use.name == tool and tool_id in results and not results[tool_id].is_error
        ]

    edits = succeeded(EDIT_TOOL)
    created = [use for use in edits if use.input.get("command") == "create"]
    written = [str(use.input.get("path")) for use in [*succeeded("write_file"), *created]]
    failed = [
        f"{_describe_call(uses.get(tool_id), tool_id)}: {result.content}"
        for tool_id, result in results.items()
        if result.is_error
    ]
    parts = [f"Offline model ({conversation.model}): done."]
    parts.append(f"Wrote {', '.join(written)}." if written else "Wrote no files.")
    parts += _editor_parts(edits)
    commands = [_ran(use, results[use.id]) for use in succeeded(COMMAND_TOOL)]
    if commands:
        parts.append(f"Ran {'; then '.join(commands)}.")
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
