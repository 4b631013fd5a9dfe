"""A change run through REST: upload a repository archive, run the goal on it, get the patch,
the bundle and the pull-request text; unsafe archives are refused with the problem named,
and a tenant can use only its own snapshots and the operator's registered repositories."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from core.persistence.db import Database
from core.persistence.tenancy import OrgRole
from tests.api.test_api_runs import assert_json_error, finished
from tests.api_harness import ApiHarness, api_settings, serving_api
from tests.core.services.test_archives import Member, tar_of, zip_of
from tests.workflows.test_change_run import GOAL, git, make_repository

MAX_BYTES = 200_000


@pytest.fixture(scope="module")
async def repo_api(
    postgres_url: str, dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiHarness]:
    registered = make_repository(tmp_path_factory.mktemp("registered"))
    settings = api_settings(
        REPOSITORY_MAX_BYTES=MAX_BYTES,
        REPOSITORY_MAX_ARCHIVE_BYTES=100_000,
        ORCHESTRATOR_REPOSITORIES={"calc": str(registered)},
    )
    db = Database(postgres_url)
    async with serving_api(db, dev_env.client, settings) as harness:
        yield harness
    await db.dispose()


def tracked_tarball(repo: Path) -> bytes:
    """The repository's files as a GitHub archive has them: one wrapping folder, no .git."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in git(repo, "ls-files").splitlines():
            tar.add(repo / name, arcname=f"calc-main/{name}")
    return buffer.getvalue()


async def test_an_uploaded_repository_is_changed_and_delivered_as_git(
    repo_api: ApiHarness, tmp_path: Path
) -> None:
    tenant = await repo_api.tenant()
    http = repo_api.http(await repo_api.key(tenant, OrgRole.MEMBER))
    repo = make_repository(tmp_path)
    archive = tracked_tarball(repo)
    headers = {"content-type": "application/gzip"}

    uploaded = await http.post("/repositories", content=archive, headers=headers)
    assert uploaded.status_code == 201, uploaded.text
    snapshot = uploaded.json()
    assert snapshot["files"] == 6 and snapshot["binaries"] == 1
    assert snapshot["test_command"] == "python -m pytest -q"
    again = await http.post("/repositories", content=archive, headers=headers)
    assert again.json()["id"] == snapshot["id"]  # stored once: content addressed

    started = await http.post("/runs", json={"goal": GOAL, "repository": {"id": snapshot["id"]}})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    record = await finished(http, run_id)
    assert record["status"] == "completed", record

    patch = await http.get(f"/runs/{run_id}/patch")
    assert patch.status_code == 200 and patch.headers["content-type"].startswith("text/x-diff")
    # The upload's base is a commit made of its files: the patch applies on those files.
    tree = tmp_path / "uploaded"
    tree.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    work = tree / "calc-main"
    (work / "change.patch").write_text(patch.text)
    subprocess.run(["git", "apply", "change.patch"], cwd=work, check=True)
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert tests.returncode == 0 and "3 passed" in tests.stdout, tests.stdout

    bundle = await http.get(f"/runs/{run_id}/bundle")
    assert bundle.status_code == 200
    (tmp_path / "run.bundle").write_bytes(bundle.content)
    assert "orchestrator/" + run_id in git(tmp_path, "bundle", "list-heads", "run.bundle")
    # the upload's made base travels in the bundle: it clones on its own
    git(tmp_path, "clone", "-q", "run.bundle", "cloned")
    assert (tmp_path / "cloned" / "calc" / "add_percentage_helper.py").is_file()
    assert git(tmp_path / "cloned", "log", "--format=%an").splitlines()[-1] == "orchestrator upload"
    description = await http.get(f"/runs/{run_id}/pull-request")
    assert description.status_code == 200 and GOAL in description.text

    other = await repo_api.tenant()
    stranger = repo_api.http(await repo_api.key(other, OrgRole.MEMBER))
    refused = await stranger.post(
        "/runs", json={"goal": GOAL, "repository": {"id": snapshot["id"]}}
    )
    assert_json_error(refused, 422, "no repository")
    assert (await stranger.get(f"/repositories/{snapshot['id']}")).status_code == 404
    assert (await stranger.get(f"/runs/{run_id}/patch")).status_code == 404


@pytest.mark.parametrize(
    ("archive", "problem"),
    [
        (tar_of([Member("/etc/cron.d/x", b"x")]), "absolute"),
        (tar_of([Member("app/../../escape.py", b"x")]), ".."),
        (tar_of([Member("app/link", kind="symlink", target="/etc/passwd")]), "link"),
        (tar_of([Member("a.py", b"x"), Member("b.py", kind="hardlink", target="a.py")]), "link"),
        (tar_of([Member("dev", kind="chr")]), "device"),
        (zip_of([Member("big.txt", b"0" * (MAX_BYTES + 1))]), str(MAX_BYTES)),
        (b"not an archive at all", "archive"),
    ],
    ids=["absolute", "dotdot", "symlink-out", "hardlink", "device", "bomb", "garbage"],
)
async def test_unsafe_archives_are_refused_with_the_problem_named(
    repo_api: ApiHarness, archive: bytes, problem: str
) -> None:
    tenant = await repo_api.tenant()
    http = repo_api.http(await repo_api.key(tenant, OrgRole.MEMBER))
    response = await http.post(
        "/repositories", content=archive, headers={"content-type": "application/gzip"}
    )
    assert_json_error(response, 422, problem)


async def test_oversize_uploads_and_unknown_repositories_are_refused(
    repo_api: ApiHarness,
) -> None:
    tenant = await repo_api.tenant()
    http = repo_api.http(await repo_api.key(tenant, OrgRole.MEMBER))
    big = await http.post(
        "/repositories", content=b"\0" * 100_001, headers={"content-type": "application/zip"}
    )
    assert_json_error(big, 413, "100000")
    unknown = await http.post(
        "/runs", json={"goal": GOAL, "repository": {"registered": "elsewhere"}}
    )
    assert_json_error(unknown, 422, "elsewhere")
    both = await http.post(
        "/runs", json={"goal": GOAL, "repository": {"id": "x", "registered": "calc"}}
    )
    assert_json_error(both, 422, "exactly one")
    garbled = await http.post("/runs", json={"goal": GOAL, "repository": {"archive": "@@"}})
    assert_json_error(garbled, 422, "base64")
    unsafe = tar_of([Member("../escape.py", b"x")])
    refused = await http.post(
        "/runs",
        json={"goal": GOAL, "repository": {"archive": base64.b64encode(unsafe).decode()}},
    )
    assert_json_error(refused, 422, "archive", "..")


async def test_a_small_repository_comes_in_the_run_request_itself(
    repo_api: ApiHarness, tmp_path: Path
) -> None:
    tenant = await repo_api.tenant()
    http = repo_api.http(await repo_api.key(tenant, OrgRole.MEMBER))
    archive = base64.b64encode(tracked_tarball(make_repository(tmp_path))).decode()
    started = await http.post("/runs", json={"goal": GOAL, "repository": {"archive": archive}})
    assert started.status_code == 202, started.text
    record = await finished(http, started.json()["id"])
    assert record["status"] == "completed" and record["template"] == "change", record
    patch = await http.get(f"/runs/{started.json()['id']}/patch")
    assert "calc/add_percentage_helper.py" in patch.text


async def test_a_registered_repository_is_named_never_a_path(repo_api: ApiHarness) -> None:
    tenant = await repo_api.tenant()
    http = repo_api.http(await repo_api.key(tenant, OrgRole.MEMBER))
    started = await http.post(
        "/runs",
        json={"goal": GOAL, "repository": {"registered": "calc", "ref": "HEAD~1"}},
    )
    assert started.status_code == 202, started.text
    record = await finished(http, started.json()["id"])
    assert record["status"] == "completed", record
    assert record["template"] == "change"
    path = await http.post("/runs", json={"goal": GOAL, "repository": {"path": "/etc"}})
    assert_json_error(path, 422, "path")
