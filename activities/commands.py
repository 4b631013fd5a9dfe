"""The command tool where the sandbox is: the tool-call activity on the checks queue.

A command runs on the workspace as the turn sees it (its earlier edits included), its result
is kept under its tool-call key as soon as it ends, and the files it changed become new
versions in the workspace (unless the role's commands are read-only). A retried turn finds
the kept result and applies it again instead of running the command twice.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict

from agents.commands import render_result
from agents.tool_kit import ToolOutcome
from checks.commands import ChangedFile, CommandExecution, execute
from checks.green_runs import keep_green_run
from checks.sandbox import SandboxLimits, SandboxUnavailable
from core.contracts import CommandRun, TurnKey
from core.infrastructure.logs import get_logger
from core.persistence.commands import record_command, recorded_command
from core.persistence.db import CommandResult, Database
from core.persistence.storage import RunWorkspace

log = get_logger(__name__)


class SandboxCommands:
    """One turn's command runner (`agents.tools.CommandRunner`)."""

    def __init__(
        self,
        db: Database,
        workspace: RunWorkspace,
        *,
        limits: SandboxLimits,
        backend: str,
        timeout_seconds: float,
        seconds_left: float | None,
        keep_changes: bool,
    ) -> None:
        self.db = db
        self.workspace = workspace
        self.key: TurnKey = workspace.key
        self.limits = limits
        self.backend = backend
        self.timeout_seconds = timeout_seconds
        self.seconds_left = seconds_left
        self.keep_changes = keep_changes
        self.seconds_used = 0.0

    async def run(self, command: str, *, tool_use_id: str) -> ToolOutcome:
        recorded = await recorded_command(self.db, self.key, tool_use_id)
        if recorded is None:
            timeout = self._timeout()
            if timeout is None:
                return ToolOutcome(
                    content="Error: this task's time for commands is spent; finish with what "
                    "you have, or explain what is left",
                    is_error=True,
                )
            files = await self.workspace.snapshot()
            try:
                execution = await asyncio.to_thread(
                    execute,
                    files,
                    command,
                    timeout_seconds=timeout,
                    limits=self.limits,
                    backend=self.backend,
                )
            except SandboxUnavailable as exc:
                return ToolOutcome(
                    content=f"Error: no sandbox on this worker: {exc}", is_error=True
                )
            recorded = await self._record(tool_use_id, command, execution)
            if execution.green_run is not None:
                # Kept for the files it started from: a check of the same files reuses it.
                await keep_green_run(self.db, self.key.run_id, files, execution.green_run)
            log.info(
                "command ran in the sandbox",
                tool_use_id=tool_use_id,
                exit_code=recorded.exit_code,
                duration_seconds=round(recorded.duration_seconds, 3),
            )
        else:
            # A retried turn: the command finished before, so its kept output is the answer.
            log.info("command answered from the ledger", tool_use_id=tool_use_id)
        self.seconds_used += recorded.duration_seconds
        return await self._outcome(recorded)

    def _timeout(self) -> float | None:
        if self.seconds_left is None:
            return self.timeout_seconds
        left = self.seconds_left - self.seconds_used
        return min(self.timeout_seconds, left) if left >= 1 else None

    async def _record(
        self, tool_use_id: str, command: str, execution: CommandExecution
    ) -> CommandResult:
        kept = [c for c in execution.changes if c.content is not None and self.keep_changes]
        not_kept = [_why_not(c, self.keep_changes) for c in execution.changes if c not in kept]
        not_kept += [
            f"{path} deleted (the workspace keeps its versions)" for path in execution.deleted
        ]
        output = render_result(
            exit_code=execution.exit_code,
            stdout=execution.stdout,
            stderr=execution.stderr,
            limit_reason=execution.limit_reason,
            changed=[c.path for c in kept],
            not_kept=not_kept,
        )
        return await record_command(
            self.db,
            self.key,
            tool_use_id,
            command=command,
            exit_code=execution.exit_code,
            output=output,
            changes_json=json.dumps([asdict(c) for c in kept]),
            duration_seconds=execution.duration_seconds,
        )

    async def _outcome(self, recorded: CommandResult) -> ToolOutcome:
        changes = [ChangedFile(**item) for item in json.loads(recorded.changes)]
        written = [
            await self.workspace.write(c.path, c.content) for c in changes if c.content is not None
        ]
        return ToolOutcome(
            content=recorded.output,
            written=written,
            command=CommandRun(
                turn=self.key.turn,
                command=recorded.command,
                exit_code=recorded.exit_code,
                duration_seconds=round(recorded.duration_seconds, 3),
                changed=[ref.path for ref in written],
            ),
        )


def _why_not(change: ChangedFile, keep_changes: bool) -> str:
    if not keep_changes:
        return f"{change.path} (this role's commands change nothing)"
    return f"{change.path} ({change.reason}, {change.size} bytes)"
