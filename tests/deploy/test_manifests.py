"""Static checks of everything under deploy/: it parses, it hangs together, it names real metrics.

A light schema check in Python (no cluster here): Kubernetes objects have apiVersion/kind/metadata,
workloads have probes, resources and a non-root user, selectors match; compose gives each gateway
its own spool volume; every metric a dashboard panel or an alert queries exists in the code.

Run as a module to regenerate the PrometheusRule from alerts.yml:
    .venv/bin/python -m tests.deploy.test_manifests
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from espwire.config import REPO_ROOT, load_settings
from tests.support.haproxy import HAPROXY_CFG, haproxy_env

DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS_RULE = K8S / "prometheus-operator" / "prometheusrule.yaml"
SPOOL_DIR = "/var/lib/espwire"

NAMESPACED_KINDS = {
    "ConfigMap",
    "Secret",
    "Service",
    "Deployment",
    "StatefulSet",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "PodMonitor",
    "ServiceMonitor",
    "PrometheusRule",
}


def deploy_files(*suffixes: str) -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in suffixes)


def k8s_objects() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield path, doc


def workloads() -> list[dict[str, Any]]:
    return [doc for _, doc in k8s_objects() if doc["kind"] in ("Deployment", "StatefulSet")]


# -- everything parses -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", deploy_files(".yml", ".yaml"), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert docs, f"{path} is empty"


@pytest.mark.parametrize("path", deploy_files(".json"), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_json_parses(path: Path) -> None:
    assert isinstance(json.loads(path.read_text()), dict)


@pytest.mark.parametrize("path", deploy_files(".toml"), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_espwire_configs_validate(path: Path) -> None:
    settings = load_settings(path)  # the same validation as `espwire config check`
    assert settings.sources


# -- Kubernetes ------------------------------------------------------------------------------------
def test_k8s_objects_have_the_required_fields() -> None:
    objects = list(k8s_objects())
    assert {doc["kind"] for _, doc in objects} >= {
        "Namespace",
        "Secret",
        "StatefulSet",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "PodMonitor",
    }
    for path, doc in objects:
        where = f"{path.relative_to(DEPLOY)} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        assert doc.get("apiVersion") == "v1" or re.fullmatch(r"[a-z0-9.]+/v[0-9a-z]+", doc["apiVersion"]), where
        assert isinstance(doc.get("kind"), str), where
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), where
        if doc["kind"] in NAMESPACED_KINDS:
            assert doc["metadata"].get("namespace") == "espwire", where


def test_k8s_workloads_have_probes_resources_and_a_non_root_user() -> None:
    for doc in workloads():
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        spec = doc["spec"]
        template = spec["template"]
        assert spec["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items(), name
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true", name
        for container in pod["containers"]:
            assert container["image"].startswith("espwire"), name
            assert container["args"][0] in ("gateway", "process", "sink"), name
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), name
            assert "memory" in resources["limits"], name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            assert mounts.get("config") == "/etc/espwire", name
            port = str(template["metadata"]["annotations"]["prometheus.io/port"])
            assert port in {str(p["containerPort"]) for p in container["ports"]}, name


def test_k8s_gateway_is_a_statefulset_with_its_own_spool_probes_and_drain() -> None:
    (gateway,) = [doc for doc in workloads() if doc["metadata"]["name"] == "gateway"]
    assert gateway["kind"] == "StatefulSet"
    (claim,) = gateway["spec"]["volumeClaimTemplates"]
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    assert {"name": claim["metadata"]["name"], "mountPath": SPOOL_DIR} in container["volumeMounts"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    pre_stop = container["lifecycle"]["preStop"]
    assert pre_stop["exec"]["command"][0] == "sleep"
    drain_seconds = int(pre_stop["exec"]["command"][1])
    assert gateway["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > drain_seconds
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["ESPWIRE_DATADIR"] == SPOOL_DIR


def test_k8s_hpas_pdbs_and_services_point_at_real_workloads() -> None:
    by_name = {(doc["kind"], doc["metadata"]["name"]): doc for doc in workloads()}
    pod_labels = [doc["spec"]["template"]["metadata"]["labels"] for doc in by_name.values()]
    partitions = tomllib.loads((K8S / "base" / "espwire.toml").read_text())["kafka"]["partitions"]
    for _, doc in k8s_objects():
        kind = doc["kind"]
        if kind == "HorizontalPodAutoscaler":
            target = doc["spec"]["scaleTargetRef"]
            assert (target["kind"], target["name"]) in by_name, target
            assert doc["spec"]["metrics"][0]["resource"]["name"] == "cpu"
            if target["name"] == "processor":
                # Processors share one consumer group on raw: more than its partitions would idle.
                assert doc["spec"]["maxReplicas"] <= partitions
        elif kind in ("PodDisruptionBudget", "PodMonitor"):
            selector = doc["spec"]["selector"]["matchLabels"]
            assert any(selector.items() <= labels.items() for labels in pod_labels), doc["metadata"]["name"]
        elif kind == "Service":
            selector = doc["spec"]["selector"]
            assert any(selector.items() <= labels.items() for labels in pod_labels), doc["metadata"]["name"]


def test_kustomize_builds(kubectl: str) -> None:
    for directory in (K8S, K8S / "prometheus-operator"):
        result = subprocess.run(
            [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        kinds = [doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc]
        assert "ConfigMap" in kinds and "StatefulSet" in kinds


def prometheus_rule_from_alerts() -> str:
    class Dumper(yaml.SafeDumper):  # type: ignore[misc,unused-ignore]  # no PyYAML stubs installed
        pass

    def text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)

    Dumper.add_representer(str, text)
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "espwire", "namespace": "espwire", "labels": {"app.kubernetes.io/part-of": "espwire"}},
        "spec": yaml.safe_load(ALERTS.read_text()),
    }
    header = (
        "# GENERATED from deploy/prometheus/alerts.yml (tests/deploy/test_manifests.py checks they agree).\n"
        "# Regenerate: .venv/bin/python -m tests.deploy.test_manifests\n"
    )
    body: str = yaml.dump(rule, Dumper=Dumper, sort_keys=False, width=120)
    return header + body


def test_prometheus_rule_matches_alerts_yml() -> None:
    rule = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text()), "regenerate: python -m tests.deploy.test_manifests"


# -- compose, HAProxy, Docker ------------------------------------------------------------------------
def test_compose_gives_each_gateway_its_own_spool_volume() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    gateways = {name: svc for name, svc in services.items() if svc.get("command", [None])[0] == "gateway"}
    assert len(gateways) >= 2
    spools = []
    for name, service in gateways.items():
        (volume,) = [v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == SPOOL_DIR]
        assert volume in compose["volumes"], f"{name}: spool volume {volume} is not a named volume"
        assert service.get("deploy", {}).get("replicas", 1) == 1, f"{name}: replicas would share one spool volume"
        spools.append(volume)
    assert len(set(spools)) == len(spools), f"gateways share a spool volume: {spools}"
    # HAProxy balances exactly the gateways, Prometheus scrapes each of them.
    haproxy_targets = {v.split(":")[0] for k, v in services["haproxy"]["environment"].items() if "GATEWAY" in k}
    assert haproxy_targets == gateways.keys()
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "espwire-gateway"]
    assert {t.split(":")[0] for t in job["static_configs"][0]["targets"]} == gateways.keys()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} does not exist"
        if isinstance(service.get("build"), dict):
            context = COMPOSE.parent / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).is_file()
            assert (context / "pyproject.toml").is_file(), "the build context must be the repository root"


def test_haproxy_config_is_valid(haproxy_binary: str, tmp_path: Path) -> None:
    # The binds of the compose file; -c parses and resolves, it does not bind.
    env = haproxy_env(":8080", ":8404", ["127.0.0.1:8081", "127.0.0.1:8082"])
    result = subprocess.run(
        [haproxy_binary, "-c", "-f", str(HAPROXY_CFG)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = HAPROXY_CFG.read_text()
    assert "http-check send meth GET uri /readyz" in text
    assert "option forwardfor" in text


def test_dockerfile_runs_espwire_as_a_non_root_user() -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert "pip install ." in text
    (user,) = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert not user.startswith(("root", "0")), user
    assert 'ENTRYPOINT ["espwire"]' in text
    ignore = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    assert "**" in ignore and "!pyproject.toml" in ignore


# -- metric names ----------------------------------------------------------------------------------
def metric_names_in_code() -> set[str]:
    """Every espwire_* metric declared in a *metrics* module."""
    files = [
        path
        for package in ("ingest_gateway", "processors", "sinks", "espwire")
        for path in (REPO_ROOT / package).rglob("*.py")
        if "metrics" in path.name
    ]
    names: set[str] = set()
    for path in files:
        names.update(re.findall(r"[\"'](espwire_[a-z0-9_]+)[\"']", path.read_text()))
    # prometheus_client exposes a Counter named "x" or "x_total" as "x_total".
    names |= {f"{name}_total" for name in names if not name.endswith("_total")}
    return names


def queried_metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b(espwire_[a-z0-9_]+)", expr))
    return {re.sub(r"_(bucket|sum|count|created)$", "", name) for name in names}


def dashboard_queries() -> list[tuple[str, str]]:
    queries = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())

        def walk(panels: list[dict[str, Any]], file: str = path.name) -> None:
            for panel in panels:
                walk(panel.get("panels", []))
                for target in panel.get("targets", []):
                    queries.append((f"{file}: {panel['title']}", target["expr"]))

        walk(dashboard["panels"])
    return queries


def alert_queries() -> list[tuple[str, str]]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [(rule.get("alert", rule.get("record", "")), rule["expr"]) for g in rules["groups"] for rule in g["rules"]]


def test_dashboard_has_the_panels_operators_need() -> None:
    (dashboard,) = [json.loads(p.read_text()) for p in DASHBOARDS.glob("espwire-overview.json")]
    exprs = " ".join(expr for _, expr in dashboard_queries())
    for needle in [
        "espwire_gateway_requests_total",
        "histogram_quantile(0.99, sum by (le, path) (rate(espwire_gateway_ack_seconds_bucket",
        "histogram_quantile(0.5, sum by (le, path) (rate(espwire_gateway_ack_seconds_bucket",
        "espwire_gateway_spool_bytes",
        "espwire_gateway_kafka_up",
        "sum by (type) (rate(espwire_processor_events_total",
        "sum by (reason) (rate(espwire_processor_dead_letters_total",
        "espwire_processor_consumer_lag",
        "espwire_dedupe_store_up",
        "espwire_dedupe_duplicates_dropped_total",
        "espwire_enrich_seconds_bucket",
        "espwire_sink_events_written_total",
        "espwire_sink_write_seconds_bucket",
    ]:
        assert needle in exprs, needle
    assert dashboard["uid"] == "espwire-overview"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["uid"] == "prometheus"


def test_jobs_the_alerts_select_are_scraped_under_that_name_in_both_setups() -> None:
    """An alert on ``up{job="..."}`` must name a job that exists: prometheus.yml's job_name for compose,
    the PodMonitors' job relabelling on Kubernetes (the operator's own name would be namespace/name)."""
    selected = {job for _, expr in alert_queries() for job in re.findall(r'job="([^"]+)"', expr)}
    assert selected, "the gateway-down alert selects its job"
    compose_jobs = {
        job["job_name"] for job in yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())["scrape_configs"]
    }
    k8s_jobs = {
        relabel["replacement"]
        for _, doc in k8s_objects()
        if doc["kind"] == "PodMonitor"
        for endpoint in doc["spec"]["podMetricsEndpoints"]
        for relabel in endpoint.get("relabelings", [])
        if relabel.get("targetLabel") == "job"
    }
    assert selected <= compose_jobs, selected - compose_jobs
    assert selected <= k8s_jobs, selected - k8s_jobs


@pytest.mark.parametrize("where, expr", dashboard_queries() + alert_queries())
def test_every_queried_metric_exists_in_the_code(where: str, expr: str) -> None:
    queried = queried_metric_names(expr)
    assert queried or expr.startswith("up{"), f"{where}: no espwire metric in {expr!r}"
    missing = queried - metric_names_in_code()
    assert not missing, f"{where}: {sorted(missing)} are not declared in any *metrics* module"


if __name__ == "__main__":
    PROMETHEUS_RULE.write_text(prometheus_rule_from_alerts())
    print(f"wrote {PROMETHEUS_RULE.relative_to(REPO_ROOT)}")
