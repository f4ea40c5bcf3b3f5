"""docker-compose.yml: every file it mounts exists, the exporter, Prometheus, Alertmanager and Grafana are wired to
each other, their configs pass their own checkers (promtool, amtool), and Grafana gets the generated dashboard."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.cli import DEFAULT_PORT
from grafana import build
from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
RULES = ROOT / "prometheus" / "alerts.yml"


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")))


def service(name: str) -> dict[str, Any]:
    return dict(compose()["services"][name])


def volumes(definition: dict[str, Any]) -> list[tuple[str, str]]:
    """A service's volumes as (source, target), from the short (`src:dst[:mode]`) or the long syntax."""
    found = []
    for volume in definition.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        found.append((source, target))
    return found


def binds(name: str) -> dict[str, str]:
    """A service's bind mounts: local path -> path in the container."""
    return local_sources(volumes(service(name)))


def local_sources(mounts: list[tuple[str, str]]) -> dict[str, str]:
    return {source: target for source, target in mounts if source.startswith((".", "/"))}


def check(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_binary(tool), *args], capture_output=True, text=True, check=False, timeout=60)


def test_every_bind_mounted_file_exists() -> None:
    mounted = [source for name in compose()["services"] for source in binds(name)]
    assert len(mounted) >= 6
    for source in mounted:
        assert (ROOT / source).exists(), source


def test_every_named_volume_is_declared() -> None:
    declared = set(compose().get("volumes", {}))
    for name in compose()["services"]:
        for source, _ in volumes(service(name)):
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"


def test_mount_reader_reads_the_short_and_the_long_syntax() -> None:
    definition = {"volumes": ["./a.yml:/etc/a.yml:ro", {"type": "bind", "source": "./b", "target": "/b"}, "data:/data"]}
    assert local_sources(volumes(definition)) == {"./a.yml": "/etc/a.yml", "./b": "/b"}


def test_compose_builds_the_exporter_from_this_dockerfile_and_runs_the_demo() -> None:
    exporter = service("exporter")
    assert (ROOT / exporter["build"]["context"] / exporter["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert "--demo" in exporter["command"]


@pytest.mark.parametrize(
    ("name", "port"), [("exporter", DEFAULT_PORT), ("prometheus", 9090), ("alertmanager", 9093), ("grafana", 3000)]
)
def test_compose_publishes_each_service_on_its_usual_port(name: str, port: int) -> None:
    assert f"{port}:{port}" in service(name)["ports"]


@pytest.mark.parametrize("name", ["prometheus", "alertmanager", "grafana"])
def test_compose_images_are_pinned_to_a_version(name: str) -> None:
    image = service(name)["image"]
    repository, _, tag = image.rpartition(":")
    assert repository and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), image


def prometheus_config() -> tuple[dict[str, Any], str]:
    mounts = binds("prometheus")
    config_mount = next(target for target in mounts.values() if target.endswith("/prometheus.yml"))
    assert f"--config.file={config_mount}" in service("prometheus")["command"]
    local = next(source for source, target in mounts.items() if target == config_mount)
    return yaml.safe_load((ROOT / local).read_text(encoding="utf-8")), config_mount


def test_compose_prometheus_scrapes_the_exporter_service_and_loads_the_alert_rules() -> None:
    config, config_mount = prometheus_config()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [target for group in jobs["auditmanager-exporter"]["static_configs"] for target in group["targets"]]
    assert targets == [f"exporter:{DEFAULT_PORT}"]
    rule_targets = {str(Path(config_mount).parent / rule) for rule in config["rule_files"]}
    assert rule_targets == {binds("prometheus")["./prometheus/alerts.yml"]}


def test_compose_prometheus_sends_its_alerts_to_the_compose_alertmanager() -> None:
    config, _ = prometheus_config()
    targets = [
        target
        for alertmanager in config["alerting"]["alertmanagers"]
        for group in alertmanager["static_configs"]
        for target in group["targets"]
    ]
    assert targets == ["alertmanager:9093"]
    assert "alertmanager" in service("prometheus")["depends_on"]


def test_compose_prometheus_config_passes_promtool_check_config() -> None:
    result = check("promtool", "check", "config", str(ROOT / "prometheus" / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def alertmanager_config() -> Path:
    mounts = binds("alertmanager")
    config_mount = next(target for target in mounts.values() if target.endswith("/alertmanager.yml"))
    assert f"--config.file={config_mount}" in service("alertmanager")["command"]
    return ROOT / next(source for source, target in mounts.items() if target == config_mount)


def test_compose_alertmanager_config_passes_amtool_check_config() -> None:
    result = check("amtool", "check-config", str(alertmanager_config()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


@pytest.mark.parametrize("alert", alerts(), ids=[alert["alert"] for alert in alerts()])
def test_sample_route_pages_critical_alerts_and_sends_the_others_to_the_team(alert: dict[str, Any]) -> None:
    labels = {"alertname": alert["alert"], **alert["labels"]}
    result = check(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={alertmanager_config()}",
        *(f"{key}={value}" for key, value in labels.items()),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    expected = "compliance-oncall" if labels["severity"] == "critical" else "compliance-team"
    assert result.stdout.split() == [expected]


def test_compose_grafana_gets_the_datasource_and_dashboard_provisioning() -> None:
    mounts = binds("grafana")
    assert mounts["./grafana/provisioning/datasources"] == "/etc/grafana/provisioning/datasources"
    assert mounts["./grafana/provisioning/dashboards"] == "/etc/grafana/provisioning/dashboards"
    home = service("grafana")["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert mounts["./grafana/auditmanager-exporter.json"] == home


def test_compose_grafana_provisions_the_generated_dashboard() -> None:
    provisioning = yaml.safe_load(
        (ROOT / "grafana/provisioning/dashboards/auditmanager-exporter.yml").read_text(encoding="utf-8")
    )
    (provider,) = provisioning["providers"]
    provided = {
        (ROOT / source).resolve()
        for source, target in binds("grafana").items()
        if Path(target).parent == Path(provider["options"]["path"])
    }
    assert provided == {build.OUTPUT.resolve()}
    assert build.OUTPUT.read_text(encoding="utf-8") == build.render()
