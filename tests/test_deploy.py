"""deploy/: the Kubernetes manifests validate and are locked down, their monitoring objects match the Service and
prometheus/alerts.yml, and the IAM policy grants exactly the Audit Manager, AWS Config and Security Hub operations the
exporter's code calls."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import botocore
import botocore.session
import pytest
import yaml

from tests.conftest import require_module

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
POLICY = ROOT / "deploy" / "iam-policy.json"
RULES = ROOT / "prometheus" / "alerts.yml"
CORE_KINDS = {"Deployment", "Service", "ConfigMap", "ServiceAccount"}
NAME = "auditmanager-exporter"
PORT = 10118
CONFIG_DIR = "/etc/auditmanager-exporter"


# ---- manifests


def manifests() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return documents


def one(kind: str) -> dict[str, Any]:
    found = [doc for doc in manifests() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container() -> dict[str, Any]:
    containers = one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_manifests_hold_every_required_kind() -> None:
    assert {doc["kind"] for doc in manifests()} >= CORE_KINDS | {"ServiceMonitor", "PrometheusRule"}


def test_kustomization_lists_every_manifest_file() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8"))
    files = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def core_documents() -> list[tuple[str, dict[str, Any]]]:
    """Every Kubernetes object under deploy/kubernetes/, variants included, except Kustomizations and CRDs."""
    documents = []
    for path in sorted(KUBERNETES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc["kind"] != "Kustomization" and "monitoring.coreos.com" not in doc["apiVersion"]:
                documents.append((f"{path.relative_to(KUBERNETES)}:{doc['kind']}", doc))
    return documents


@pytest.mark.parametrize("document", [doc for _, doc in core_documents()], ids=[name for name, _ in core_documents()])
def test_core_manifest_validates_against_the_kubernetes_schema(document: dict[str, Any]) -> None:
    kubernetes_validate = require_module("kubernetes_validate")
    version = kubernetes_validate.latest_version()
    assert kubernetes_validate.validate(document, version, strict=True)


def test_strict_validation_rejects_an_unknown_field() -> None:
    kubernetes_validate = require_module("kubernetes_validate")
    deployment = one("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["probe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def test_deployment_runs_non_root_read_only_without_privilege_escalation_or_capabilities() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    security = container()["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]


def test_deployment_sets_resource_requests_and_limits() -> None:
    resources = container()["resources"]
    for bound in ("requests", "limits"):
        assert set(resources[bound]) == {"cpu", "memory"}, bound


def test_deployment_probes_healthz_for_startup_and_liveness_and_readyz_for_readiness() -> None:
    ports = {port["name"]: port["containerPort"] for port in container()["ports"]}
    assert ports == {"metrics": PORT}
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        check = container()[probe]["httpGet"]
        assert check["path"] == path
        assert check["port"] in ("metrics", PORT)


@pytest.mark.parametrize("path", ["deployment.yaml", "sharded/statefulset.yaml"])
def test_a_startup_probe_not_a_fixed_delay_holds_the_liveness_probe_off_for_minutes(path: str) -> None:
    (workload,) = [doc for doc in yaml.safe_load_all((KUBERNETES / path).read_text(encoding="utf-8")) if doc]
    (probed,) = workload["spec"]["template"]["spec"]["containers"]
    startup = probed["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    assert "initialDelaySeconds" not in probed["livenessProbe"]


def test_deployment_mounts_the_configmap_where_the_image_reads_its_config() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container()["volumeMounts"]}
    config = volumes[mounts[CONFIG_DIR]["name"]]
    assert config["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]
    assert mounts[CONFIG_DIR]["readOnly"] is True
    assert "config.yml" in one("ConfigMap")["data"]
    assert f"--config.file={CONFIG_DIR}/config.yml" in (ROOT / "Dockerfile").read_text(encoding="utf-8")


def test_configmap_config_passes_the_exporters_config_check(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(one("ConfigMap")["data"]["config.yml"], encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.check", "--config.file", str(config)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config OK" in result.stdout


def test_deployment_selector_matches_its_pods_and_the_service_selects_them() -> None:
    deployment = one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert one("Service")["spec"]["selector"].items() <= pod_labels.items()


def test_service_exposes_the_metrics_port_by_name() -> None:
    ports = one("Service")["spec"]["ports"]
    assert [(port["name"], port["port"], port["targetPort"]) for port in ports] == [("metrics", PORT, "metrics")]


def test_pods_use_the_service_account_with_an_irsa_role_annotation() -> None:
    account = one("ServiceAccount")
    assert one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role.startswith("arn:aws:iam::") and ":role/" in role


def test_servicemonitor_scrapes_the_services_metrics_port_under_the_job_the_alerts_expect() -> None:
    monitor = one("ServiceMonitor")
    service = one("Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == ["metrics"]
    # Without spec.jobLabel the Prometheus Operator names the job after the Service.
    assert "jobLabel" not in monitor["spec"]
    assert service["metadata"]["name"] == NAME
    assert f'job="{NAME}"' in RULES.read_text(encoding="utf-8")


def test_prometheusrule_carries_exactly_the_rules_of_prometheus_alerts_yml() -> None:
    rule = one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]


# ---- IAM policy


SERVICES = ("auditmanager", "config", "securityhub")


@cache
def service_operations() -> dict[str, set[str]]:
    """snake_case method name -> the IAM actions ("service:Operation") it stands for, over the AWS services the
    exporter calls (a name two services share stands for both)."""
    actions: dict[str, set[str]] = {}
    for service in SERVICES:
        model = botocore.session.get_session().get_service_model(service)
        for operation in model.operation_names:
            actions.setdefault(botocore.xform_name(operation), set()).add(f"{service}:{operation}")
    return actions


def operations_called(source: str) -> set[str]:
    """The IAM actions of the AWS operations a module calls: client methods named after one, and
    get_paginator("..."). Within a client class that names its `SERVICE`, a name two services share stands for that
    service's operation only."""
    operations = service_operations()
    called: set[str] = set()
    tree = ast.parse(source)
    service_of: dict[ast.AST, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            service = _declared_service(node)
            if service is not None:
                service_of.update((inner, service) for inner in ast.walk(node))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        names = [node.func.attr]
        if node.func.attr == "get_paginator":
            names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        elif node.func.attr not in operations:
            continue
        for name in names:
            actions = operations[name]
            if node in service_of:
                actions = {action for action in actions if action.startswith(f"{service_of[node]}:")}
            called |= actions
    return called


def _declared_service(node: ast.ClassDef) -> str | None:
    """The string a class body assigns to `SERVICE`, if any."""
    for statement in node.body:
        if (
            isinstance(statement, ast.Assign)
            and any(isinstance(target, ast.Name) and target.id == "SERVICE" for target in statement.targets)
            and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str)
        ):
            return statement.value.value
    return None


def exporter_operations() -> set[str]:
    sources = sorted((ROOT / "exporter").rglob("*.py"))
    assert sources, "no exporter sources found"
    return set().union(*(operations_called(path.read_text(encoding="utf-8")) for path in sources))


def policy() -> dict[str, Any]:
    return json.loads(POLICY.read_text(encoding="utf-8"))


def test_a_name_two_services_share_stands_for_the_service_its_client_class_names() -> None:
    source = (
        "class Tags:\n"
        "    SERVICE = 'auditmanager'\n"
        "    def tags(self):\n"
        "        return self._client.list_tags_for_resource(resourceArn=arn)\n"
        "client.list_tags_for_resource(ResourceArn=arn)\n"
    )
    inside = source.split("client.list_tags_for_resource(ResourceArn", maxsplit=1)[0]
    assert operations_called(inside) == {"auditmanager:ListTagsForResource"}
    assert operations_called(source) == {
        "auditmanager:ListTagsForResource",
        "config:ListTagsForResource",
        "securityhub:ListTagsForResource",
    }


def test_operation_finder_sees_client_calls_and_paginators_and_ignores_other_calls() -> None:
    source = (
        "client.get_insights_by_assessment(assessmentId=x)\n"
        "client.get_paginator('list_assessments').paginate()\n"
        "client.get_insights()\n"
        "config.describe_conformance_pack_compliance(ConformancePackName=x)\n"
        "helper.format_value(1)\n"
        "get_assessment\n"
    )
    assert operations_called(source) == {
        "auditmanager:GetInsightsByAssessment",
        "auditmanager:ListAssessments",
        "auditmanager:GetInsights",
        "securityhub:GetInsights",
        "config:DescribeConformancePackCompliance",
    }


def test_iam_policy_allows_exactly_the_operations_the_exporter_calls() -> None:
    called = exporter_operations()
    actions = {action for statement in policy()["Statement"] for action in _as_list(statement["Action"])}
    assert actions == called, f"policy grants {sorted(actions)}, code calls {sorted(called)}"
    assert {action.split(":")[0] for action in actions} == set(SERVICES)


def test_iam_policy_is_one_allow_statement_of_read_actions_on_every_resource() -> None:
    document = policy()
    assert document["Version"] == "2012-10-17"
    (statement,) = document["Statement"]
    assert statement["Effect"] == "Allow"
    # These Audit Manager, AWS Config and Security Hub actions support no resource-level permissions.
    assert statement["Resource"] == "*"
    assert "Condition" not in statement and "NotAction" not in statement
    for action in _as_list(statement["Action"]):
        service, operation = action.split(":")
        assert service in SERVICES
        assert "*" not in operation
        assert {action} <= service_operations()[botocore.xform_name(operation)]
        assert operation.startswith(("Get", "List", "Describe", "BatchGet")), action


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value
