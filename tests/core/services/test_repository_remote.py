"""Importing a repository over http(s) (`import_remote`): git's smart HTTP protocol served on
loopback by the real `git http-backend`, and the SSRF guard in front of every fetch."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest

from core.infrastructure.git import git
from core.infrastructure.settings import RepositorySettings
from core.persistence.db import Database
from core.persistence.repositories import snapshot_files
from core.services.repositories import RepositoryError, import_remote, pinned_http_config
from tests.core.services.repository_fixture import (
    CALC_V1,
    FIRST_FILES,
    SECOND_FILES,
    UserRepo,
    make_user_repo,
)
from tests.fakes.loopback import LoopbackServer

SETTINGS = RepositorySettings(_env_file=None)  # type: ignore[call-arg]


class _GitHandler(BaseHTTPRequestHandler):
    """Each request through `git http-backend` as CGI, the way a web server would run it."""

    root: ClassVar[Path]
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self._cgi()

    def do_POST(self) -> None:
        self._cgi()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _cgi(self) -> None:
        path, _, query = self.path.partition("?")
        self.requests.append(f"{self.command} {path}")
        if path.startswith("/moved.git/"):  # a redirect to the real repository
            self.send_response(302)
            self.send_header("Location", self.path.replace("/moved.git/", "/calc.git/"))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        env = {
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "REMOTE_ADDR": "127.0.0.1",
        }
        out = asyncio.run(git(["http-backend"], env=env, stdin=body))
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            else:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class GitServer(LoopbackServer):
    handler = _GitHandler


@pytest.fixture
async def served(tmp_path: Path) -> UserRepo:
    repo = await make_user_repo(tmp_path / "user-repo")
    await git(["clone", "--bare", "--quiet", str(repo.path), str(tmp_path / "srv" / "calc.git")])
    _GitHandler.root = tmp_path / "srv"
    _GitHandler.requests.clear()
    return repo


@pytest.fixture
def server(served: UserRepo) -> Iterator[GitServer]:
    with GitServer() as running:
        yield running


async def test_a_branch_is_fetched_over_smart_http(
    any_db: Database, served: UserRepo, server: GitServer
) -> None:
    url = f"http://127.0.0.1:{server.port}/calc.git"
    ref = await import_remote(any_db, SETTINGS, "acme", url, "main", allow_private=True)
    assert (ref.commit, ref.ref, ref.source) == (served.second, "main", f"remote:{url}")
    assert {f.path for f in await snapshot_files(any_db, ref.snapshot_id)} == SECOND_FILES
    assert any(r.startswith("POST /calc.git/git-upload-pack") for r in _GitHandler.requests)
    head = await import_remote(any_db, SETTINGS, "acme", url, allow_private=True)
    assert head.snapshot_id == ref.snapshot_id  # HEAD is main: stored once


async def test_a_commit_id_is_fetched_by_itself(
    sqlite_db: Database, served: UserRepo, server: GitServer
) -> None:
    url = f"http://user:s3cret@localhost:{server.port}/calc.git"
    ref = await import_remote(sqlite_db, SETTINGS, "acme", url, served.first, allow_private=True)
    assert ref.commit == served.first
    assert ref.source == f"remote:http://localhost:{server.port}/calc.git"  # no credentials
    files = {f.path: f for f in await snapshot_files(sqlite_db, ref.snapshot_id)}
    assert set(files) == FIRST_FILES and files["calc/core.py"].data == CALC_V1.encode()


async def test_fetch_failures_say_why_without_the_password(
    sqlite_db: Database, served: UserRepo, server: GitServer
) -> None:
    url = f"http://user:s3cret@127.0.0.1:{server.port}/calc.git"
    with pytest.raises(RepositoryError, match="cannot fetch 'no-such-branch'") as caught:
        await import_remote(sqlite_db, SETTINGS, "acme", url, "no-such-branch", allow_private=True)
    assert "s3cret" not in str(caught.value)
    with pytest.raises(RepositoryError, match="cannot fetch 'main'"):
        await import_remote(
            sqlite_db, SETTINGS, "acme", url.replace("calc", "absent"), "main", allow_private=True
        )


async def test_the_ssrf_guard_refuses_private_addresses_by_default(
    sqlite_db: Database, served: UserRepo, server: GitServer
) -> None:
    for url in (f"http://127.0.0.1:{server.port}/calc.git", "http://169.254.169.254/x.git"):
        with pytest.raises(RepositoryError, match=r"refused: .* non-public address"):
            await import_remote(sqlite_db, SETTINGS, "acme", url, "main")
    assert _GitHandler.requests == []  # nothing was sent


@pytest.mark.parametrize(
    ("url", "ref", "message"),
    [
        ("file:///etc", "main", "only https:// and http://"),
        ("ssh://git@example.com/x.git", "main", "only https:// and http://"),
        ("ext::sh -c touch% /tmp/pwned", "main", "only https:// and http://"),
        ("https://example.com/x.git", "--upload-pack=touch /tmp/pwned", "not a branch, tag"),
        ("https://example.com/x.git", "main:refs/heads/x", "not a branch, tag"),
        ("https://example.com/x.git", "a/../b", "not a branch, tag"),
        ("http://[::1/x.git", "main", "repository URL refused"),
    ],
)
async def test_urls_and_refs_that_are_refused(
    sqlite_db: Database, url: str, ref: str, message: str
) -> None:
    with pytest.raises(RepositoryError, match=message):
        await import_remote(sqlite_db, SETTINGS, "acme", url, ref, allow_private=True)


async def test_redirects_are_not_followed(
    sqlite_db: Database, served: UserRepo, server: GitServer
) -> None:
    url = f"http://127.0.0.1:{server.port}/moved.git"
    with pytest.raises(RepositoryError, match="cannot fetch 'main'"):
        await import_remote(sqlite_db, SETTINGS, "acme", url, "main", allow_private=True)
    assert not any(r.startswith("GET /calc.git") for r in _GitHandler.requests)


async def test_the_fetch_goes_only_to_the_checked_address(
    tmp_path: Path, served: UserRepo, server: GitServer
) -> None:
    """A name that DNS does not know reaches the address the guard checked: git never asks
    DNS again, so an answer that changes after the check cannot redirect the fetch."""
    url = f"http://rebinding.invalid:{server.port}/calc.git"
    env = pinned_http_config(url, [ipaddress.ip_address("127.0.0.1")])
    git_dir = tmp_path / "fetched.git"
    await git(["init", "--bare", "--quiet", str(git_dir)])
    await git(["fetch", "--quiet", "--depth", "1", url, "main"], cwd=git_dir, env=env)
    assert (await git(["rev-parse", "FETCH_HEAD"], cwd=git_dir)).decode().strip() == served.second
