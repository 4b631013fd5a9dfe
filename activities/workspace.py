"""The tool-call activity: run one turn's tool calls against the run's workspace."""

from __future__ import annotations

from typing import Any

from temporalio import activity

from agents.conversation import response_from_json, tool_results_json
from agents.protocol import ToolResultBlock, ToolUseBlock
from agents.tools import ToolInputError, normalize_path
from core import storage
from core.contracts import RUN_TOOL_CALLS, ArtifactRef, ToolCallsInput, ToolCallsResult
from core.db import Database

MAX_READ_CHARS = 100_000


class WorkspaceActivities:
    def __init__(self, db: Database) -> None:
        self.db = db

    @activity.defn(name=RUN_TOOL_CALLS)
    async def run_tool_calls(self, batch: ToolCallsInput) -> ToolCallsResult:
        recorded = await storage.get_tool_results(self.db, batch.key)
        entry = await storage.get_model_call(self.db, batch.key)
        if entry is None:
            raise RuntimeError(f"no recorded model call for {batch.key}")
        result = ToolCallsResult()
        blocks: list[ToolResultBlock] = []
        for call in response_from_json(entry.response).tool_uses:
            try:
                content = await self._run(batch, call, result)
                blocks.append(ToolResultBlock(tool_use_id=call.id, content=content))
            except ToolInputError as exc:
                result.errors += 1
                blocks.append(ToolResultBlock(tool_use_id=call.id, content=str(exc), is_error=True))
        if recorded is None:
            # Writes above are keyed by turn, so re-running them on a retry changed nothing.
            await storage.record_tool_results(self.db, batch.key, tool_results_json(blocks))
        return result

    async def _run(self, batch: ToolCallsInput, call: ToolUseBlock, result: ToolCallsResult) -> str:
        args: dict[str, Any] = call.input
        run_id = batch.key.run_id
        if call.name == "write_file":
            path = normalize_path(args.get("path"))
            content = args.get("content")
            if not isinstance(content, str):
                raise ToolInputError("write_file needs 'content' as a string")
            ref = await storage.write_artifact(
                self.db, batch.key, path=path, content=content, role=batch.role, model=batch.model
            )
            result.written = _replace(result.written, ref)
            return f"wrote {path} ({ref.size} bytes, version {ref.version})"
        if call.name == "read_file":
            path = normalize_path(args.get("path"))
            found = [
                a for a in await storage.latest_artifacts(self.db, run_id, path) if a.path == path
            ]
            if not found:
                raise ToolInputError(f"no file {path!r} in the workspace")
            return found[0].content[:MAX_READ_CHARS]
        if call.name == "list_files":
            prefix = args.get("prefix") or ""
            files = await storage.latest_artifacts(self.db, run_id, str(prefix))
            return "\n".join(f"{a.path} ({a.size} bytes)" for a in files) or "(no files)"
        if call.name == "set_outputs":
            outputs = args.get("outputs")
            if not isinstance(outputs, dict):
                raise ToolInputError("set_outputs needs 'outputs' as an object")
            result.outputs.update(outputs)
            return f"recorded outputs: {', '.join(sorted(outputs))}"
        raise ToolInputError(f"unknown tool {call.name!r}")


def _replace(refs: list[ArtifactRef], ref: ArtifactRef) -> list[ArtifactRef]:
    return [r for r in refs if r.path != ref.path] + [ref]
