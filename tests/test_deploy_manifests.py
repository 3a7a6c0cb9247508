"""Offline checks of deploy/: every manifest validates against the Kubernetes schema and agrees with the code."""

from __future__ import annotations

import ast
import json
import os
import re
import runpy
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from weika_kit.config import DEFAULT_GATEWAY_PORT, DEFAULT_GRPC_PORTS, DEFAULT_HTTP_PORTS

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BASE = K8S / "base"
SECRET_EXAMPLE = K8S / "weika-secrets.example.yaml"
COMPOSE = DEPLOY / "compose.yaml"
DASHBOARD = DEPLOY / "grafana" / "weika-dashboard.json"
SCRAPE = DEPLOY / "prometheus" / "scrape.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"

GRPC_SERVICES = ("catalog", "orders", "redemption", "marketing", "analytics")
SERVICES = (*GRPC_SERVICES, "gateway")
PDB_SERVICES = ("gateway", "redemption")
# The oldest Kubernetes minor we support and the newest the bundled schemas know.
KUBERNETES_VERSIONS = ("1.29", "1.37")
# Kinds that are not Kubernetes built-ins; kubernetes-validate has no schema for them, so they get
# the structural checks of their own tests instead.
CUSTOM_KINDS = {"KafkaTopic"}

# Metrics the Grafana dashboard queries before the code declares them (the work is in progress
# elsewhere). Each must leave this set once it is declared; the dashboard test lists the rest.
PENDING_METRICS = {"weika_redemptions_total"}


# --- loading ------------------------------------------------------------------------------------------

def _yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


# libyaml when PyYAML has it: the same safe loader, several times faster.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def _documents(path: Path) -> tuple[dict[str, Any], ...]:
    """The documents of a YAML file, parsed once per test session: read them, do not change them."""
    return tuple(doc for doc in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_LOADER) if doc is not None)


def _is_kustomization(path: Path) -> bool:
    return path.name in ("kustomization.yaml", "kustomization.yml", "Kustomization")


@cache
def _k8s_objects() -> tuple[tuple[Path, dict[str, Any]], ...]:
    """Every Kubernetes object deploy/ ships: k8s/ (base, components, the example Secret) and kafka/."""
    files = [p for p in _yaml_files() if p.is_relative_to(K8S) or p.is_relative_to(DEPLOY / "kafka")]
    return tuple((path, doc) for path in files if not _is_kustomization(path) for doc in _documents(path))


def _objects(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in _k8s_objects() if doc["kind"] == kind]


def _base_objects(service: str) -> dict[str, dict[str, Any]]:
    """The objects of one service's file in base, by kind."""
    objects: dict[str, dict[str, Any]] = {}
    for doc in _documents(BASE / f"{service}.yaml"):
        assert doc["kind"] not in objects, f"{service}.yaml declares two {doc['kind']} objects"
        objects[doc["kind"]] = doc
    return objects


def _deployments() -> Iterator[tuple[str, dict[str, Any]]]:
    for service in SERVICES:
        yield service, _base_objects(service)["Deployment"]


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{deployment['metadata']['name']}: one container per pod"
    return containers[0]


def _container_ports(container: dict[str, Any]) -> dict[str, int]:
    return {port["name"]: port["containerPort"] for port in container.get("ports", [])}


def _resolve_port(container: dict[str, Any], port: int | str) -> int:
    ports = _container_ports(container)
    if isinstance(port, str):
        assert port in ports, f"{container['name']}: port {port!r} is not a declared containerPort"
        return ports[port]
    assert port in ports.values(), f"{container['name']}: port {port} is not a declared containerPort"
    return port


def _env_values(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


def _config_map() -> dict[str, str]:
    (config,) = [doc for doc in _objects("ConfigMap") if doc["metadata"]["name"] == "weika-config"]
    return config["data"]


def _secret_example() -> dict[str, str]:
    (secret,) = _documents(SECRET_EXAMPLE)
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "weika-secrets"
    return secret["stringData"]


def _compose() -> dict[str, Any]:
    (compose,) = _documents(COMPOSE)
    return compose


# --- what the code reads and declares -----------------------------------------------------------------

def _source_files() -> list[Path]:
    """The code that runs in the images: the kit and each service's package (tests excluded)."""
    roots = [ROOT / "libs" / "weika-kit" / "src", *sorted((ROOT / "services").glob("*/src"))]
    return sorted(path for root in roots for path in root.rglob("*.py") if "migrations" not in path.parts)


@cache
def _parsed_sources() -> tuple[ast.Module, ...]:
    return tuple(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)) for path in _source_files())


@cache
def _source_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in _source_files())


@cache
def _known_env_names() -> tuple[frozenset[str], tuple[re.Pattern[str], ...]]:
    """Upper-case string literals in the code, and its f-string names such as f"WEIKA_{service.upper()}_HTTP_PORT"."""
    literals: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    for module in _parsed_sources():
        for node in ast.walk(module):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and re.fullmatch(r"[A-Z][A-Z0-9_]+", node.value):
                literals.add(node.value)
            elif isinstance(node, ast.JoinedStr):
                parts = [v.value if isinstance(v, ast.Constant) else None for v in node.values]
                fixed = "".join(p for p in parts if p is not None)
                if None in parts and fixed.startswith("WEIKA_") and re.fullmatch(r"[A-Z0-9_]+", fixed):
                    regex = "".join(re.escape(p) if p is not None else "(?P<service>[A-Z]+)" for p in parts)
                    patterns.append(re.compile(regex))
    return frozenset(literals), tuple(patterns)


def _env_name_is_read(name: str) -> bool:
    literals, patterns = _known_env_names()
    if name in literals:
        return True
    for pattern in patterns:
        match = pattern.fullmatch(name)
        if match and match.group("service").lower() in SERVICES:
            return True
    return False


_METRIC_CLASSES = {"Counter", "Gauge", "Histogram", "Summary"}


@cache
def _declared_metric_series() -> frozenset[str]:
    """Every series name the code's prometheus_client metrics expose (with _total, _bucket, ... suffixes)."""
    series: set[str] = set()
    for module in _parsed_sources():
        for node in ast.walk(module):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            kind = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if kind not in _METRIC_CLASSES:
                continue
            keywords = {k.arg: k.value for k in node.keywords}
            name_node = node.args[0] if node.args else keywords.get("name")
            if not (isinstance(name_node, ast.Constant) and isinstance(name_node.value, str)):
                continue
            name = name_node.value
            unit = keywords.get("unit")
            if isinstance(unit, ast.Constant) and unit.value and not name.endswith(f"_{unit.value}"):
                name = f"{name}_{unit.value}"
            if kind == "Counter":
                series.add(name.removesuffix("_total") + "_total")
            elif kind == "Gauge":
                series.add(name)
            else:
                series.update({name + "_sum", name + "_count"})
                series.add(name + "_bucket" if kind == "Histogram" else name)
    return frozenset(series)


# --- YAML and schema ----------------------------------------------------------------------------------

def test_every_yaml_file_under_deploy_parses() -> None:
    files = _yaml_files()
    assert files, "no YAML under deploy/"
    for path in files:
        assert _documents(path), f"{path.relative_to(ROOT)} is empty"


def test_every_kubernetes_object_validates_against_the_schema() -> None:
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail("kubernetes-validate is not installed (requirements.txt lists it): run `make venv`")

    validated = 0
    for path, doc in _k8s_objects():
        where = f"{path.relative_to(ROOT)}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if doc["kind"] in CUSTOM_KINDS:
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path_in_doc = ".".join(str(part) for part in error.path)
                pytest.fail(f"{where} is invalid for Kubernetes {version}: {path_in_doc}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError as error:
                pytest.fail(f"{where}: {error.message} (a custom kind belongs in CUSTOM_KINDS)")
        validated += 1
    assert validated >= 4 * len(SERVICES)


def test_objects_have_names_and_the_weika_label() -> None:
    for path, doc in _k8s_objects():
        metadata = doc["metadata"]
        assert metadata.get("name"), f"{path.relative_to(ROOT)}: an object without a name"
        assert metadata.get("labels", {}).get("app.kubernetes.io/part-of") == "weika", \
            f"{path.relative_to(ROOT)}: {doc['kind']}/{metadata['name']} lacks app.kubernetes.io/part-of=weika"


# --- kustomize ----------------------------------------------------------------------------------------

def test_base_kustomization_lists_every_file_in_base() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    present = {p.name for p in BASE.iterdir() if p.suffix in (".yaml", ".yml") and not _is_kustomization(p)}
    assert set(listed) == present


def _documents_in(folder: Path) -> list[dict[str, Any]]:
    return [doc for path, doc in _k8s_objects() if path.is_relative_to(folder)]


def test_base_does_not_ship_the_example_secret() -> None:
    # Applying the base must never overwrite the real Secret with placeholders.
    assert not [doc for doc in _documents_in(BASE) if doc["kind"] == "Secret"]


def test_components_are_kustomize_components_whose_resources_exist() -> None:
    components = sorted((K8S / "components").glob("*/kustomization.yaml"))
    assert components, "no kustomize components"
    for path in components:
        component = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert component["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
        assert component["kind"] == "Component"
        for resource in component.get("resources", []):
            target = (path.parent / resource).resolve()
            assert target.is_file() or (target / "kustomization.yaml").is_file(), \
                f"{path.relative_to(ROOT)}: resource {resource} does not resolve"
            if target.is_dir():
                nested = yaml.safe_load((target / "kustomization.yaml").read_text(encoding="utf-8"))
                for item in nested["resources"]:
                    assert (target / item).is_file(), f"{target.relative_to(ROOT)}: {item} is missing"


# --- every service ------------------------------------------------------------------------------------

@pytest.mark.parametrize("service", SERVICES)
def test_service_has_deployment_service_service_account_and_hpa(service: str) -> None:
    objects = _base_objects(service)
    expected = {"ServiceAccount", "Deployment", "Service", "HorizontalPodAutoscaler"}
    if service in PDB_SERVICES:
        expected.add("PodDisruptionBudget")
    assert set(objects) == expected
    for doc in objects.values():
        assert doc["metadata"]["name"] == service

    deployment = objects["Deployment"]
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pod["spec"]["serviceAccountName"] == service
    assert _container(deployment)["image"].startswith(f"weika/{service}:")
    # The autoscaler owns the replica count; a fixed one would be reset on every apply.
    assert "replicas" not in deployment["spec"]

    hpa = objects["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"] == ["cpu"]

    if service in PDB_SERVICES:
        pdb = objects["PodDisruptionBudget"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()


@pytest.mark.parametrize("service", SERVICES)
def test_service_selects_the_pods_and_targets_declared_ports(service: str) -> None:
    objects = _base_objects(service)
    pod = objects["Deployment"]["spec"]["template"]
    container = _container(objects["Deployment"])
    spec = objects["Service"]["spec"]
    assert spec["selector"].items() <= pod["metadata"]["labels"].items()
    for port in spec["ports"]:
        assert _resolve_port(container, port["targetPort"]) == port["port"]


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_has_probes_on_a_declared_port_served_by_the_code(service: str) -> None:
    container = _container(_base_objects(service)["Deployment"])
    probe_port = DEFAULT_GATEWAY_PORT if service == "gateway" else DEFAULT_HTTP_PORTS[service]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert probe in container, f"{service}: no {probe}"
        http_get = container[probe]["httpGet"]
        assert _resolve_port(container, http_get["port"]) == probe_port, f"{service}: {probe} port"
        assert f'"{http_get["path"]}"' in _source_text(), f"{service}: the code serves no {http_get['path']}"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # The gateway's /healthz fails while any service is down: restarting the gateway would not help.
    expected_liveness = "/livez" if service == "gateway" else "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == expected_liveness


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_has_resource_requests_and_limits(service: str) -> None:
    resources = _container(_base_objects(service)["Deployment"])["resources"]
    for bound in ("requests", "limits"):
        assert set(resources[bound]) >= {"cpu", "memory"}, f"{service}: {bound}"


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_runs_unprivileged_on_a_read_only_root(service: str) -> None:
    deployment = _base_objects(service)["Deployment"]
    pod_spec = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    pod_security = pod_spec.get("securityContext", {})
    security = container["securityContext"]
    assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True
    assert security.get("runAsUser", pod_security.get("runAsUser")) == 10001
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert not security.get("privileged", False)
    assert security["readOnlyRootFilesystem"] is True
    assert pod_spec["automountServiceAccountToken"] is False
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]], f"{service}: /tmp must be a writable emptyDir"


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_is_annotated_for_prometheus_on_its_metrics_port(service: str) -> None:
    deployment = _base_objects(service)["Deployment"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    container = _container(deployment)
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    metrics_port = int(annotations["prometheus.io/port"])
    assert metrics_port in _container_ports(container).values()
    assert metrics_port == (DEFAULT_GATEWAY_PORT if service == "gateway" else DEFAULT_HTTP_PORTS[service])


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_takes_config_from_weika_config_and_secrets_from_weika_secrets(service: str) -> None:
    container = _container(_base_objects(service)["Deployment"])
    assert {"configMapRef": {"name": "weika-config"}} in container["envFrom"]
    secret_keys = set(_secret_example())
    refs = [item["valueFrom"]["secretKeyRef"] for item in container["env"] if "secretKeyRef" in item.get("valueFrom", {})]
    assert refs, f"{service}: no secrets"
    for ref in refs:
        assert ref["name"] == "weika-secrets"
        assert ref["key"] in secret_keys, f"{service}: {ref['key']} is not in {SECRET_EXAMPLE.name}"
    instance = [item for item in container["env"] if item["name"] == "WEIKA_INSTANCE_ID"]
    assert instance == [{"name": "WEIKA_INSTANCE_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]


@pytest.mark.parametrize("service", GRPC_SERVICES)
def test_grpc_service_ports_agree_with_its_env_and_with_the_address_others_dial(service: str) -> None:
    objects = _base_objects(service)
    container = _container(objects["Deployment"])
    ports = _container_ports(container)
    env = _env_values(container)
    upper = service.upper()
    assert ports == {"grpc": DEFAULT_GRPC_PORTS[service], "http": DEFAULT_HTTP_PORTS[service]}
    assert env[f"WEIKA_{upper}_GRPC_BIND"] == f"0.0.0.0:{ports['grpc']}"
    assert env[f"WEIKA_{upper}_HTTP_PORT"] == str(ports["http"])
    assert _config_map()[f"WEIKA_{upper}_GRPC_ADDR"] == f"{service}:{ports['grpc']}"
    assert {p["name"]: p["port"] for p in objects["Service"]["spec"]["ports"]}["grpc"] == ports["grpc"]


def test_gateway_port_agrees_with_its_env() -> None:
    container = _container(_base_objects("gateway")["Deployment"])
    assert _container_ports(container) == {"http": DEFAULT_GATEWAY_PORT}
    assert _env_values(container)["WEIKA_GATEWAY_PORT"] == str(DEFAULT_GATEWAY_PORT)


def test_only_the_gateway_gets_the_operator_token() -> None:
    for service, deployment in _deployments():
        names = {item["name"] for item in _container(deployment)["env"]}
        assert ("WEIKA_ADMIN_TOKEN" in names) == (service == "gateway"), service


def test_example_secret_holds_placeholders_only() -> None:
    for key, value in _secret_example().items():
        assert "REPLACE-ME" in value, f"{SECRET_EXAMPLE.name}: {key} looks like a real value"


# --- environment variable names -----------------------------------------------------------------------

def _manifest_env_names() -> dict[str, set[str]]:
    """Env names the manifests hand to Weika processes, by where they are set."""
    names: dict[str, set[str]] = {"weika-config": set(_config_map()), "weika-secrets": set(_secret_example())}
    for service, deployment in _deployments():
        names[f"k8s {service}"] = {item["name"] for item in _container(deployment)["env"]}
    for service, spec in _compose()["services"].items():
        if service in SERVICES:
            names[f"compose {service}"] = set(spec.get("environment", {}))
    return names


def test_env_names_in_the_manifests_are_read_by_the_code() -> None:
    literals, patterns = _known_env_names()
    assert "POSTGRES_URL" in literals and patterns, "could not find the config module's env names"
    unknown = {
        where: sorted(name for name in names if not _env_name_is_read(name))
        for where, names in _manifest_env_names().items()
    }
    assert not {where: names for where, names in unknown.items() if names}


def test_env_names_of_a_service_name_only_that_service_except_addresses() -> None:
    for where, names in _manifest_env_names().items():
        if not where.startswith(("k8s ", "compose ")):
            continue
        service = where.split()[1]
        for name in names:
            match = re.fullmatch(r"WEIKA_([A-Z]+)_(.+)", name)
            if match and match.group(1).lower() in SERVICES and not name.endswith("_GRPC_ADDR"):
                assert match.group(1).lower() == service, f"{where} sets {name}"


# --- compose, Dockerfile, Prometheus, Grafana ---------------------------------------------------------

def test_compose_builds_all_six_services_from_the_one_dockerfile() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(SERVICES) <= set(services)
    assert {"postgres", "redis", "kafka"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    for service in SERVICES:
        build = services[service]["build"]
        assert (COMPOSE.parent / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE
        assert build["args"]["SERVICE"] == service
        port = DEFAULT_GATEWAY_PORT if service == "gateway" else DEFAULT_HTTP_PORTS[service]
        assert f":{port}/readyz" in " ".join(services[service]["healthcheck"]["test"]), service
    assert any(str(p).endswith("8080:8080") for p in services["gateway"]["ports"])


def test_compose_topic_job_runs_the_rendered_script() -> None:
    job = _compose()["services"]["kafka-topics"]
    host_path = job["volumes"][0].split(":")[0]
    assert (COMPOSE.parent / host_path).resolve() == DEPLOY / "kafka" / "create-topics.sh"


def test_dockerfile_builds_one_service_as_an_unprivileged_user() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert re.search(r"^ARG SERVICE$", text, re.M)
    assert "-r requirements.txt -c constraints.txt" in text
    assert "tools/gen_proto.py" in text
    assert "./libs/weika-contracts ./libs/weika-kit \"./services/${SERVICE}\"" in text
    assert re.findall(r"^USER (\S+)$", text, re.M) == ["10001:10001"]
    assert (DEPLOY / "Dockerfile.dockerignore").is_file()


def test_prometheus_scrapes_the_pods_by_the_annotations_the_deployments_carry() -> None:
    config = yaml.safe_load(SCRAPE.read_text(encoding="utf-8"))
    (job,) = config["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    relabel = {tuple(rule.get("source_labels", [])): rule for rule in job["relabel_configs"]}
    assert relabel[("__meta_kubernetes_pod_label_app_kubernetes_io_part_of",)]["regex"] == "weika"
    assert relabel[("__meta_kubernetes_pod_annotation_prometheus_io_scrape",)]["action"] == "keep"
    assert ("__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port") in relabel
    # A target label named `service` would clash with the gRPC metrics' own `service` label.
    assert "service" not in {rule.get("target_label") for rule in job["relabel_configs"]}
    for service, deployment in _deployments():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "weika", service


def _dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = []
    panels = list(dashboard["panels"])
    while panels:
        panel = panels.pop()
        panels.extend(panel.get("panels", []))
        exprs.extend(target["expr"] for target in panel.get("targets", []))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["definition"])
    return exprs


def test_grafana_dashboard_queries_only_metrics_the_code_declares() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    queried = {name for expr in _dashboard_exprs(dashboard) for name in re.findall(r"\bweika_[a-z0-9_]+", expr)}
    required = {
        "weika_grpc_server_handled_total", "weika_grpc_server_handling_seconds_bucket",
        "weika_http_requests_total", "weika_http_request_duration_seconds_bucket", "weika_outbox_backlog",
        "weika_consumer_lag", "weika_events_consumed_total", "weika_redemptions_total",
    }
    assert required <= queried
    undeclared = queried - _declared_metric_series()
    assert undeclared <= PENDING_METRICS, f"queried but declared nowhere: {sorted(undeclared - PENDING_METRICS)}"
    # The pending set names only what the dashboard still waits for.
    assert queried >= PENDING_METRICS


def test_grafana_dashboard_shows_dead_lettered_events() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert any('outcome="dead_lettered"' in expr for expr in _dashboard_exprs(dashboard))


# --- topics -------------------------------------------------------------------------------------------

def _rendered_topic_files() -> dict[Path, str]:
    namespace = runpy.run_path(str(DEPLOY / "gen_topics.py"), run_name="weika_deploy_gen_topics")
    return namespace["rendered"]()


def test_rendered_topic_files_are_up_to_date() -> None:
    for path, text in _rendered_topic_files().items():
        assert path.read_text(encoding="utf-8") == text, \
            f"{path.relative_to(ROOT)} is stale: run `python deploy/gen_topics.py`"
    assert os.access(DEPLOY / "kafka" / "create-topics.sh", os.X_OK)


def test_kafka_topics_cover_every_registered_topic_and_its_dead_letter_twin() -> None:
    registry = yaml.safe_load((ROOT / "proto" / "topics.yaml").read_text(encoding="utf-8"))
    expected = {t["name"] for t in registry["topics"]} | {t["name"] + ".dlq" for t in registry["topics"]}
    topics = _objects("KafkaTopic")
    assert {t["spec"]["topicName"] for t in topics} == expected
    script = (DEPLOY / "kafka" / "create-topics.sh").read_text(encoding="utf-8")
    assert set(re.findall(r"^create (\S+) ", script, re.M)) == expected
    for topic in topics:
        assert topic["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"]
        spec = topic["spec"]
        assert spec["partitions"] > 0 and spec["replicas"] > 0
        assert int(spec["config"]["retention.ms"]) > 0
