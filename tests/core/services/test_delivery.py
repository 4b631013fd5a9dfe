"""A run's work delivered as git: the base rebuilt, one commit per task, a branch in the
user's repository that leaves everything else alone, a patch, a bundle and a PR text."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from core.contracts import RunState, RunStatus, TaskState, TaskStatus
from core.infrastructure.git import git, git_text
from core.persistence.db import Database, RepositorySnapshot
from core.services.delivery import (
    DeliveryError,
    deliver_branch,
    run_bundle,
    run_patch,
    run_pull_request,
)
from core.services.git_history import RunHistory, build_run_history, rebuild_base
from core.services.runs import RunNotRecorded
from tests.core.services import delivery_fixture as fx

RUN = "run-change-1"
BRANCH = f"orchestrator/{RUN}"
Files = dict[str, tuple[str, bytes | None]]

FINAL = {
    "README.md": fx.README_FINAL.encode(),
    "calc/core.py": fx.CORE_FINAL.encode(),
    "calc/stats.py": fx.STATS.encode(),
    "tests/test_stats.py": fx.TEST_STATS.encode(),
    "legacy.txt": fx.LEGACY_FINAL.encode(),
}


async def change_run(db: Database, tmp_path: Path) -> tuple[Path, str, RepositorySnapshot]:
    repo = tmp_path / "user-repo"
    base = await fx.make_repository(repo)
    snapshot = await fx.store_snapshot(db, repo)
    await fx.seed_change_run(db, snapshot, RUN)
    return repo, base, snapshot


async def tree_files(rev: str, *, cwd: Path | None = None, git_dir: Path | None = None) -> Files:
    """Path -> (mode, bytes) of every entry of `rev` (None for a submodule)."""
    files: Files = {}
    out = await git(["ls-tree", "-r", "-z", rev], cwd=cwd, git_dir=git_dir)
    for record in filter(None, out.split(b"\0")):
        meta, name = record.split(b"\t", 1)
        mode, _kind, sha = meta.decode().split()
        data = (
            None
            if mode == "160000"
            else await git(["cat-file", "blob", sha], cwd=cwd, git_dir=git_dir)
        )
        files[name.decode()] = (mode, data)
    return files


async def expected_head_files(repo: Path, base: str) -> Files:
    files = await tree_files(base, cwd=repo)
    return files | {
        path: (files.get(path, ("100644", b""))[0], data) for path, data in FINAL.items()
    }


async def log(rev: str, fmt: str, *, cwd: Path | None = None, git_dir: Path | None = None) -> str:
    return await git_text(["log", "-1", f"--format={fmt}", rev], cwd=cwd, git_dir=git_dir)


# --- the base and the commits -----------------------------------------------------------


async def test_rebuilt_base_is_the_users_own_commit(sqlite_db: Database, tmp_path: Path) -> None:
    repo, base, snapshot = await change_run(sqlite_db, tmp_path)
    git_dir = tmp_path / "rebuilt.git"

    assert await rebuild_base(sqlite_db, snapshot, git_dir) == base
    assert (git_dir / "shallow").read_text() == f"{base}\n"
    # The shallow mark makes the absent parents the end of history, not an error.
    assert await git_text(["rev-list", "--count", base], git_dir=git_dir) == "1"
    assert await tree_files(base, git_dir=git_dir) == await tree_files(base, cwd=repo)

    wrong_tree = _snapshot_with(snapshot, tree="0" * 40)
    with pytest.raises(DeliveryError, match="rebuilt tree"):
        await rebuild_base(sqlite_db, wrong_tree, tmp_path / "t.git")
    edited = _snapshot_with(snapshot, commit_object=snapshot.commit_object.replace("Add", "Put"))
    with pytest.raises(DeliveryError, match="rebuilt commit"):
        await rebuild_base(sqlite_db, edited, tmp_path / "c.git")


def _snapshot_with(snapshot: RepositorySnapshot, **changes: str) -> RepositorySnapshot:
    fields = snapshot.model_dump() | changes
    return RepositorySnapshot(**fields)


async def test_one_commit_per_task_in_the_order_they_finished(
    any_db: Database, tmp_path: Path
) -> None:
    repo, base, _snapshot = await change_run(any_db, tmp_path)
    git_dir = tmp_path / "run.git"

    history = await build_run_history(any_db, RUN, git_dir)

    assert (history.base, history.branch) == (base, BRANCH)
    assert [c.task_id for c in history.commits] == ["add_stats", "edit_core"]
    stats, edit = history.commits
    # README.md's newest version is add_stats's; pyproject.toml was rewritten unchanged.
    assert stats.paths == ("README.md", "calc/stats.py", "legacy.txt", "tests/test_stats.py")
    assert stats.added == ("calc/stats.py", "tests/test_stats.py")
    assert (edit.paths, edit.added, edit.role) == (("calc/core.py",), (), "backend")
    assert history.head == edit.sha
    assert await git_text(["rev-parse", f"refs/heads/{BRANCH}"], git_dir=git_dir) == edit.sha
    assert await log(stats.sha, "%P", git_dir=git_dir) == base
    assert await log(edit.sha, "%P", git_dir=git_dir) == stats.sha

    when = fx.T0 + timedelta(minutes=5)
    assert await log(stats.sha, "%an <%ae>|%cn <%ce>|%at|%ct", git_dir=git_dir) == (
        f"qa <qa@agents.orchestrator.invalid>|qa <qa@agents.orchestrator.invalid>"
        f"|{int(when.timestamp())}|{int(when.timestamp())}"
    )
    assert await log(edit.sha, "%an <%ae>", git_dir=git_dir) == (
        "backend <backend@agents.orchestrator.invalid>"
    )
    assert await log(edit.sha, "%B", git_dir=git_dir) == (
        "edit_core: Add multiply to calc.core\n\n"
        "Add multiply to calc.core\n\nmultiply() joins add() and subtract().\n\n"
        f"Run-Id: {RUN}\nTask: edit_core\nModel: claude-sonnet-4-5\nTokens: 3000\nCost: $0.0150"
    )
    trailers = await log(stats.sha, "%(trailers:only,unfold)", git_dir=git_dir)
    assert trailers == (
        f"Run-Id: {RUN}\nTask: add_stats\nModel: claude-haiku-4-5\nTokens: 1200\nCost: $0.0024"
    )
    assert await log(stats.sha, "%s", git_dir=git_dir) == f"add_stats: {fx.STATS_SUMMARY}"

    head_files = await tree_files(history.head, git_dir=git_dir)
    assert head_files == await expected_head_files(repo, base)
    assert head_files["run.sh"][0] == "100755"
    assert head_files["docs/readme"] == ("120000", b"../README.md")
    assert head_files["vendor/lib"] == ("160000", None)
    assert not any(path.startswith(".orchestrator/") for path in head_files)

    again = await build_run_history(any_db, RUN, tmp_path / "again.git")
    assert [c.sha for c in again.commits] == [c.sha for c in history.commits]


# --- the branch in the user's repository --------------------------------------------------


async def user_state(repo: Path) -> dict[str, object]:
    """Everything the user could notice: HEAD, index bytes, status, every file's bytes, refs."""
    index = (repo / ".git" / "index").read_bytes()
    quiet = {"GIT_OPTIONAL_LOCKS": "0"}  # so `status` itself never rewrites the index
    worktree = {
        str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(repo.rglob("*"))
        if p.is_file() and not p.is_symlink() and ".git" not in p.relative_to(repo).parts
    }
    refs = await git_text(["for-each-ref", "--format=%(refname) %(objectname)"], cwd=repo)
    return {
        "head": await git_text(["symbolic-ref", "HEAD"], cwd=repo),
        "head_commit": await git_text(["rev-parse", "HEAD"], cwd=repo),
        "index": hashlib.sha256(index).hexdigest(),
        "status": await git(["status", "--porcelain=v1", "-z", "--ignored"], cwd=repo, env=quiet),
        "worktree": worktree,
        "refs": [r for r in refs.splitlines() if BRANCH not in r],
    }


async def test_delivered_branch_leaves_the_users_work_alone(
    sqlite_db: Database, tmp_path: Path
) -> None:
    repo, base, _snapshot = await change_run(sqlite_db, tmp_path)
    (repo / "README.md").write_text("edited, not staged\n")
    (repo / "calc" / "__init__.py").write_text("VERSION = 2\n")
    await git(["add", "calc/__init__.py"], cwd=repo)
    (repo / "scratch.txt").write_text("untracked\n")
    before = await user_state(repo)
    assert before["status"]  # a dirty tree, so "unchanged" means something

    history = await deliver_branch(sqlite_db, RUN, repo)

    assert await user_state(repo) == before
    assert await git_text(["rev-parse", f"refs/heads/{BRANCH}"], cwd=repo) == history.head
    subjects = await git_text(["log", "--format=%s", f"main..{BRANCH}"], cwd=repo)
    assert subjects.splitlines() == [
        "edit_core: Add multiply to calc.core",
        f"add_stats: {fx.STATS_SUMMARY}",
    ]
    assert not (repo / ".git" / "shallow").exists()
    assert not (repo / ".git" / "FETCH_HEAD").exists()
    assert await deliver_branch(sqlite_db, RUN, repo) == history  # again: nothing to do

    await git(["update-ref", f"refs/heads/{BRANCH}", base], cwd=repo)
    with pytest.raises(DeliveryError, match="already exists"):
        await deliver_branch(sqlite_db, RUN, repo)
    await deliver_branch(sqlite_db, RUN, repo, force=True)
    assert await git_text(["rev-parse", BRANCH], cwd=repo) == history.head
    with pytest.raises(DeliveryError, match="checked out"):
        await deliver_branch(sqlite_db, RUN, repo, branch="main", force=True)
    assert await user_state(repo) == before


async def test_branch_delivery_refuses_the_wrong_places(
    sqlite_db: Database, tmp_path: Path
) -> None:
    repo, _base, _snapshot = await change_run(sqlite_db, tmp_path)
    with pytest.raises(DeliveryError, match="inside a repository"):
        await deliver_branch(sqlite_db, RUN, repo / "calc")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DeliveryError, match="not a git repository"):
        await deliver_branch(sqlite_db, RUN, tmp_path / "plain")
    other = tmp_path / "other"
    await git(["init", "--quiet", str(other)])
    with pytest.raises(DeliveryError, match="base commit"):
        await deliver_branch(sqlite_db, RUN, other)
    with pytest.raises(DeliveryError, match="not a valid branch name"):
        await deliver_branch(sqlite_db, RUN, repo, branch="bad..name")
    with pytest.raises(RunNotRecorded):
        await deliver_branch(sqlite_db, "no-such-run", repo)


# --- the patch and the bundle ---------------------------------------------------------------


async def clone_at(repo: Path, target: Path, base: str) -> Path:
    await git(["clone", "--quiet", str(repo), str(target)])
    await git(["checkout", "--quiet", "--detach", base], cwd=target)
    return target


async def test_patch_applies_on_the_original_commit(sqlite_db: Database, tmp_path: Path) -> None:
    repo, base, _snapshot = await change_run(sqlite_db, tmp_path)
    clone = await clone_at(repo, tmp_path / "clone", base)
    assert fx.run_unittests(clone).returncode == 0

    patch = await run_patch(sqlite_db, RUN)

    assert "diff --git a/calc/core.py b/calc/core.py" in patch
    assert "GIT binary patch" in patch  # legacy.txt was not UTF-8 at the base
    assert ".orchestrator" not in patch and "pyproject.toml" not in patch
    (tmp_path / "run.patch").write_text(patch, encoding="utf-8")
    await git(["apply", "--check", str(tmp_path / "run.patch")], cwd=clone)
    await git(["apply", str(tmp_path / "run.patch")], cwd=clone)
    for path, data in FINAL.items():
        assert (clone / path).read_bytes() == data, path
    status = await git(["status", "--porcelain", "--untracked-files=all"], cwd=clone)
    assert sorted(status.decode().splitlines()) == [
        " M README.md",
        " M calc/core.py",
        " M legacy.txt",
        "?? calc/stats.py",
        "?? tests/test_stats.py",
    ]
    tests = fx.run_unittests(clone)
    assert tests.returncode == 0, tests.stderr
    assert "Ran 4 tests" in tests.stderr


async def test_bundle_fetches_into_the_users_repository(
    sqlite_db: Database, tmp_path: Path
) -> None:
    repo, base, _snapshot = await change_run(sqlite_db, tmp_path)
    history = await build_run_history(sqlite_db, RUN, tmp_path / "run.git")
    bundle = tmp_path / "run.bundle"

    bundle.write_bytes(await run_bundle(sqlite_db, RUN))

    heads = await git_text(["bundle", "list-heads", str(bundle)], cwd=repo)
    assert heads == f"{history.head} refs/heads/{BRANCH}"
    await git(["bundle", "verify", "--quiet", str(bundle)], cwd=repo)
    clone = await clone_at(repo, tmp_path / "clone", base)
    await git(
        ["fetch", "--quiet", str(bundle), f"refs/heads/{BRANCH}:refs/heads/review"], cwd=clone
    )
    assert await git_text(["rev-parse", "review"], cwd=clone) == history.head
    assert await git_text(["rev-list", "--count", f"{base}..review"], cwd=clone) == "2"
    stranger = tmp_path / "stranger"
    await git(["init", "--quiet", str(stranger)])
    with pytest.raises(Exception, match="lacks these prerequisite"):
        await git(["bundle", "verify", str(bundle)], cwd=stranger)


# --- greenfield ---------------------------------------------------------------------------


GREEN = "run-green-1"


async def greenfield_run(db: Database) -> None:
    state = RunState(
        run_id=GREEN,
        goal="Build a greeting service",
        template="sdlc",
        status=RunStatus.COMPLETED,
        tasks=[
            TaskState(id="design", role="architect", status=TaskStatus.COMPLETED, summary="Design"),
            TaskState(id="build", role="backend", status=TaskStatus.COMPLETED, summary="Build it"),
        ],
    )
    await fx.insert_run(db, GREEN, None, state)
    writer = fx.Writer(db, GREEN)
    await writer.add("design", "architect", {"docs/design.md": "# Design\n"}, fx.T0)
    app = {"app/hello.py": "def hello():\n    return 'hi'\n", "tests/test_hello.py": "x = 1\n"}
    await writer.add("build", "backend", app, fx.T0 + timedelta(minutes=1))


async def test_greenfield_run_is_a_chain_from_a_root_commit(
    sqlite_db: Database, tmp_path: Path
) -> None:
    await greenfield_run(sqlite_db)
    history = await build_run_history(sqlite_db, GREEN, tmp_path / "run.git")
    assert history.base is None and [c.task_id for c in history.commits] == ["design", "build"]
    assert await log(history.commits[0].sha, "%P", git_dir=tmp_path / "run.git") == ""

    bundle = tmp_path / "run.bundle"
    bundle.write_bytes(await run_bundle(sqlite_db, GREEN))
    await git(["clone", "--quiet", str(bundle), str(tmp_path / "cloned")])
    cloned = tmp_path / "cloned"
    assert await git_text(["rev-parse", "HEAD"], cwd=cloned) == history.head
    authors = await git_text(["log", "--format=%an|%(trailers:key=Task,valueonly)"], cwd=cloned)
    assert [line for line in authors.splitlines() if line] == ["backend|build", "architect|design"]
    assert (cloned / "app" / "hello.py").read_text() == "def hello():\n    return 'hi'\n"

    empty = tmp_path / "empty"
    await git(["init", "--quiet", str(empty)])
    (tmp_path / "run.patch").write_text(await run_patch(sqlite_db, GREEN))
    await git(["apply", str(tmp_path / "run.patch")], cwd=empty)
    assert (empty / "docs" / "design.md").read_text() == "# Design\n"
    again = await build_run_history(sqlite_db, GREEN, tmp_path / "again.git")
    assert again.head == history.head


async def test_workspaces_git_cannot_hold_are_refused(sqlite_db: Database, tmp_path: Path) -> None:
    await greenfield_run(sqlite_db)
    await fx.Writer(sqlite_db, GREEN).add("build", "backend", {"app": "x\n"}, fx.T0)
    with pytest.raises(DeliveryError, match="'app' would be both a file and a folder"):
        await build_run_history(sqlite_db, GREEN, tmp_path / "run.git")
    await fx.insert_run(sqlite_db, "empty", None, RunState(run_id="empty", goal="g", template="t"))
    with pytest.raises(DeliveryError, match="wrote no files"):
        await build_run_history(sqlite_db, "empty", tmp_path / "empty.git")


async def test_change_run_without_changes_has_an_empty_patch(
    sqlite_db: Database, tmp_path: Path
) -> None:
    repo = tmp_path / "user-repo"
    base = await fx.make_repository(repo)
    snapshot = await fx.store_snapshot(sqlite_db, repo)
    state = RunState(run_id="idle", goal="Look only", template="change")
    await fx.insert_run(sqlite_db, "idle", snapshot.id, state)
    history = await build_run_history(sqlite_db, "idle", tmp_path / "idle.git")
    assert (history.head, history.commits) == (base, ())
    assert await run_patch(sqlite_db, "idle") == ""
    with pytest.raises(DeliveryError, match="changed no files"):
        await run_bundle(sqlite_db, "idle")


# --- the pull-request description -------------------------------------------------------------


async def test_pull_request_says_what_changed_and_what_it_cost(
    sqlite_db: Database, tmp_path: Path
) -> None:
    _repo, base, _snapshot = await change_run(sqlite_db, tmp_path)
    history: RunHistory = await build_run_history(sqlite_db, RUN, tmp_path / "run.git")

    text = await run_pull_request(sqlite_db, RUN)

    assert text.startswith("# Add statistics to calc\n")
    assert f"branch `{BRANCH}` from base commit `{base[:12]}`, 2 commit(s)" in text
    assert "Users want a mean." in text
    stats, edit = history.commits
    assert f"- `{stats.sha[:12]}` **add_stats** (qa): {fx.STATS_SUMMARY}" in text
    assert f"- `{edit.sha[:12]}` **edit_core** (backend): Add multiply to calc.core" in text
    assert "  - added `calc/stats.py`" in text and "  - changed `calc/core.py`" in text
    assert "| code_review | code_review | **passed** | reviewer | 1 |" in text
    assert "- **low** `calc/stats.py:9`: mean() divides by zero on an empty list" in text
    assert "| edit_core | backend | claude-sonnet-4-5 | 3000 | 0.0150 |" in text
    assert "| code_review | code_reviewer | claude-sonnet-4-5 | 2100 | 0.0075 |" in text
    assert "| **total** | | | **6300** | **0.0249** |" in text
    assert "Model(s): `claude-sonnet-4-5`, `claude-haiku-4-5`." in text
