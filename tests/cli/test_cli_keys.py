"""`orchestrator orgs|keys|api` as an operator runs them: real processes, a real SQLite file.

The keys the CLI issues are then used over HTTP against `orchestrator api` started the
same way, so the test shows that what the CLI writes is what the API reads.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.infrastructure.local_stack import free_port
from core.persistence.key_cache import KEY_CACHE_SECONDS
from tests.processes import ORCHESTRATOR, assert_one_line_error, clean_environ, cli

SECRET = re.compile(r"^orch_[0-9a-f]{12}_\S+$", re.MULTILINE)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The caller's environment without our settings, and a data directory of its own."""
    return clean_environ({"ORCHESTRATOR_DATA_DIR": str(tmp_path / "data")})


def operator(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(*args, env=env, cwd=cwd, timeout=120)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return result.stdout


def secret_in(output: str) -> str:
    [secret] = SECRET.findall(output)
    return secret


@pytest.fixture
def api_server(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`orchestrator api --port P` on the same data directory, up once /healthz answers."""
    port = free_port()
    process = subprocess.Popen(
        [ORCHESTRATOR, "api", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the API did not come up:\n{process.communicate()[0]}")
        time.sleep(0.2)
    try:
        yield base, process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_an_operator_creates_an_org_and_keys_that_the_api_accepts(
    env: dict[str, str], tmp_path: Path, api_server: tuple[str, subprocess.Popen[str]]
) -> None:
    base, server = api_server
    created = ok(operator(env, tmp_path, "orgs", "create", "acme", "--monthly-tokens", "5000"))
    [org_id] = re.findall(r"organization acme: (org_[0-9a-f]+)", created)
    admin_secret = secret_in(created)
    assert "shown once" in created

    issued = ok(operator(env, tmp_path, "keys", "create", "--org", "acme", "--role", "viewer"))
    viewer_secret = secret_in(issued)
    [viewer_id] = re.findall(r"viewer key (key_[0-9a-f]+)", issued)
    named = ok(operator(env, tmp_path, "keys", "create", "--org", org_id, "--name", "ci"))
    assert "member key" in named and "(ci)" in named

    me = httpx.get(f"{base}/orgs/me", headers={"X-API-Key": viewer_secret}, timeout=10)
    assert me.status_code == 200, me.text
    assert (me.json()["id"], me.json()["monthly_token_limit"]) == (org_id, 5000)
    keys = httpx.get(f"{base}/keys", headers={"X-API-Key": admin_secret}, timeout=10)
    assert {k["name"] for k in keys.json()} == {"first admin key", "viewer key", "ci"}

    listing = ok(operator(env, tmp_path, "keys", "list", "--org", "acme"))
    assert admin_secret not in listing and viewer_secret not in listing
    assert not SECRET.search(listing)
    rows = {line.split()[0]: line for line in listing.splitlines()[1:]}
    assert len(rows) == 3
    viewer_row = rows[viewer_id]
    assert viewer_secret.split("_")[1] in viewer_row  # the prefix
    assert "viewer" in viewer_row and viewer_row.count("UTC") == 2  # created, last used

    revoked = ok(operator(env, tmp_path, "keys", "revoke", viewer_id))
    assert f"key {viewer_id} (viewer key) of {org_id} revoked" in revoked
    # Another process revoked it: the API trusts what it read of the key for at most
    # KEY_CACHE_SECONDS (docs/api.md), so it is refused within that, not necessarily at once.
    revoked_at = time.monotonic()
    while (
        status := httpx.get(
            f"{base}/orgs/me", headers={"X-API-Key": viewer_secret}, timeout=10
        ).status_code
    ) == 200 and time.monotonic() - revoked_at < KEY_CACHE_SECONDS + 1:
        time.sleep(0.2)
    assert status == 401
    relisted = ok(operator(env, tmp_path, "keys", "list", "--org", "acme"))
    revoked_row = {line.split()[0]: line for line in relisted.splitlines()[1:]}[viewer_id]
    assert revoked_row.count("UTC") == 3  # created, last used, revoked

    server.send_signal(signal.SIGINT)
    output, _ = server.communicate(timeout=60)
    assert server.returncode in (0, 130), output
    assert "Traceback" not in output
    assert f"API on http://127.0.0.1:{base.rsplit(':', 1)[1]}" in output


def test_bad_input_is_one_line_on_stderr(env: dict[str, str], tmp_path: Path) -> None:
    ok(operator(env, tmp_path, "orgs", "create", "acme"))
    assert_one_line_error(
        operator(env, tmp_path, "orgs", "create", "acme"), "named 'acme' already exists"
    )
    assert_one_line_error(
        operator(env, tmp_path, "orgs", "create", " "), "organization name is empty"
    )
    assert_one_line_error(
        operator(env, tmp_path, "orgs", "create", "big", "--monthly-tokens", "-5"),
        "cannot be negative",
    )
    assert_one_line_error(
        operator(env, tmp_path, "keys", "create", "--org", "nope"), "no organization 'nope'"
    )
    assert_one_line_error(
        operator(env, tmp_path, "keys", "list", "--org", "nope"), "no organization 'nope'"
    )
    assert_one_line_error(
        operator(env, tmp_path, "keys", "create", "--org", "acme", "--role", "boss"),
        "unknown role 'boss': choose one of admin, member, viewer",
    )
    assert_one_line_error(
        operator(env, tmp_path, "keys", "revoke", "key_nope"), "no API key 'key_nope'"
    )
    # Nothing was issued by the failed commands.
    assert len(ok(operator(env, tmp_path, "keys", "list", "--org", "acme")).splitlines()) == 2


def test_the_api_names_a_port_it_cannot_listen_on(env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = operator(env, tmp_path, "api", "--port", str(port))
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}")
