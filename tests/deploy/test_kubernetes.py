"""The Kubernetes manifests (`deploy/k8s/`): valid, resourced, unprivileged, scaled on backlog."""

from __future__ import annotations

import yaml

from tests.deploy.artefacts import (
    K8S,
    containers,
    deployments,
    k8s_command,
    k8s_documents,
    k8s_objects,
    kustomization,
    queues_of,
)


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
    import kubernetes_validate  # the test extra: it ships the Kubernetes JSON schemas

    failures = []
    for file, doc in k8s_documents():
        if "apiVersion" not in doc or doc.get("kind") == "Kustomization":
            continue
        try:
            kubernetes_validate.validate(doc, "1.30.0", strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{file} {doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert not failures, "\n".join(failures)
