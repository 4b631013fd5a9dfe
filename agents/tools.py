"""Workspace tools the agents call, as the model sees them and as they run.

The workspace itself is storage (`core.persistence.storage`); this module only translates a
tool call into workspace operations and back into a tool result.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from agents.commands import COMMAND_TOOL, COMMAND_TOOL_DEFINITION, command_of
from agents.editor import EDIT_TOOL, EDIT_TOOL_DEFINITION, edit
from agents.protocol import ToolDefinition
from agents.tool_kit import (
    MAX_READ_CHARS,
    ToolInputError,
    ToolOutcome,
    Workspace,
    normalize_path,
    require_printable,
)
from core.contracts import (
    BREAKDOWN_TOOL,
    NOTE_TO_ALL,
    VALIDATION_OUTPUT,
    VERDICT_OUTPUT,
    WORK_PACKAGES_OUTPUT,
    NoteDraft,
    NoteWait,
    ReviewVerdict,
    ValidationResult,
    WorkBreakdown,
)

MAX_NOTE_SUBJECT_CHARS = 200
MAX_NOTE_CHARS = 20_000
"""Notes live in the workflow's state (and history): a contract, not a whole file."""
DEFAULT_NOTE_WAIT_SECONDS = 600.0
MAX_NOTE_WAIT_SECONDS = 3600.0

M = TypeVar("M", bound=BaseModel)

TOOL_DEFINITIONS: dict[str, ToolDefinition] = {
    tool.name: tool
    for tool in (
        ToolDefinition(
            name="write_file",
            description="Create or overwrite a file in the run's workspace (the delivered repository).",
            input_schema={
                "type": "object",
                "properties": {
                    "path": {
                        "type": "string",
                        "description": "Relative POSIX path, e.g. backend/app.py",
                    },
                    "content": {"type": "string", "description": "Full file content"},
                },
                "required": ["path", "content"],
            },
        ),
        ToolDefinition(
            name="read_file",
            description="Read a file from the run's workspace.",
            input_schema={
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        ),
        ToolDefinition(
            name="list_files",
            description="List the files in the run's workspace, optionally under a folder.",
            input_schema={
                "type": "object",
                "properties": {"prefix": {"type": "string", "description": "Folder, e.g. docs/"}},
            },
        ),
        ToolDefinition(
            name="set_outputs",
            description=(
                "Record named decisions (booleans, numbers, short strings) that later tasks "
                'can branch on, e.g. {"needs_data_science": false}.'
            ),
            input_schema={
                "type": "object",
                "properties": {"outputs": {"type": "object"}},
                "required": ["outputs"],
            },
        ),
        ToolDefinition(
            name="submit_verdict",
            description=(
                "Reviewers only: submit your verdict on the work under review, 'pass' or "
                "'block', with every finding (severity high blocks; say file, line and a "
                "suggested fix)."
            ),
            input_schema=ReviewVerdict.model_json_schema(),
        ),
        ToolDefinition(
            name="submit_validation",
            description=(
                "Validators only: submit your result on the task's work: passed true when it "
                "delivers what its description and role contract ask, else false with every "
                "issue (one actionable sentence each)."
            ),
            input_schema=ValidationResult.model_json_schema(),
        ),
        ToolDefinition(
            name="post_note",
            description=(
                "Post a note to other agents of this run, e.g. the API contract for the "
                'frontend engineer. `to` is a task id, a role, or "all". Each recipient '
                "gets it with its next turn (or its first, if it has not started); the note "
                "also shows in the run's status."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "to": {
                        "type": "string",
                        "description": "A task id (e.g. frontend), a role (e.g. "
                        'frontend_engineer) or "all"',
                    },
                    "subject": {"type": "string", "maxLength": MAX_NOTE_SUBJECT_CHARS},
                    "text": {"type": "string", "maxLength": MAX_NOTE_CHARS},
                },
                "required": ["to", "subject", "text"],
            },
        ),
        ToolDefinition(
            name="wait_for_note",
            description=(
                "Pause until another agent posts a note to you, when you cannot go on "
                "without it (e.g. the API contract from the backend engineer). `from` is "
                "the task id or role it must come from (leave it out for anyone). You go on "
                "at once if no such task is running, else when the note comes or after "
                "`timeout_seconds`; the note comes with your next turn."
            ),
            input_schema={
                "type": "object",
                "properties": {
                    "from": {"type": "string"},
                    "timeout_seconds": {
                        "type": "number",
                        "minimum": 1,
                        "maximum": MAX_NOTE_WAIT_SECONDS,
                        "default": DEFAULT_NOTE_WAIT_SECONDS,
                    },
                },
            },
        ),
        ToolDefinition(
            name=BREAKDOWN_TOOL,
            description=(
                "Planners of a stage only: submit the work breakdown that replaces the "
                "stage's fixed tasks. Each package becomes one task: an id, a role from the "
                "stage's roles, what it depends on (other packages, or tasks before the "
                "stage), a description, acceptance criteria, and the files or folders it "
                "owns (a folder ends in /; no path owned twice). Independent packages run "
                "in parallel. Submit again to replace it; the run says what was refused."
            ),
            input_schema=WorkBreakdown.model_json_schema(),
        ),
        EDIT_TOOL_DEFINITION,
        COMMAND_TOOL_DEFINITION,
    )
}


STRUCTURED_OUTPUTS = {
    VERDICT_OUTPUT: "submit_verdict",
    VALIDATION_OUTPUT: "submit_validation",
    WORK_PACKAGES_OUTPUT: BREAKDOWN_TOOL,
}
"""Output keys the workflow reads as a verdict or a validation: only their own tool sets them."""


class CommandRunner(Protocol):
    """Runs the command tool where the sandbox is (the tool-call activity on the checks
    queue supplies one); `tool_use_id` keys its recorded result."""

    async def run(self, command: str, *, tool_use_id: str) -> ToolOutcome: ...


@dataclass(frozen=True)
class NoteContext:
    """Who is posting and whom it may address; the workflow decides, the tools check."""

    task_id: str
    recipients: frozenset[str]


async def run_tool(
    workspace: Workspace,
    name: str,
    args: dict[str, Any],
    notes: NoteContext | None = None,
    *,
    role: str,
    allowed: Collection[str],
    commands: CommandRunner | None = None,
    tool_use_id: str = "",
) -> ToolOutcome:
    """Run one tool call; a mistake of the agent's becomes an error result, not an exception.

    `allowed` is what `role` was given (`Role.tools_for`): any other tool is refused before
    it runs. `notes` is None where the run has no notes (e.g. a workflow started before them).
    """
    if name in TOOL_DEFINITIONS and name not in allowed:
        return ToolOutcome(
            content=f"tool {name!r} is not available to the {role} role; its tools are: "
            f"{', '.join(allowed)}",
            is_error=True,
            refused=True,
        )
    try:
        if name in ("post_note", "wait_for_note"):
            return _note_tool(name, args, notes)
        if name == COMMAND_TOOL:
            return await _command(args, commands, tool_use_id)
        if name == EDIT_TOOL:
            return await edit(workspace, args)
        return await _dispatch(workspace, name, args)
    except ToolInputError as exc:
        return ToolOutcome(content=str(exc), is_error=True)


async def _command(
    args: dict[str, Any], commands: CommandRunner | None, tool_use_id: str
) -> ToolOutcome:
    command = command_of(args)
    if command is None:
        return ToolOutcome(
            content="Every command already runs in a fresh shell: nothing to restart."
        )
    if commands is None:
        raise ToolInputError("Error: commands run only in the sandbox, which this turn has not")
    return await commands.run(command, tool_use_id=tool_use_id)


def _note_tool(name: str, args: dict[str, Any], notes: NoteContext | None) -> ToolOutcome:
    if notes is None:
        raise ToolInputError(f"{name}: notes between agents are not available in this run")
    if name == "wait_for_note":
        return _wait_for_note(args, notes)
    fields = {key: args.get(key) for key in ("to", "subject", "text")}
    for key, value in fields.items():
        if not isinstance(value, str) or not value.strip():
            raise ToolInputError(f"post_note needs {key!r} as a non-empty string")
    to, subject, text = (str(value) for value in fields.values())
    to = to.strip()
    if to == notes.task_id:
        raise ToolInputError("post_note: a note to yourself reaches nobody")
    if to not in notes.recipients:
        raise ToolInputError(_unknown(f"post_note: unknown recipient {to!r}", notes))
    if len(subject) > MAX_NOTE_SUBJECT_CHARS or len(text) > MAX_NOTE_CHARS:
        raise ToolInputError(
            f"post_note: keep the subject within {MAX_NOTE_SUBJECT_CHARS} characters and the "
            f"text within {MAX_NOTE_CHARS}; put long material in a file and name it"
        )
    return ToolOutcome(
        content=f"note to {to} posted: {subject.strip()}",
        note=NoteDraft(to=to, subject=subject.strip(), text=text),
    )


def _wait_for_note(args: dict[str, Any], notes: NoteContext) -> ToolOutcome:
    sender = args.get("from")
    if sender is not None and (not isinstance(sender, str) or sender not in notes.recipients):
        raise ToolInputError(_unknown(f"wait_for_note: unknown sender {sender!r}", notes))
    if sender in (NOTE_TO_ALL, notes.task_id):
        sender = None
    timeout = args.get("timeout_seconds", DEFAULT_NOTE_WAIT_SECONDS)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ToolInputError("wait_for_note: timeout_seconds must be a number")
    timeout = min(max(float(timeout), 1.0), MAX_NOTE_WAIT_SECONDS)
    who = f"from {sender}" if sender else "addressed to you"
    return ToolOutcome(
        content=f"waiting up to {timeout:g} s for a note {who}; if it comes, it comes with "
        "your next turn",
        wait=NoteWait(sender=sender, timeout_seconds=timeout),
    )


def _unknown(problem: str, notes: NoteContext) -> str:
    known = ", ".join(sorted(notes.recipients - {notes.task_id}))
    return f"{problem}; use a task id, a role or all: {known}"


async def _dispatch(workspace: Workspace, name: str, args: dict[str, Any]) -> ToolOutcome:
    if name == "write_file":
        path = normalize_path(args.get("path"))
        content = args.get("content")
        if not isinstance(content, str):
            raise ToolInputError("write_file needs 'content' as a string")
        if "\x00" in content:
            raise ToolInputError("write_file: content has a NUL character; write text files only")
        ref = await workspace.write(path, content)
        return ToolOutcome(
            content=f"wrote {path} ({ref.size} bytes, version {ref.version})", written=[ref]
        )
    if name == "read_file":
        path = normalize_path(args.get("path"))
        text = await workspace.read(path)
        if text is None:
            raise ToolInputError(f"no file {path!r} in the workspace")
        return ToolOutcome(content=text[:MAX_READ_CHARS])
    if name == "list_files":
        prefix = args.get("prefix") or ""
        if not isinstance(prefix, str):
            raise ToolInputError("list_files needs 'prefix' as a string")
        if prefix:
            require_printable("prefix", prefix)
        files = await workspace.list(prefix)
        return ToolOutcome(
            content="\n".join(f"{path} ({size} bytes)" for path, size in files) or "(no files)"
        )
    if name == "set_outputs":
        outputs = args.get("outputs")
        if not isinstance(outputs, dict):
            raise ToolInputError("set_outputs needs 'outputs' as an object")
        for key, tool in STRUCTURED_OUTPUTS.items():
            if key in outputs:
                # Else a role without the tool could forge a verdict or a validation.
                raise ToolInputError(f"set_outputs: {key!r} is reserved for {tool}")
        return ToolOutcome(
            content=f"recorded outputs: {', '.join(sorted(outputs))}", outputs=outputs
        )
    if name == "submit_verdict":
        verdict = _validated(ReviewVerdict, args, name)
        return ToolOutcome(
            content=f"verdict recorded: {verdict.verdict} with {len(verdict.findings)} findings",
            outputs={VERDICT_OUTPUT: verdict.model_dump(mode="json")},
        )
    if name == "submit_validation":
        return _submit_validation(args)
    if name == BREAKDOWN_TOOL:
        return _submit_breakdown(args)
    raise ToolInputError(f"unknown tool {name!r}")


def _submit_validation(args: dict[str, Any]) -> ToolOutcome:
    result = _validated(ValidationResult, args, "submit_validation")
    if not result.passed and not any(issue.strip() for issue in result.issues):
        # A failure without issues gives the rerun nothing to fix.
        raise ToolInputError("submit_validation: passed is false, so name at least one issue")
    return ToolOutcome(
        content=f"validation recorded: {'passed' if result.passed else 'failed'} "
        f"with {len(result.issues)} issues",
        outputs={VALIDATION_OUTPUT: result.model_dump(mode="json")},
    )


def _submit_breakdown(args: dict[str, Any]) -> ToolOutcome:
    """The breakdown's shape is checked here; its fit to the plan (roles, dependencies,
    owned paths) by the workflow, which sends the problems back to the planner."""
    breakdown = _validated(WorkBreakdown, args, BREAKDOWN_TOOL)
    ids = ", ".join(p.id for p in breakdown.packages)
    return ToolOutcome(
        content=f"work breakdown recorded: {len(breakdown.packages)} packages ({ids})",
        outputs={WORK_PACKAGES_OUTPUT: breakdown.model_dump(mode="json")},
    )


def _validated(model: type[M], args: dict[str, Any], tool: str) -> M:
    """A structured tool's input as its model, or the first problem as the agent's error."""
    try:
        return model.model_validate(args)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ToolInputError(f"{tool}: {first['msg']} at {where}") from None
