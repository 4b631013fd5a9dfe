"""The tool-call activity: run one turn's tool calls against the run's workspace.

It runs on the checks queue, where the sandbox is, for a turn whose calls include commands.
A turn without commands has its calls run by the model-call activity right after the
answer (`run_turn_tools`), or, on a worker that does not, by this activity on the
orchestrator queue. A retry after the turn committed returns the recorded
outcome; a retry before that replays the calls, whose writes and commands are keyed.
"""

from __future__ import annotations

from collections import Counter

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.commands import SandboxCommands
from activities.heartbeat import heartbeating
from agents.conversation import response_from_json, tool_results_json
from agents.protocol import ModelResponse, ToolResultBlock
from agents.roles import ROLES, Role
from agents.tool_kit import ToolOutcome
from agents.tools import NoteContext, run_tool
from checks.dependencies import sandbox_warning
from checks.sandbox import SandboxLimits
from core.contracts import RUN_TOOL_CALLS, ToolCallsInput, ToolCallsResult
from core.infrastructure.logs import get_logger
from core.infrastructure.settings import SandboxSettings
from core.persistence import storage
from core.persistence.db import Database

log = get_logger(__name__)


class WorkspaceActivities:
    def __init__(self, db: Database, sandbox: SandboxSettings | None = None) -> None:
        self.db = db
        self.sandbox = sandbox
        """None where no sandbox runs (the orchestrator queue): commands are refused there."""

    @activity.defn(name=RUN_TOOL_CALLS)
    async def run_tool_calls(self, batch: ToolCallsInput) -> ToolCallsResult:
        return await self.run_turn_tools(batch)

    async def run_turn_tools(
        self, batch: ToolCallsInput, response: ModelResponse | None = None
    ) -> ToolCallsResult:
        """The turn's tool calls, once: in this activity, or in the model call's
        (`ModelActivities`), which runs them right after an answer without commands and
        passes that answer (else it is read from the turn's ledger row)."""
        role = ROLES.get(batch.role)
        if role is None:
            # A retry cannot make the role known: fail the turn, let the task dead-letter.
            raise ApplicationError(
                f"unknown role {batch.role!r}: its tool calls are not run",
                type="UnknownRole",
                non_retryable=True,
            )
        if response is None:
            entry = await storage.model_call_of_turn(self.db, batch.key)
            if entry is None:
                raise RuntimeError(f"no recorded model call for {batch.key}")
            response = response_from_json(entry.response)
        async with storage.turn_workspace(
            self.db, batch.key, role=batch.role, model=batch.model
        ) as workspace:
            recorded = await workspace.recorded_outcome()
            if recorded is not None:
                return ToolCallsResult.model_validate_json(recorded)
            result, blocks = await heartbeating(self._run_calls(batch, role, workspace, response))
            stored = await workspace.flush()
            result.written = [stored[ref.path] for ref in result.written]
            await workspace.record_results(tool_results_json(blocks), result.model_dump_json())
        return result

    async def _run_calls(
        self,
        batch: ToolCallsInput,
        role: Role,
        workspace: storage.RunWorkspace,
        response: ModelResponse,
    ) -> tuple[ToolCallsResult, list[ToolResultBlock]]:
        # The registry, not the model's response, says what the agent may do: the same
        # tools `call_model` offered it, and nothing it asks for beyond them.
        allowed = role.tools_for(reviewing=bool(batch.review_of), planning=batch.plans_work)
        notes = (
            NoteContext(task_id=batch.key.task_id, recipients=frozenset(batch.recipients))
            if batch.recipients
            else None
        )
        commands = self._commands(batch, role, workspace)
        result, blocks = ToolCallsResult(), []
        counts: Counter[str] = Counter()
        for call in response.tool_uses:
            counts[call.name] += 1
            outcome = await run_tool(
                workspace,
                call.name,
                call.input,
                notes,
                role=batch.role,
                allowed=allowed,
                commands=commands,
                tool_use_id=call.id,
            )
            outcome.content += await _sandbox_warnings(workspace, outcome)
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
            _collect(result, outcome)
        result.tool_counts = dict(counts)
        return result, blocks

    def _commands(
        self, batch: ToolCallsInput, role: Role, workspace: storage.RunWorkspace
    ) -> SandboxCommands | None:
        if self.sandbox is None:
            return None
        return SandboxCommands(
            self.db,
            workspace,
            limits=SandboxLimits.from_settings(self.sandbox),
            backend=self.sandbox.backend,
            timeout_seconds=batch.command_timeout_seconds,
            seconds_left=batch.command_seconds_left,
            keep_changes=role.keeps_command_changes,
        )


async def _sandbox_warnings(workspace: storage.RunWorkspace, outcome: ToolOutcome) -> str:
    """A dependency file naming what the sandbox lacks: the agent hears at once, not at the gate."""
    warnings = []
    for ref in outcome.written:
        content = await workspace.read(ref.path)
        warning = sandbox_warning(ref.path, content) if content is not None else None
        if warning is not None:
            warnings.append(warning)
    return "".join(f"\n{w}" for w in warnings)


def _collect(result: ToolCallsResult, outcome: ToolOutcome) -> None:
    """Fold one call's outcome into the turn's result, in call order."""
    result.errors += outcome.is_error
    for ref in outcome.written:
        result.written = [r for r in result.written if r.path != ref.path]
        result.written.append(ref)
    result.outputs.update(outcome.outputs)
    if outcome.note is not None:
        result.notes.append(outcome.note)
    if outcome.wait is not None:
        result.wait_for_note = outcome.wait
    if outcome.command is not None:
        result.commands.append(outcome.command)
