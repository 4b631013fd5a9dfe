"""What a run delivers in git: a branch in the user's repository, a patch, a bundle, a PR text.

Each builds the run's history (`git_history`) in a throwaway bare repository first. The
user's repository only ever receives a new ref through `git fetch`: its current branch,
index and working tree are never touched.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from core.infrastructure.git import GitError, git, git_text
from core.persistence import repositories, storage
from core.persistence.db import Database
from core.services.git_history import (
    DeliveryError,
    RunHistory,
    build_run_history,
    check_branch_name,
    default_branch,
    tree_listing,
)
from core.services.pull_request import pull_request
from core.services.repositories import UPLOAD_SOURCE
from core.services.runs import RunNotRecorded, stored_state

__all__ = [
    "DeliveryError",
    "RunHistory",
    "check_repository_root",
    "clone_run",
    "deliver_branch",
    "run_bundle",
    "run_patch",
    "run_pull_request",
]


@asynccontextmanager
async def built_history(
    db: Database, run_id: str, *, branch: str | None = None
) -> AsyncIterator[tuple[Path, RunHistory]]:
    """The run's history in a bare repository that is deleted when the block ends."""
    with tempfile.TemporaryDirectory(prefix="orchestrator-run-") as tmp:
        git_dir = Path(tmp) / "run.git"
        yield git_dir, await build_run_history(db, run_id, git_dir, branch=branch)


# --- a branch in the user's repository ---------------------------------------------------


async def deliver_branch(
    db: Database, run_id: str, repo: Path, *, branch: str | None = None, force: bool = False
) -> RunHistory:
    """Add the run's branch to the repository at `repo`, touching nothing else.

    Refuses a branch that exists at another commit unless `force`, and always refuses the
    branch checked out there: moving it would put the working tree out of step.
    """
    branch = branch or default_branch(run_id)
    await check_branch_name(branch)
    await check_repository_root(repo)
    async with built_history(db, run_id, branch=branch) as (git_dir, history):
        ref = f"refs/heads/{branch}"
        if history.base is not None and not await _has_commit(repo, history.base):
            raise DeliveryError(
                f"{repo} does not have the run's base commit {history.base}: fetch it first"
            )
        existing = await _resolve(repo, ref)
        if existing == history.head:
            return history
        if existing is not None and not force:
            raise DeliveryError(
                f"branch {branch!r} already exists at {existing[:12]}; "
                "pass force to replace it, or choose another branch name"
            )
        if await _resolve_symbolic(repo) == ref:
            raise DeliveryError(f"branch {branch!r} is checked out in {repo}: it is left alone")
        refspec = f"{'+' if force else ''}{ref}:{ref}"
        await git(
            [
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--no-recurse-submodules",
                str(git_dir),
                refspec,
            ],
            cwd=repo,
        )
    if await _resolve(repo, ref) != history.head:
        raise DeliveryError(f"branch {branch!r} did not arrive at {history.head}")
    return history


async def check_repository_root(repo: Path) -> None:
    """`repo` must be a repository's top folder (or a bare one), not a folder inside one."""
    try:
        prefix = await git_text(["rev-parse", "--show-prefix"], cwd=repo)
    except (GitError, OSError):
        raise DeliveryError(f"{repo} is not a git repository") from None
    if prefix:
        raise DeliveryError(f"{repo} is inside a repository, not its top folder")


async def _has_commit(repo: Path, sha: str) -> bool:
    try:
        await git(["cat-file", "-e", f"{sha}^{{commit}}"], cwd=repo)
    except GitError:
        return False
    return True


async def _resolve(repo: Path, ref: str) -> str | None:
    try:
        return await git_text(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=repo)
    except GitError:
        return None


async def _resolve_symbolic(repo: Path) -> str | None:
    try:
        return await git_text(["symbolic-ref", "--quiet", "HEAD"], cwd=repo)
    except GitError:
        return None  # a detached HEAD is no branch


# --- a patch ------------------------------------------------------------------------------


async def run_patch(db: Database, run_id: str) -> str:
    """One cumulative diff from the base (or nothing) to the run's head, for `git apply`.

    Files whose base content is not UTF-8 come as binary patches, so the patch is text
    that applies byte for byte.
    """
    async with built_history(db, run_id) as (git_dir, history):
        base = history.base or await git_text(["mktree"], git_dir=git_dir, stdin=b"")
        await _mark_undecodable(git_dir, history)
        out = await git(
            [
                "diff",
                "--binary",
                "--full-index",
                "--no-renames",
                "--no-ext-diff",
                "--no-textconv",
                "--no-color",
                base,
                history.head,
            ],
            git_dir=git_dir,
        )
    return out.decode("utf-8")


async def _mark_undecodable(git_dir: Path, history: RunHistory) -> None:
    """Give base files that are not UTF-8 the `-diff` attribute: git patches them as binary."""
    if history.base is None:
        return
    listing = await tree_listing(git_dir, history.base)
    lines = []
    for path in sorted({p for c in history.commits for p in c.paths} & set(listing)):
        data = await git(["cat-file", "blob", listing[path][1]], git_dir=git_dir)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            lines.append(f"{attribute_pattern(path)} -diff\n")
    if lines:
        (git_dir / "info").mkdir(exist_ok=True)
        (git_dir / "info" / "attributes").write_text("".join(lines), encoding="utf-8")


def attribute_pattern(path: str) -> str:
    """A gitattributes pattern that matches exactly `path` from the top folder."""
    pattern = "/" + "".join("\\" + c if c in "\\*?[" else c for c in path)
    if not any(c in pattern for c in ' \t"\\\n#!'):
        return pattern
    quoted = pattern.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + quoted.replace("\n", "\\n").replace("\t", "\\t") + '"'


# --- a greenfield run's repository --------------------------------------------------------


async def clone_run(db: Database, run_id: str, target: Path) -> RunHistory:
    """The run's repository at `target` (absent or empty): its branch checked out, one
    commit per task, no remote. Files written beside it later (PROVENANCE.md) are
    excluded from `git status`."""
    async with built_history(db, run_id) as (git_dir, history):
        await git(["clone", "--quiet", "--branch", history.branch, str(git_dir), str(target)])
    await git(["remote", "remove", "origin"], cwd=target)
    with (target / ".git" / "info" / "exclude").open("a", encoding="utf-8") as exclude:
        exclude.write("/PROVENANCE.md\n")
    return history


# --- a bundle -------------------------------------------------------------------------------


async def run_bundle(db: Database, run_id: str) -> bytes:
    """A git bundle of the run's branch.

    A change run's bundle holds only the run's commits and needs the user's base commit
    (`git fetch run.bundle <branch>:<branch>` in their repository); a greenfield run's holds
    the whole history and HEAD, so `git clone run.bundle` checks the branch out.
    """
    async with built_history(db, run_id) as (git_dir, history):
        ref = f"refs/heads/{history.branch}"
        if history.base is not None and not await _made_base(db, run_id):
            if history.head == history.base:
                raise DeliveryError(f"run {run_id} changed no files: the bundle would be empty")
            revisions = [ref, f"^{history.base}"]
        else:
            await git(["symbolic-ref", "HEAD", ref], git_dir=git_dir)
            revisions = ["HEAD", ref]
        return await git(["bundle", "create", "--quiet", "-", *revisions], git_dir=git_dir)


async def _made_base(db: Database, run_id: str) -> bool:
    """The run started from an uploaded archive: its base commit is one the server made,
    which nobody else has, so its bundle carries it."""
    run = await storage.get_run(db, run_id)
    if run is None or run.repository_snapshot is None:
        return False
    snapshot = await repositories.get_snapshot(db, run.repository_snapshot)
    return snapshot is not None and snapshot.source == UPLOAD_SOURCE


# --- a pull-request description --------------------------------------------------------------


async def run_pull_request(db: Database, run_id: str, *, branch: str | None = None) -> str:
    """The markdown description of the run's branch: goal, changes, verdicts, cost."""
    run = await storage.get_run(db, run_id)
    if run is None:
        raise RunNotRecorded(f"no run with id {run_id!r}")
    async with built_history(db, run_id, branch=branch) as (_git_dir, history):
        return pull_request(run, stored_state(run), history)
