"""The deployment files, parsed: what the tests of `tests/deploy/` check against the code.

No container runs here (there may be no Docker daemon), so each file is checked against
what the project really has: settings names (`core.infrastructure.settings.Settings`), CLI
commands and options (`orchestrator <cmd> --help`), task queues (`workers.main.ALL_QUEUES`),
health routes, metric names (what `core.infrastructure.metrics` exports, what the installed
Temporal SDK and server binaries contain). Where a client tool is installed it checks too:
`docker compose config` (or `docker-compose`), the compose-spec JSON schema
(check-jsonschema), strict Kubernetes schemas (kubernetes-validate), `promtool` and
`hadolint`; without one, that check alone is skipped and says why.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.processes import REPO as ROOT

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.temporal.yml"
K8S = ROOT / "deploy" / "k8s"
BIN = Path(sys.executable).parent

API_PORT = 8000
METRICS_PORT = 9464
TEMPORAL_PORT = 7233
UI_PORT = 8080


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]  # type: ignore[no-any-return]


def built_here(service: dict[str, Any]) -> bool:
    """Built from this repository's Dockerfile (context `.`)."""
    build = service.get("build")
    if build is None:
        return False
    if isinstance(build, str):
        build = {"context": build}
    return Path(ROOT, build.get("context", ".")).resolve() == ROOT and (
        build.get("dockerfile", "Dockerfile") == "Dockerfile"
    )


def our_services() -> dict[str, dict[str, Any]]:
    found = {name: svc for name, svc in services().items() if built_here(svc)}
    assert found, "no compose service is built from the Dockerfile"
    return found


def compose_env(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {p[0]: (p[1] if len(p) > 1 else None) for p in pairs}
    return {str(k): (None if v is None else str(v)) for k, v in env.items()}


def compose_command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


@cache
def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return docs


def k8s_objects(kind: str | None = None) -> list[dict[str, Any]]:
    return [
        doc
        for _, doc in k8s_documents()
        if "apiVersion" in doc
        and doc.get("kind") != "Kustomization"
        and (kind is None or doc.get("kind") == kind)
    ]


def deployments() -> dict[str, dict[str, Any]]:
    found = {d["metadata"]["name"]: d for d in k8s_objects("Deployment")}
    assert found, "no Deployment in deploy/k8s"
    return found


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    spec = deployment["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def k8s_command(container: dict[str, Any]) -> list[str]:
    """The `orchestrator ...` argv after the entrypoint (the image's is `orchestrator`)."""
    command = [str(c) for c in container.get("command", [])]
    if command:
        assert command[0] == "orchestrator", f"{container['name']}: command {command}"
        command = command[1:]
    return command + [str(a) for a in container.get("args", [])]


def kustomization() -> dict[str, Any]:
    data = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert data["kind"] == "Kustomization"
    return data  # type: ignore[no-any-return]


@cache
def dockerfile_stages() -> list[dict[str, Any]]:
    """Stages in order: name, base image, instructions [(KEYWORD, argument)]."""
    text = DOCKERFILE.read_text()
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    args: dict[str, str] = {}
    stages: list[dict[str, Any]] = []
    for line in logical:
        keyword, _, argument = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = argument.partition("=")
            args[name.strip()] = default.strip()
        elif keyword == "FROM":
            parts = argument.split()
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            stage_name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append({"name": stage_name, "base": base, "instructions": []})
        else:
            assert stages, f"instruction before FROM: {line}"
            stages[-1]["instructions"].append((keyword, argument.strip()))
    return stages


def exec_form(argument: str) -> list[str]:
    value = json.loads(argument)
    assert isinstance(value, list), f"not exec form: {argument}"
    return [str(v) for v in value]


def option_value(argv: list[str], option: str) -> str | None:
    for index, token in enumerate(argv):
        if token == option and index + 1 < len(argv):
            return argv[index + 1]
        if token.startswith(option + "="):
            return token.split("=", 1)[1]
    return None


def queues_of(argv: list[str]) -> list[str]:
    value = option_value(argv, "--queues")
    return [q.strip() for q in (value or "").split(",") if q.strip()]


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1].strip("/").split("/")[0])
