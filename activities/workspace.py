"""The tool-call activity: run one turn's tool calls against the run's workspace."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from agents.conversation import response_from_json, tool_results_json
from agents.protocol import ToolResultBlock
from agents.roles import ROLES
from agents.tools import NoteContext, run_tool
from core.contracts import RUN_TOOL_CALLS, ToolCallsInput, ToolCallsResult
from core.infrastructure.logs import get_logger
from core.persistence import storage
from core.persistence.db import Database

log = get_logger(__name__)


class WorkspaceActivities:
    def __init__(self, db: Database) -> None:
        self.db = db

    @activity.defn(name=RUN_TOOL_CALLS)
    async def run_tool_calls(self, batch: ToolCallsInput) -> ToolCallsResult:
        role = ROLES.get(batch.role)
        if role is None:
            # A retry cannot make the role known: fail the turn, let the task dead-letter.
            raise ApplicationError(
                f"unknown role {batch.role!r}: its tool calls are not run",
                type="UnknownRole",
                non_retryable=True,
            )
        # The registry, not the model's response, says what the agent may do: the same
        # tools `call_model` offered it, and nothing it asks for beyond them.
        allowed = role.tools_for(reviewing=bool(batch.review_of))
        entry = await storage.model_call_of_turn(self.db, batch.key)
        if entry is None:
            raise RuntimeError(f"no recorded model call for {batch.key}")
        result = ToolCallsResult()
        notes = (
            NoteContext(task_id=batch.key.task_id, recipients=frozenset(batch.recipients))
            if batch.recipients
            else None
        )
        blocks: list[ToolResultBlock] = []
        async with storage.turn_workspace(
            self.db, batch.key, role=batch.role, model=batch.model
        ) as workspace:
            # A retry replays the calls: writes are keyed by turn, so they find their rows.
            for call in response_from_json(entry.response).tool_uses:
                outcome = await run_tool(
                    workspace, call.name, call.input, notes, role=batch.role, allowed=allowed
                )
                if outcome.refused:
                    log.warning(
                        "tool call refused: not a tool of the role",
                        tool=call.name,
                        role=batch.role,
                        run_id=batch.key.run_id,
                        task=batch.key.task_id,
                        task_attempt=batch.key.attempt,
                        turn=batch.key.turn,
                        tool_use_id=call.id,
                    )
                blocks.append(
                    ToolResultBlock(
                        tool_use_id=call.id, content=outcome.content, is_error=outcome.is_error
                    )
                )
                result.errors += outcome.is_error
                if outcome.written is not None:
                    result.written = [r for r in result.written if r.path != outcome.written.path]
                    result.written.append(outcome.written)
                result.outputs.update(outcome.outputs)
                if outcome.note is not None:
                    result.notes.append(outcome.note)
                if outcome.wait is not None:
                    result.wait_for_note = outcome.wait
            await workspace.record_results(tool_results_json(blocks))
        return result
