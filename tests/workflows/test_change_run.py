"""A change run end to end with the offline model: from a fixture repository with its own
tests and history, through the `change` template on the real Temporal server and sandbox,
to a branch with one commit per task, a patch that applies on the original commit and a
pull-request text, while the user's branch, index and working tree stay byte-identical."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from agents.repomap import outline_json
from agents.roles import ROLES
from core.contracts import REPOSITORY_TASK, RunStatus
from core.infrastructure.settings import ProviderSettings, RepositorySettings
from core.persistence import storage
from core.persistence.db import Database
from core.services.delivery import deliver_branch, run_patch, run_pull_request
from core.services.plans import build_plan, default_template
from core.services.repositories import import_local
from core.services.templates import load_template
from offline import OfflineProvider
from tests.helpers import run_to_end

GOAL = "Add a percentage helper to the calculator"

CORE = '''"""Arithmetic for the calculator."""


def add(a: int, b: int) -> int:
    """The sum of two numbers."""
    return a + b


def scale(value: float, factor: float) -> float:
    return value * factor
'''

TESTS = """from calc.core import add, scale


def test_add() -> None:
    assert add(2, 3) == 5


def test_scale() -> None:
    assert scale(2.0, 1.5) == 3.0
"""

PYPROJECT = """[project]
name = "calc"
version = "0.1.0"

[tool.pytest.ini_options]
pythonpath = ["."]
"""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def make_repository(root: Path) -> Path:
    """A small Python package with its own tests, a .gitignore'd file, a binary and two
    commits; the working tree has an uncommitted change, which must survive the run."""
    repo = root / "calc-repo"
    (repo / "calc").mkdir(parents=True)
    (repo / "tests").mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Dev")
    git(repo, "config", "user.email", "dev@example.com")
    (repo / "pyproject.toml").write_text(PYPROJECT)
    (repo / "calc" / "__init__.py").write_text("")
    (repo / "calc" / "core.py").write_text(CORE.split("\n\ndef scale")[0] + "\n")
    first_tests = TESTS.replace(", scale", "").split("\n\n\ndef test_scale")[0]
    (repo / "tests" / "test_core.py").write_text(first_tests + "\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "calc: add")
    (repo / "calc" / "core.py").write_text(CORE)
    (repo / "tests" / "test_core.py").write_text(TESTS)
    (repo / ".gitignore").write_text("*.log\n")
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "calc: scale")
    (repo / "debug.log").write_text("ignored\n")
    (repo / "notes.txt").write_text("work in progress, not committed\n")
    return repo


def fingerprint(repo: Path) -> dict[str, str]:
    """What the user has: HEAD, its branch, the index's bytes, every file's bytes, status."""
    files = {
        p.relative_to(repo).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(repo).parts
    }
    return {
        "head": git(repo, "rev-parse", "HEAD"),
        "branch": git(repo, "symbolic-ref", "HEAD"),
        "index": hashlib.sha256((repo / ".git" / "index").read_bytes()).hexdigest(),
        "status": git(repo, "status", "--porcelain"),
        **files,
    }


def pytest_passes(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=repo,
        capture_output=True,
        text=True,
    )


async def test_a_change_run_delivers_a_branch_a_patch_and_a_pull_request(
    dev_env: WorkflowEnvironment, sqlite_db: Database, tmp_path: Path
) -> None:
    repo = make_repository(tmp_path)
    base = git(repo, "rev-parse", "HEAD")
    assert pytest_passes(repo).returncode == 0
    before = fingerprint(repo)

    repository = await import_local(
        sqlite_db, RepositorySettings(), "default", repo, "HEAD", outline=outline_json
    )
    assert repository.commit == base
    assert repository.test_command == "python -m pytest -q"
    template = default_template(repository)
    assert template == "change"
    plan = build_plan(
        load_template(template, ROLES),
        goal=GOAL,
        run_id="change" + base[:10],
        provider=ProviderSettings.model_construct(),
        repository=repository,
    )
    state = await run_to_end(dev_env.client, sqlite_db, OfflineProvider(), plan)
    assert state.status == RunStatus.COMPLETED, state.error

    # both gates ran the repository's own tests in the sandbox, and they passed
    for gate in ("code_review", "security_review"):
        notes = [note for v in state.task(gate).verdicts for note in v.notes]
        assert "the repository's test command `python -m pytest -q` passed" in notes, notes

    # the workspace started as the repository's tracked text files
    seeded = [
        a
        for a in await storage.all_artifact_versions(sqlite_db, plan.run_id)
        if a.task_id == REPOSITORY_TASK
    ]
    assert sorted(a.path for a in seeded) == [
        ".gitignore",
        "calc/__init__.py",
        "calc/core.py",
        "pyproject.toml",
        "tests/test_core.py",
    ]

    history = await deliver_branch(sqlite_db, plan.run_id, repo)
    assert history.branch == f"orchestrator/{plan.run_id}"
    assert fingerprint(repo) == before  # branch, index and working tree untouched
    log = git(repo, "log", "--format=%an|%s", f"{base}..{history.branch}").splitlines()
    assert [line.split("|")[0] for line in log] == ["backend_engineer"]
    body = git(repo, "log", "-1", "--format=%B", history.branch)
    for trailer in ("Run-Id: " + plan.run_id, "Task: implement", "Model: offline", "Tokens: "):
        assert trailer in body, body
    changed = git(repo, "diff", "--name-status", base, history.branch).splitlines()
    assert sorted(changed) == [
        "A\tcalc/add_percentage_helper.py",
        "A\ttests/test_add_percentage_helper.py",
        "M\tcalc/core.py",
    ]

    # the patch applies on the original commit, and the repository's tests pass after it
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    git(clone, "checkout", "-q", base)
    patch = tmp_path / "change.patch"
    patch.write_text(await run_patch(sqlite_db, plan.run_id))
    git(clone, "apply", "--check", str(patch))
    git(clone, "apply", str(patch))
    tests = pytest_passes(clone)
    assert tests.returncode == 0, tests.stdout
    assert "3 passed" in tests.stdout

    description = await run_pull_request(sqlite_db, plan.run_id)
    assert GOAL in description and "code_review" in description
