"""`orchestrator run GOAL --repo PATH` as a user runs it: the run starts from their
repository and ends as a branch in it, a patch and a pull-request text, with their branch,
index and working tree as they were; bad repositories are one-line errors."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from tests.api_harness import isolated_client
from tests.processes import assert_one_line_error, cli, joining
from tests.workflows.test_change_run import GOAL, fingerprint, git, make_repository


async def test_run_from_a_repository_delivers_a_branch_beside_the_users_work(
    dev_env: WorkflowEnvironment, postgres_url: str, tmp_path: Path
) -> None:
    temporal = await isolated_client(dev_env.client)
    env = joining(
        temporal.service_client.config.target_host,
        temporal.namespace,
        postgres_url,
        tmp_path / "data",
    )
    repo = make_repository(tmp_path)
    base = git(repo, "rev-parse", "HEAD")
    before = fingerprint(repo)

    result = await asyncio.to_thread(
        cli, "run", GOAL, "--repo", str(repo), env=env, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "with template 'change'" in result.stdout
    run_id = re.search(r"Run ([0-9a-f]{32}) started", result.stdout)
    assert run_id is not None, result.stdout
    branch = f"orchestrator/{run_id[1]}"
    assert f"Branch {branch} in {repo}: 1 commit." in result.stdout, result.stdout
    assert fingerprint(repo) == before
    assert git(repo, "rev-parse", f"{branch}~1") == base
    delivered = tmp_path / "deliverables" / run_id[1]
    assert "calc/core.py" in (delivered / "change.patch").read_text()
    assert GOAL in (delivered / "PULL_REQUEST.md").read_text()

    patch = await asyncio.to_thread(cli, "artifacts", run_id[1], "--patch", env=env)
    assert patch.returncode == 0 and patch.stdout.startswith("diff --git"), patch.stderr
    assert patch.stdout.strip() == (delivered / "change.patch").read_text().strip()


def test_a_bad_repository_is_one_line_naming_it(tmp_path: Path, isolated: dict[str, str]) -> None:
    missing = tmp_path / "nowhere"
    result = cli("run", GOAL, "--repo", str(missing), env=isolated, cwd=tmp_path)
    assert_one_line_error(result, f"--repo {missing}")
    repo = make_repository(tmp_path)
    result = cli("run", GOAL, "--repo", str(repo), "--ref", "no-such-ref", env=isolated)
    assert_one_line_error(result, "no-such-ref")
    inside = cli("run", GOAL, "--repo", str(repo / "calc"), env=isolated)
    assert_one_line_error(inside, "not its top folder")
