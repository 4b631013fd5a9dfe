"""Commands agents ran in the sandbox, kept under their tool-call key the moment they end."""

from __future__ import annotations

from core.contracts import TurnKey
from core.persistence.db import CommandResult, Database, utcnow
from core.persistence.rows import turn_params, turn_query
from core.persistence.storage import insert_ignore


async def recorded_command(db: Database, key: TurnKey, tool_use_id: str) -> CommandResult | None:
    async with db.session() as session:
        found = await session.execute(
            turn_query(CommandResult, "tool_use_id"), turn_params(key, tool_use_id=tool_use_id)
        )
        return found.scalars().first()


async def record_command(
    db: Database,
    key: TurnKey,
    tool_use_id: str,
    *,
    command: str,
    exit_code: int | None,
    output: str,
    changes_json: str,
    duration_seconds: float,
) -> CommandResult:
    """Keep the result in its own transaction: a crash later in the turn cannot lose it,
    and a retry finds it instead of running the command again (the first write wins)."""
    async with db.session() as session:
        await insert_ignore(
            session,
            CommandResult,
            {
                "workflow_id": key.workflow_id,
                "execution_id": key.execution_id,
                "task_id": key.task_id,
                "attempt": key.attempt,
                "turn": key.turn,
                "tool_use_id": tool_use_id,
                "command": command,
                "exit_code": exit_code,
                "output": output,
                "changes": changes_json,
                "duration_seconds": duration_seconds,
                "created_at": utcnow(),
            },
        )
        await session.commit()
    recorded = await recorded_command(db, key, tool_use_id)
    if recorded is None:
        raise RuntimeError(f"command {tool_use_id} of {key} was not stored")
    return recorded
