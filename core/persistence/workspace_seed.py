"""A change run's workspace starts as its repository: the snapshot's text files, version 1.

Seeded rows are keyed like any write, under the task `REPOSITORY_TASK` (attempt 0, turn 0),
so recording the run's start again finds them instead of adding versions. Binaries, links
and submodules stay references in the snapshot: the workspace, and so the agents and the
sandbox, get text only.
"""

from __future__ import annotations

import hashlib

from core.contracts import REPOSITORY_ROLE, REPOSITORY_TASK
from core.persistence.db import Artifact, Database, utcnow
from core.persistence.repositories import snapshot_files
from core.persistence.storage import insert_ignore


async def seed_workspace(db: Database, run_id: str, execution_id: str, snapshot_id: str) -> int:
    """Copy the snapshot's text files into the run's workspace; returns how many."""
    files = await snapshot_files(db, snapshot_id, text_only=True)
    async with db.session() as session:
        for file in files:
            content = (file.data or b"").decode("utf-8")
            await insert_ignore(
                session,
                Artifact,
                {
                    "run_id": run_id,
                    "execution_id": execution_id,
                    "task_id": REPOSITORY_TASK,
                    "attempt": 0,
                    "turn": 0,
                    "path": file.path,
                    "version": 1,
                    "sha256": hashlib.sha256(file.data or b"").hexdigest(),
                    "size": file.size,
                    "content": content,
                    "role": REPOSITORY_ROLE,
                    "model": "git",
                    "created_at": utcnow(),
                },
            )
        await session.commit()
    return len(files)
