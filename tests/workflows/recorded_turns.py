"""A task's turns as the database recorded them: the ledger's model answers, the tool results
each turn got back, and the commands kept under their tool-call keys."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select

from agents.commands import COMMAND_TOOL
from agents.conversation import response_from_json, tool_results_from_json
from agents.editor import EDIT_TOOL
from agents.protocol import ToolResultBlock, ToolUseBlock
from core.persistence import storage
from core.persistence.db import CommandResult, Database, ToolResultsEntry


@dataclass(frozen=True)
class RecordedTurn:
    turn: int
    stop_reason: str
    calls: list[ToolUseBlock]
    results: dict[str, ToolResultBlock]

    @property
    def steps(self) -> list[str]:
        """What the agent did, in order: the editor's command or the tool's name; `end` for
        an answer without tool calls."""
        if not self.calls:
            return ["end"]
        return [
            str(call.input.get("command")) if call.name == EDIT_TOOL else call.name
            for call in self.calls
        ]

    def commands(self) -> list[ToolUseBlock]:
        return [call for call in self.calls if call.name == COMMAND_TOOL]


async def recorded_turns(db: Database, workflow_id: str, task_id: str) -> list[RecordedTurn]:
    """The task's turns (every attempt) in order, each with the results its calls got."""
    entries = [e for e in await storage.ledger_entries(db, workflow_id) if e.task_id == task_id]
    async with db.session() as session:
        found = await session.execute(
            select(ToolResultsEntry).where(
                ToolResultsEntry.workflow_id == workflow_id, ToolResultsEntry.task_id == task_id
            )
        )
        results = {(r.attempt, r.turn): r.results for r in found.scalars()}
    turns = []
    for entry in sorted(entries, key=lambda e: (e.attempt, e.turn)):
        blocks = tool_results_from_json(results.get((entry.attempt, entry.turn), "[]"))
        turns.append(
            RecordedTurn(
                turn=entry.turn,
                stop_reason=entry.stop_reason,
                calls=response_from_json(entry.response).tool_uses,
                results={b.tool_use_id: b for b in blocks if isinstance(b, ToolResultBlock)},
            )
        )
    return turns


async def command_rows(db: Database, workflow_id: str, task_id: str) -> list[CommandResult]:
    """The commands the task ran, as `command_results` kept them, oldest first."""
    async with db.session() as session:
        found = await session.execute(
            select(CommandResult)
            .where(CommandResult.workflow_id == workflow_id, CommandResult.task_id == task_id)
            .order_by(col(CommandResult.id))
        )
        return list(found.scalars())
