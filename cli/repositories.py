"""A change run from the user's repository, and its delivery back as git.

`run --repo` imports the repository (a local path, or a URL where the network allows) as a
snapshot before the run starts; when the run ends, its work becomes a branch in that
repository (never touching the checked-out branch, the index or the working tree), a patch
and a pull-request description. `artifacts --patch/--bundle/--pull-request/--branch-in` give
the same for any finished run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agents.repomap import outline_json
from core.contracts import RepositoryRef
from core.infrastructure.settings import Settings
from core.persistence.db import Database
from core.services.delivery import (
    check_repository_root,
    deliver_branch,
    run_bundle,
    run_patch,
    run_pull_request,
)
from core.services.repositories import import_local, import_remote

LOCAL_TENANT = "default"
"""The CLI works as the local operator: the tenant of runs started without the API."""


def is_remote(repo: str) -> bool:
    return "://" in repo


async def import_repository(db: Database, settings: Settings, repo: str, ref: str) -> RepositoryRef:
    """The snapshot `--repo`/`--ref` name; a problem is a one-line error naming `--repo`."""
    try:
        if is_remote(repo):
            # The local operator's own clone: any address their network reaches.
            return await import_remote(
                db,
                settings.repositories,
                LOCAL_TENANT,
                repo,
                ref,
                allow_private=True,
                outline=outline_json,
            )
        # Its branch is delivered there at the end: a folder inside a repository is refused
        # now, not after the run.
        await check_repository_root(Path(repo).expanduser())
        return await import_local(
            db, settings.repositories, LOCAL_TENANT, Path(repo), ref, outline=outline_json
        )
    except ValueError as exc:
        raise ValueError(f"--repo {repo}: {exc}") from None


async def deliver_change(db: Database, run_id: str, repo: str, target: Path) -> list[str]:
    """The finished change run as a patch and a PR text in `target`, and a branch in a local
    repository; the lines to print."""
    target.mkdir(parents=True, exist_ok=True)
    patch, description = target / "change.patch", target / "PULL_REQUEST.md"
    patch.write_text(await run_patch(db, run_id), encoding="utf-8")
    description.write_text(await run_pull_request(db, run_id), encoding="utf-8")
    lines = [f"Patch: {patch}", f"Pull-request description: {description}"]
    if is_remote(repo):
        bundle = target / "change.bundle"
        bundle.write_bytes(await run_bundle(db, run_id))
        lines.append(f"Bundle: {bundle} (git fetch {bundle} 'refs/heads/*:refs/heads/*')")
        return lines
    history = await deliver_branch(db, run_id, Path(repo))
    lines.append(
        f"Branch {history.branch} in {repo}: {_commits(len(history.commits))}. Review it: "
        f"git -C {repo} log --stat {history.base or ''}..{history.branch}"
    )
    return lines


@dataclass(frozen=True)
class GitOutput:
    """What `artifacts` was asked for as git."""

    patch: bool = False
    bundle: Path | None = None
    pull_request: bool = False
    branch_in: Path | None = None

    @property
    def asked(self) -> bool:
        return self.patch or self.pull_request or self.bundle is not None or bool(self.branch_in)

    async def write(self, db: Database, run_id: str) -> list[str]:
        """Each output asked for; what to print (a patch or a PR text is printed whole)."""
        lines = []
        if self.patch:
            lines.append(await run_patch(db, run_id))
        if self.pull_request:
            lines.append(await run_pull_request(db, run_id))
        if self.bundle is not None:
            self.bundle.write_bytes(await run_bundle(db, run_id))
            lines.append(f"wrote {self.bundle}")
        if self.branch_in is not None:
            history = await deliver_branch(db, run_id, self.branch_in)
            lines.append(f"branch {history.branch} in {self.branch_in}: {history.head}")
        return lines


def _commits(count: int) -> str:
    return f"{count} commit" + ("" if count == 1 else "s")
