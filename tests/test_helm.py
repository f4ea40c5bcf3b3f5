"""deploy/helm/: the chart lints and renders with Helm's own engine (helm-python-sdk), with default values and with
every toggle on; each render validates against the Kubernetes schema, carries the rules of prometheus/alerts.yml and
the generated dashboard, and its ConfigMap passes the exporter's --config.check."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_module

# The whole module renders the chart through helm-python-sdk.
helm = require_module("helm_python")

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "auditmanager-exporter"
RULES = ROOT / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "grafana" / "auditmanager-exporter.json"
RELEASE, NAMESPACE = "compliance", "monitoring"
FULLNAME = f"{RELEASE}-auditmanager-exporter"
ROLE_ARN = "arn:aws:iam::111122223333:role/auditmanager-exporter"
ERROR = 3  # lint message severity

# Every toggle of values.yaml on, and every list and map filled.
ALL_ON: dict[str, Any] = {
    "replicas": 3,
    "config": {
        "poll_interval": "10m",
        "targets": [{"regions": ["us-east-1", "eu-west-1"], "discover": True, "control_domains": True}],
    },
    "webConfig": {"tls_server_config": {"cert_file": "/etc/tls/tls.crt", "key_file": "/etc/tls/tls.key"}},
    "probes": {
        "scheme": "HTTPS",
        "httpHeaders": [{"name": "Authorization", "value": "Basic cHJvbWV0aGV1czpzZWNyZXQ="}],
    },
    "extraArgs": ["--web.telemetry-path=/metrics"],
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": ROLE_ARN}},
    "podAnnotations": {"example.com/team": "compliance"},
    "podLabels": {"team": "compliance"},
    "commonLabels": {"cost-centre": "security"},
    "imagePullSecrets": [{"name": "registry"}],
    "priorityClassName": "monitoring",
    "serviceMonitor": {
        "enabled": True,
        "additionalLabels": {"release": "kube-prometheus-stack"},
        "scheme": "https",
        "tlsConfig": {"insecureSkipVerify": True},
        "relabelings": [{"action": "labeldrop", "regex": "pod"}],
    },
    "prometheusRule": {"enabled": True, "additionalLabels": {"release": "kube-prometheus-stack"}},
    "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "AWS"}},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "monitoring", "effect": "NoSchedule"}],
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "auditmanager-exporter"}},
                    },
                }
            ]
        }
    },
    "extraVolumes": [{"name": "tls", "secret": {"secretName": "auditmanager-exporter-tls"}}],
    "extraVolumeMounts": [{"name": "tls", "mountPath": "/etc/tls", "readOnly": True}],
}
VALUES = {"defaults": {}, "all-on": ALL_ON}


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    manifests = helm.Chart.load(CHART).render(values, name=RELEASE, namespace=NAMESPACE)
    return [
        document
        for path, text in sorted(manifests.items())
        if not path.endswith("NOTES.txt")
        for document in yaml.safe_load_all(text)
        if document
    ]


def one(documents: list[dict[str, Any]], kind: str, name: str = FULLNAME) -> dict[str, Any]:
    found = [doc for doc in documents if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {[d['kind'] for d in documents]}"
    return found[0]


def workload(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [doc for doc in documents if doc["kind"] in ("Deployment", "StatefulSet")]
    return found


def container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = workload(documents)["spec"]["template"]["spec"]["containers"]
    return found


def config_check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.yml"
    config.write_text(text, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--config.check", "--config.file", str(config)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )


@pytest.mark.parametrize("values", VALUES.values(), ids=VALUES.keys())
def test_chart_lints_without_errors_or_warnings(values: dict[str, Any]) -> None:
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    assert [message for message in report["messages"] if message["severity"] >= 2] == []


def test_lint_reports_values_the_schema_rejects() -> None:
    report = helm.lint(CHART, {"replicas": 0, "logLevel": "loud"})
    errors = " ".join(message["error"] for message in report["messages"] if message["severity"] == ERROR)
    assert "/replicas" in errors and "/logLevel" in errors


@pytest.mark.parametrize(
    "bad",
    [
        {"replicas": 0},
        {"replica": 2},
        {"serviceMonitor": {"enable": True}},
        {"probes": {"startup": {"periodSeconds": 0}}},
        {"probes": {"startup": {"failureTreshold": 10}}},
        {"resources": {"limits": {"memory": ["256Mi"]}}},
    ],
)
def test_render_refuses_values_outside_the_schema(bad: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError):
        render(bad)


@pytest.mark.parametrize("values", VALUES.values(), ids=VALUES.keys())
def test_every_rendered_object_validates_against_the_kubernetes_schema(values: dict[str, Any]) -> None:
    kubernetes_validate = require_module("kubernetes_validate")
    version = kubernetes_validate.latest_version()
    core = [doc for doc in render(values) if "monitoring.coreos.com" not in doc["apiVersion"]]
    assert {doc["kind"] for doc in core} >= {"ConfigMap", "Service", "ServiceAccount"}
    for document in core:
        assert kubernetes_validate.validate(document, version, strict=True), document["kind"]


@pytest.mark.parametrize("values", VALUES.values(), ids=VALUES.keys())
def test_rendered_configmap_passes_the_exporters_config_check(tmp_path: Path, values: dict[str, Any]) -> None:
    result = config_check(tmp_path, one(render(values), "ConfigMap")["data"]["config.yml"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config OK" in result.stdout


def test_config_check_of_the_rendered_configmap_catches_a_bad_config(tmp_path: Path) -> None:
    bad = {"config": {"poll_interval": "soon", "targets": [{"region": "us-east-1", "discover": True}]}}
    result = config_check(tmp_path, one(render(bad), "ConfigMap")["data"]["config.yml"])
    assert result.returncode == 2
    assert "poll_interval" in result.stdout + result.stderr


def test_defaults_run_one_unsharded_deployment_without_monitoring_objects() -> None:
    documents = render({})
    assert {doc["kind"] for doc in documents} == {"ConfigMap", "Service", "ServiceAccount", "Deployment"}
    deployment = one(documents, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert not any(arg.startswith("--shard.") for arg in container(documents)["args"])


def test_more_than_one_replica_runs_a_statefulset_whose_pods_take_their_shard_from_their_ordinal() -> None:
    documents = render({"replicas": 4})
    statefulset = one(documents, "StatefulSet")
    assert statefulset["spec"]["replicas"] == 4
    assert statefulset["spec"]["serviceName"] == one(documents, "Service")["metadata"]["name"]
    args = container(documents)["args"]
    assert "--shard.count=4" in args
    assert "--shard.index=$(SHARD_INDEX)" in args
    (env,) = container(documents)["env"]
    assert env["name"] == "SHARD_INDEX"
    assert env["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"


def test_a_config_change_changes_the_checksum_annotation_that_rolls_the_pods() -> None:
    def checksum(values: dict[str, Any]) -> str:
        annotations = workload(render(values))["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/config"])

    changed = {"config": {"poll_interval": "5m", "targets": [{"region": "eu-west-1", "discover": True}]}}
    assert checksum({}) == checksum({})
    assert checksum({}) != checksum(changed)


def test_web_config_becomes_a_secret_passed_with_web_config_file() -> None:
    documents = render(ALL_ON)
    secret = one(documents, "Secret", f"{FULLNAME}-web-config")
    assert yaml.safe_load(secret["stringData"]["web-config.yml"]) == ALL_ON["webConfig"]
    pod = workload(documents)["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["name"]: mount["mountPath"] for mount in container(documents)["volumeMounts"]}
    assert volumes["web-config"]["secret"]["secretName"] == secret["metadata"]["name"]
    assert f"--web.config.file={mounts['web-config']}/web-config.yml" in container(documents)["args"]
    assert "checksum/web-config" in workload(documents)["spec"]["template"]["metadata"]["annotations"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        check = container(documents)[probe]["httpGet"]
        assert check["scheme"] == "HTTPS"
        assert check["httpHeaders"] == ALL_ON["probes"]["httpHeaders"]


def test_a_startup_probe_on_healthz_holds_the_liveness_probe_off_for_as_long_as_the_values_say() -> None:
    for values, (period, failures) in (({}, (5, 60)), ({"probes": {"startup": {"failureThreshold": 120}}}, (5, 120))):
        probes = container(render(values))
        startup = probes["startupProbe"]
        assert (
            startup["httpGet"]
            == probes["livenessProbe"]["httpGet"]
            == {
                "path": "/healthz",
                "port": "metrics",
                "scheme": "HTTP",
            }
        )
        assert (startup["periodSeconds"], startup["failureThreshold"]) == (period, failures)
        # The startup probe, not a fixed delay, decides when liveness starts.
        assert "initialDelaySeconds" not in probes["livenessProbe"]


def test_values_say_per_100_targets_which_resources_to_raise() -> None:
    values = (CHART / "values.yaml").read_text(encoding="utf-8")
    comment = values[: values.index("\nresources:")].rsplit("\n\n", 1)[-1]
    assert "per 100 targets" in comment
    assert re.search(r"\d+ ?Mi\b", comment) and re.search(r"\d+m\b", comment), comment


@pytest.mark.parametrize("values", VALUES.values(), ids=VALUES.keys())
def test_pods_run_non_root_read_only_without_privilege_escalation_or_capabilities(values: dict[str, Any]) -> None:
    documents = render(values)
    pod = workload(documents)["spec"]["template"]["spec"]
    security = container(documents)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["automountServiceAccountToken"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert set(container(documents)["resources"]) == {"requests", "limits"}


def test_service_account_carries_the_irsa_annotation_and_the_pods_use_it() -> None:
    documents = render(ALL_ON)
    account = one(documents, "ServiceAccount")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ROLE_ARN}
    assert workload(documents)["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]


def test_scheduling_values_and_extra_args_reach_the_pod() -> None:
    documents = render(ALL_ON)
    pod = workload(documents)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == ALL_ON["nodeSelector"]
    assert pod["tolerations"] == ALL_ON["tolerations"]
    assert pod["affinity"] == ALL_ON["affinity"]
    assert container(documents)["args"][-1] == "--web.telemetry-path=/metrics"


def test_servicemonitor_selects_the_service_and_names_the_job_the_alerts_expect() -> None:
    documents = render(ALL_ON)
    monitor = one(documents, "ServiceMonitor")
    service = one(documents, "Service")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == ["metrics"]
    # The job takes the value of the Service's label named by jobLabel, whatever the release is called.
    job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    assert f'job="{job}"' in RULES.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["alerts.yml", "auditmanager-exporter.json"])
def test_chart_files_are_links_to_the_repositorys_rules_and_dashboard(name: str) -> None:
    # Helm packages a linked file's contents; a link cannot drift from its source as a copy would.
    path = CHART / "files" / name
    assert path.is_symlink()
    assert path.resolve() in (RULES, DASHBOARD)
    assert path.resolve().name == name


def test_rendered_prometheusrule_carries_exactly_the_rule_groups_of_prometheus_alerts_yml() -> None:
    rule = one(render(ALL_ON), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]


def test_rendered_dashboard_configmap_has_the_sidecar_label_and_the_generated_dashboard() -> None:
    configmap = one(render(ALL_ON), "ConfigMap", f"{FULLNAME}-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "AWS"}
    (name,) = configmap["data"]
    assert name == DASHBOARD.name
    assert json.loads(configmap["data"][name]) == json.loads(DASHBOARD.read_text(encoding="utf-8"))


def test_notes_tell_how_to_reach_the_metrics() -> None:
    notes = helm.Chart.load(CHART).render({}, name=RELEASE, namespace=NAMESPACE)[
        "auditmanager-exporter/templates/NOTES.txt"
    ]
    assert f"port-forward service/{FULLNAME} 10118" in notes
    assert "eks.amazonaws.com/role-arn" in notes


def test_the_values_example_in_the_docs_renders_and_its_config_passes_the_check(tmp_path: Path) -> None:
    docs = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```yaml\n# my-values.yaml\n(.*?)```", docs, flags=re.DOTALL)
    values = yaml.safe_load(example)
    documents = render(values)
    assert {"ServiceMonitor", "PrometheusRule"} <= {doc["kind"] for doc in documents}
    result = config_check(tmp_path, one(documents, "ConfigMap")["data"]["config.yml"])
    assert result.returncode == 0, result.stdout + result.stderr
