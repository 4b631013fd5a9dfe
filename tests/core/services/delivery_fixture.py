"""A small Python package with its own tests and git history, stored as a change run's base,
and a run on top of it: seeded files, two tasks' versions, a code review, ledger rows.

The snapshot rows are written here straight from the fixture's own `ls-tree`/`cat-file`
output, so these tests do not depend on how repositories are imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import select

from core.contracts import (
    REPOSITORY_ROLE,
    REPOSITORY_TASK,
    Finding,
    GateKind,
    GateVerdict,
    RunState,
    RunStatus,
    Severity,
    TaskState,
    TaskStatus,
    workflow_id_for,
)
from core.infrastructure.git import git, git_text
from core.persistence.db import (
    Artifact,
    Database,
    LedgerEntry,
    RepositoryFile,
    RepositorySnapshot,
    Run,
)

T0 = datetime(2025, 3, 1, 9, 0, 0, tzinfo=UTC)
USER = {
    "GIT_AUTHOR_NAME": "Ada",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
}

CORE_V1 = '"""Arithmetic."""\n\n\ndef add(a, b):\n    return a + b\n'
CORE_V2 = CORE_V1 + "\n\ndef subtract(a, b):\n    return a - b\n"
TEST_CORE = (
    "import unittest\n\nfrom calc.core import add, subtract\n\n\n"
    "class CoreTest(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n"
    "    def test_subtract(self):\n        self.assertEqual(subtract(5, 3), 2)\n"
)
README = "# calc\n\nA tiny calculator.\n"
PYPROJECT = '[project]\nname = "calc"\nversion = "0.1.0"\n'
LEGACY = "caf\xe9\n".encode("latin-1")
"""A base file that is not UTF-8: the patch must carry it as binary."""

# The run's work.
CORE_DRAFT = CORE_V2 + "\n\ndef multiply(a, b):\n    return a * b  # draft\n"
CORE_FINAL = CORE_V2 + "\n\ndef multiply(a, b):\n    return a * b\n"
STATS = (
    '"""Statistics."""\n\nfrom calc.core import add\n\n\n'
    "def mean(values):\n    total = 0\n    for v in values:\n        total = add(total, v)\n"
    "    return total / len(values)\n"
)
TEST_STATS = (
    "import unittest\n\nfrom calc.core import multiply\nfrom calc.stats import mean\n\n\n"
    "class StatsTest(unittest.TestCase):\n"
    "    def test_mean(self):\n        self.assertEqual(mean([1, 2, 3]), 2)\n\n"
    "    def test_multiply(self):\n        self.assertEqual(multiply(3, 4), 12)\n"
)
README_DRAFT = README + "\nDraft notes.\n"
README_FINAL = README + "\nNow with `mean` and `multiply`.\n"
LEGACY_FINAL = "café\n"

EDIT_SUMMARY = "Add multiply to calc.core\n\nmultiply() joins add() and subtract()."
STATS_SUMMARY = "Add calc.stats with mean() and its tests"


async def make_repository(path: Path) -> str:
    """Two commits by a person: a package, its tests, a script, a link and a submodule."""
    await git(["init", "--quiet", "--initial-branch=main", str(path)])
    write(path, {"pyproject.toml": PYPROJECT, "README.md": README, "calc/__init__.py": ""})
    write(path, {"calc/core.py": CORE_V1, "tests/__init__.py": ""})
    await commit(path, "Start calc", T0 - timedelta(days=2))
    first = await git_text(["rev-parse", "HEAD"], cwd=path)
    write(path, {"calc/core.py": CORE_V2, "tests/test_core.py": TEST_CORE})
    (path / "legacy.txt").write_bytes(LEGACY)
    (path / "run.sh").write_text("#!/bin/sh\npython -m unittest\n")
    (path / "run.sh").chmod(0o755)
    (path / "docs").mkdir()
    os.symlink("../README.md", path / "docs" / "readme")
    (path / "vendor" / "lib").mkdir(parents=True)  # a submodule that is not checked out
    await git(["update-index", "--add", "--cacheinfo", f"160000,{first},vendor/lib"], cwd=path)
    await commit(path, "Add subtract, a script, a link and a submodule", T0 - timedelta(days=1))
    return await git_text(["rev-parse", "HEAD"], cwd=path)


def write(root: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content, encoding="utf-8")


async def commit(path: Path, message: str, when: datetime) -> None:
    date = f"{int(when.timestamp())} +0000"
    env = USER | {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    await git(["add", "--all"], cwd=path)
    await git(["commit", "--quiet", "-m", message], cwd=path, env=env)


def run_unittests(root: Path) -> subprocess.CompletedProcess[str]:
    """The repository's own tests, with the Python running this suite."""
    return subprocess.run(
        [sys.executable, "-m", "unittest", "discover", "-s", "tests", "-t", "."],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1"},
    )


async def store_snapshot(db: Database, repo: Path, tenant: str = "default") -> RepositorySnapshot:
    """The repository's HEAD as snapshot rows, read with git's own plumbing."""
    commit_id = await git_text(["rev-parse", "HEAD"], cwd=repo)
    raw = await git(["cat-file", "commit", commit_id], cwd=repo)
    snapshot = RepositorySnapshot(
        id=f"snap-{commit_id[:16]}",
        tenant=tenant,
        commit=commit_id,
        tree=await git_text(["rev-parse", "HEAD^{tree}"], cwd=repo),
        commit_object=raw.decode("utf-8"),
        ref="HEAD",
        source=f"local:{repo}",
    )
    files = []
    for record in (await git(["ls-tree", "-r", "-z", commit_id], cwd=repo)).split(b"\0"):
        if not record:
            continue
        meta, name = record.split(b"\t", 1)
        mode, _kind, blob = meta.decode().split()
        data = None if mode == "160000" else await git(["cat-file", "blob", blob], cwd=repo)
        files.append(
            RepositoryFile(
                snapshot_id=snapshot.id,
                path=name.decode(),
                mode=mode,
                blob=blob,
                size=len(data or b""),
                binary=not is_text(data),
                data=data,
            )
        )
    snapshot.files = len(files)
    async with db.session() as session:
        session.add(snapshot)
        session.add_all(files)
        await session.commit()
    return snapshot


def is_text(data: bytes | None) -> bool:
    if data is None or b"\0" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass
class Writer:
    """Adds artifact versions one by one, so their ids follow the order of the calls."""

    db: Database
    run_id: str
    turns: int = 0

    async def add(
        self, task: str, role: str, files: dict[str, str], when: datetime, version: int = 1
    ) -> None:
        self.turns += 1
        async with self.db.session() as session:
            for path, content in files.items():
                session.add(
                    Artifact(
                        run_id=self.run_id,
                        task_id=task,
                        turn=self.turns,
                        path=path,
                        version=version,
                        sha256="0" * 64,
                        size=len(content.encode()),
                        content=content,
                        role=role,
                        model="" if task == REPOSITORY_TASK else "claude-sonnet-4-5",
                        created_at=when,
                    )
                )
                await session.flush()
            await session.commit()


def change_state(run_id: str) -> RunState:
    review = GateVerdict(
        round=1,
        passed=True,
        decided_by="reviewer",
        summary="Clean change; the repository's tests pass.",
        findings=[
            Finding(
                source="ruff",
                severity=Severity.LOW,
                message="mean() divides by zero on an empty list",
                file="calc/stats.py",
                line=9,
                rule="B000",
            )
        ],
    )
    tasks = [
        TaskState(
            id="edit_core", role="backend", status=TaskStatus.COMPLETED, summary=EDIT_SUMMARY
        ),
        TaskState(id="add_stats", role="qa", status=TaskStatus.COMPLETED, summary=STATS_SUMMARY),
        TaskState(
            id="code_review",
            role="code_reviewer",
            gate=GateKind.CODE_REVIEW,
            status=TaskStatus.COMPLETED,
            verdicts=[review],
        ),
    ]
    return RunState(
        run_id=run_id,
        goal="Add statistics to calc\n\nUsers want a mean.",
        template="change",
        status=RunStatus.COMPLETED,
        tasks=tasks,
    )


async def seed_change_run(db: Database, snapshot: RepositorySnapshot, run_id: str) -> None:
    """The repository seeded as task `repository`, then the tasks' versions and the ledger."""
    await insert_run(db, run_id, snapshot.id, change_state(run_id))
    writer = Writer(db, run_id)
    async with db.session() as session:
        result = await session.execute(
            select(RepositoryFile).where(RepositoryFile.snapshot_id == snapshot.id)
        )
        seeded = {
            row.path: (row.data or b"").decode()
            for row in result.scalars()
            if row.mode in ("100644", "100755") and is_text(row.data)
        }
    await writer.add(REPOSITORY_TASK, REPOSITORY_ROLE, seeded, T0)
    await writer.add("edit_core", "backend", {"calc/core.py": CORE_DRAFT}, T0 + _min(1), 2)
    await writer.add("edit_core", "backend", {"README.md": README_DRAFT}, T0 + _min(2), 2)
    await writer.add("edit_core", "backend", {".orchestrator/notes.md": "mine"}, T0 + _min(2))
    stats_files = {"calc/stats.py": STATS, "tests/test_stats.py": TEST_STATS}
    await writer.add("add_stats", "qa", stats_files, T0 + _min(3))
    await writer.add("add_stats", "qa", {"README.md": README_FINAL}, T0 + _min(4), 3)
    await writer.add("add_stats", "qa", {"pyproject.toml": PYPROJECT}, T0 + _min(4), 2)
    await writer.add("add_stats", "qa", {"legacy.txt": LEGACY_FINAL}, T0 + _min(5))
    await writer.add("edit_core", "backend", {"calc/core.py": CORE_FINAL}, T0 + _min(6), 3)
    await add_ledger(db, run_id)


def _min(n: int) -> timedelta:
    return timedelta(minutes=n)


async def insert_run(db: Database, run_id: str, snapshot_id: str | None, state: RunState) -> None:
    async with db.session() as session:
        session.add(
            Run(
                id=run_id,
                workflow_id=workflow_id_for(run_id),
                goal=state.goal,
                template=state.template,
                status="completed",
                repository_snapshot=snapshot_id,
                final_state=state.model_dump_json(),
            )
        )
        await session.commit()


LEDGER = [
    # task, turn, model, input, output, cost
    ("edit_core", 0, "claude-sonnet-4-5", 1000, 200, 0.0060),
    ("edit_core", 1, "claude-sonnet-4-5", 1500, 300, 0.0090),
    ("add_stats", 0, "claude-haiku-4-5", 800, 400, 0.0024),
    ("code_review", 0, "claude-sonnet-4-5", 2000, 100, 0.0075),
]


async def add_ledger(db: Database, run_id: str) -> None:
    async with db.session() as session:
        for task, turn, model, tokens_in, tokens_out, cost in LEDGER:
            session.add(
                LedgerEntry(
                    workflow_id=workflow_id_for(run_id),
                    run_id=run_id,
                    task_id=task,
                    turn=turn,
                    role="backend",
                    provider="anthropic",
                    model=model,
                    input_tokens=tokens_in,
                    output_tokens=tokens_out,
                    cost_usd=cost,
                    stop_reason="end_turn",
                    response="{}",
                )
            )
        await session.commit()
