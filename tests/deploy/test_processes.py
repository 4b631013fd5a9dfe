"""What each process of the stack runs with, the same in the compose file, the Kubernetes
manifests and the image: images, settings and secrets, commands and options, task queues,
probes and ports.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from functools import cache
from typing import Any

from core.infrastructure.settings import SECTIONS
from tests.deploy.artefacts import (
    API_PORT,
    BIN,
    METRICS_PORT,
    ROOT,
    TEMPORAL_PORT,
    UI_PORT,
    built_here,
    compose_command,
    compose_env,
    containers,
    deployments,
    dockerfile_stages,
    exec_form,
    k8s_command,
    k8s_documents,
    k8s_objects,
    kustomization,
    option_value,
    our_services,
    port_of,
    queues_of,
    services,
)
from tests.helpers import environment_names
from workers.main import ALL_QUEUES

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
