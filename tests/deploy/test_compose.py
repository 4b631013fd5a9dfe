"""The compose file (`docker-compose.temporal.yml`): the whole stack, valid as compose reads it."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.deploy.artefacts import (
    COMPOSE_FILE,
    ROOT,
    compose,
    services,
)


def test_compose_file_parses_and_has_the_whole_stack() -> None:
    expected = {
        "postgresql",
        "temporal",
        "temporal-ui",
        "api",
        "worker-orchestration",
        "worker-agents",
        "worker-checks",
        "prometheus",
        "grafana",
    }
    assert expected <= set(services()), f"missing: {expected - set(services())}"
    assert services()["temporal"]["image"].startswith("temporalio/auto-setup:")
    assert services()["temporal"]["environment"]["DB"] == "postgres12"
    assert services()["temporal"]["environment"]["POSTGRES_SEEDS"] == "postgresql"
    # every depends_on names a service of the file
    for name, svc in services().items():
        for dependency in svc.get("depends_on") or []:
            assert dependency in services(), f"{name} depends on unknown {dependency}"
    # bind mounts point at files of the repository
    for name, svc in services().items():
        for volume in svc.get("volumes") or []:
            source = str(volume).split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def compose_client() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=60
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_accepts_the_file() -> None:
    client = compose_client()
    if client is None:
        pytest.fail(
            "neither `docker compose` (the compose plugin) nor `docker-compose` is installed "
            "(`.ci/run` installs Debian's docker-compose)"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    result = subprocess.run(
        [*client, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr or result.stdout


def test_compose_file_matches_the_compose_specification() -> None:
    import jsonschema
    from check_jsonschema.builtin_schemas import get_builtin_schema

    schema = get_builtin_schema("vendor.compose-spec")
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(compose())
    ]
    assert not errors, "\n".join(errors)
