"""End to end: a real Prometheus scrapes the real exporter CLI in --demo mode, loads prometheus/alerts.yml, and
answers every query of the Grafana dashboard; promtool lints the exporter's /metrics."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import CONTRACT_METRICS, eventually, free_port, require_binary

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "grafana" / "auditmanager-exporter.json"
JOB = "auditmanager-exporter"
DEADLINE_SECONDS = 60.0

# Every metric the exporter publishes from its first poll on; auditmanager_api_errors_total only appears after an
# error, which the demo does not make, and the aggregator's metrics only with `aggregator`, which the demo does not set.
OPTIONAL_METRICS = {
    "auditmanager_api_errors_total",
    "awsconfig_aggregate_conformance_pack_rules",
    "awsconfig_aggregator_poll_success",
}
PUBLISHED_METRICS = CONTRACT_METRICS - OPTIONAL_METRICS | {"process_cpu_seconds_total", "python_info"}
# Panel queries that cannot have data here, by design: the 7-day baseline needs 8 days of history;
# tests/test_alertmanager.py backfills it and queries the panel.
NEEDS_HISTORY = frozenset({"assessment:auditmanager_noncompliant_evidence:baseline7d"})
# What Grafana's built-in variables become in the test's queries.
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m", "__range_s": "300"}


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for(
    what: str,
    check: Callable[[], Any],
    accept: Callable[[Any], bool] = bool,
    deadline: float = DEADLINE_SECONDS,
    logs: Path | None = None,
) -> Any:
    """Call `check` until `accept` takes its result (by default: until it is truthy); return that result."""

    def detail() -> str:
        return logs.read_text(encoding="utf-8", errors="replace")[-4000:] if logs and logs.exists() else ""

    return eventually(
        check,
        accept,
        what=what,
        timeout=deadline,
        interval=0.5,
        ignoring=(OSError, ValueError, KeyError),
        detail=detail,
    )


# ---- the dashboard's queries, as a real Prometheus would get them from Grafana


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def template_variables() -> set[str]:
    return {variable["name"] for variable in dashboard()["templating"]["list"]}


def to_promql(expr: str) -> str:
    """Substitute Grafana variables: dashboard variables match everything, built-ins get fixed durations."""
    variables = template_variables()

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in GRAFANA_BUILTINS:
            return GRAFANA_BUILTINS[name]
        if name in variables:
            return ".*"
        raise AssertionError(f"unknown Grafana variable ${name} in {expr!r}")

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", substitute, expr)


def all_panel_queries() -> list[tuple[str, str]]:
    return [
        (f"{panel['title']} [{target['refId']}]", target["expr"])
        for panel in all_panels(dashboard()["panels"])
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def reads(expr: str, names: frozenset[str]) -> bool:
    return any(re.search(rf"\b{re.escape(name)}\b", expr) for name in names)


def panel_queries() -> list[tuple[str, str]]:
    return [(title, expr) for title, expr in all_panel_queries() if not reads(expr, NEEDS_HISTORY)]


def variable_queries() -> list[tuple[str, str]]:
    return [
        (variable["name"], variable["query"])
        for variable in dashboard()["templating"]["list"]
        if variable["type"] == "query"
    ]


# ---- the running stack


@dataclass
class Stack:
    exporter_url: str
    prometheus_url: str
    exporter_log: Path
    prometheus_log: Path

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result of an instant query; fails the test on a query error."""
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        status, body = http_get(url)
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", f"{promql!r}: {answer.get('error', body)}"
        result = answer["data"]["result"]
        return result if answer["data"]["resultType"] in ("vector", "matrix") else [result]

    def api(self, path: str) -> dict[str, Any]:
        status, body = http_get(f"{self.prometheus_url}{path}")
        assert status == 200, body
        return json.loads(body)["data"]


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus = require_binary("prometheus")
    workdir = tmp_path_factory.mktemp("prometheus-e2e")
    exporter_port, prometheus_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(AWS_EC2_METADATA_DISABLED="true", PYTHONUNBUFFERED="1")
    processes: list[subprocess.Popen[bytes]] = []
    exporter_log, prometheus_log = workdir / "exporter.log", workdir / "prometheus.log"
    try:
        with exporter_log.open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "exporter", "--demo", "--web.listen-address", f"127.0.0.1:{exporter_port}"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                    env=env,
                )
            )
        exporter_url = f"http://127.0.0.1:{exporter_port}"
        wait_for("the exporter's /readyz", lambda: http_get(f"{exporter_url}/readyz")[0] == 200, logs=exporter_log)

        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}],
        }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        with prometheus_log.open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [
                        prometheus,
                        f"--config.file={config_path}",
                        f"--storage.tsdb.path={workdir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{prometheus_port}",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=workdir,
                )
            )
        prometheus_url = f"http://127.0.0.1:{prometheus_port}"
        wait_for("Prometheus's /-/ready", lambda: http_get(f"{prometheus_url}/-/ready")[0] == 200, logs=prometheus_log)
        yield Stack(exporter_url, prometheus_url, exporter_log, prometheus_log)
    finally:
        for process in reversed(processes):
            stop(process)


def non_empty(stack: Stack, promql: str) -> Callable[[], list[dict[str, Any]]]:
    return lambda: stack.query(promql)


# ---- tests


def test_prometheus_scrapes_the_demo_exporter_successfully(stack: Stack) -> None:
    up = wait_for("up == 1", non_empty(stack, f'up{{job="{JOB}"}} == 1'), logs=stack.prometheus_log)
    assert len(up) == 1


def test_prometheus_ingests_every_published_metric_of_the_contract(stack: Stack) -> None:
    def names() -> set[str]:
        found = {series["metric"]["__name__"] for series in stack.query(f'count by (__name__) ({{job="{JOB}"}})')}
        return found if found >= PUBLISHED_METRICS else set()

    found = wait_for(f"{sorted(PUBLISHED_METRICS)} in Prometheus", names, logs=stack.prometheus_log)
    assert found >= PUBLISHED_METRICS


def test_ingested_assessment_series_carry_the_four_assessment_labels(stack: Stack) -> None:
    series = wait_for("assessment series", non_empty(stack, "auditmanager_assessment_poll_success"))
    for item in series:
        assert {"account_id", "region", "assessment_id", "assessment_name"} <= item["metric"].keys(), item


def test_every_rule_loads_and_evaluates_healthy(stack: Stack) -> None:
    expected = {group["name"]: len(group["rules"]) for group in yaml.safe_load(RULES.read_text())["groups"]}

    def evaluated_groups() -> list[dict[str, Any]]:
        groups = stack.api("/api/v1/rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        errors = [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] == "err"]
        assert not errors, errors
        return groups if rules and all(rule["health"] == "ok" for rule in rules) else []

    groups = wait_for("every rule evaluated", evaluated_groups, logs=stack.prometheus_log)
    assert {group["name"]: len(group["rules"]) for group in groups} == expected


def test_the_healthy_demo_raises_no_alert(stack: Stack) -> None:
    wait_for(f'up{{job="{JOB}"}} == 1', non_empty(stack, f'up{{job="{JOB}"}} == 1'))

    def alert_names() -> list[str]:
        return [alert["labels"]["alertname"] for alert in stack.api("/api/v1/alerts")["alerts"]]

    assert wait_for("no active alert", alert_names, accept=lambda names: names == []) == []


@pytest.mark.parametrize(("panel", "expr"), panel_queries(), ids=[title for title, _ in panel_queries()])
def test_dashboard_panel_query_returns_data(stack: Stack, panel: str, expr: str) -> None:
    promql = to_promql(expr)
    result = wait_for(f"data for panel {panel}: {promql}", non_empty(stack, promql), logs=stack.prometheus_log)
    assert result


def test_only_the_listed_panels_are_exempt_from_returning_data() -> None:
    exempt = {title for title, expr in all_panel_queries() if reads(expr, NEEDS_HISTORY)}
    assert exempt == {"Noncompliant evidence against its 7-day baseline [B]"}


@pytest.mark.parametrize(("name", "query"), variable_queries(), ids=[name for name, _ in variable_queries()])
def test_dashboard_variable_query_returns_values(stack: Stack, name: str, query: str) -> None:
    match = re.fullmatch(r"label_values\((?:(.+),\s*)?(\w+)\)", to_promql(query))
    assert match, f"variable {name}: not a label_values() query: {query}"
    selector, label = match.groups()
    params = urllib.parse.urlencode({"match[]": selector} if selector else {})

    def values() -> list[str]:
        return stack.api(f"/api/v1/label/{label}/values?{params}")

    assert wait_for(f"values of variable {name}", values)


@pytest.mark.parametrize("name", ["account", "region"])
def test_account_and_region_variables_match_conformance_pack_series_too(stack: Stack, name: str) -> None:
    # So that they list the accounts and regions of a deployment that polls only AWS Config, or only Security Hub.
    match = re.fullmatch(r"label_values\((.+),\s*\w+\)", to_promql(dict(variable_queries())[name]))
    assert match, name
    params = urllib.parse.urlencode({"match[]": match.group(1)})

    def names() -> set[str]:
        return {series["__name__"] for series in stack.api(f"/api/v1/series?{params}")}

    found = wait_for(f"the series variable {name} reads", names, accept=lambda found: len(found) == 3)
    assert found == {
        "auditmanager_assessment_poll_success",
        "awsconfig_conformance_pack_poll_success",
        "securityhub_standard_poll_success",
    }


def test_noncompliant_rules_table_shows_each_packs_noncompliant_rules(stack: Stack) -> None:
    expr = dict(all_panel_queries())["Noncompliant conformance pack rules [A]"]
    rows = wait_for("noncompliant rules", non_empty(stack, to_promql(expr)), logs=stack.prometheus_log)
    for row in rows:
        assert {"account_id", "region", "conformance_pack", "config_rule"} <= row["metric"].keys(), row
        assert row["value"][1] == "0", row
    # Each demo pack keeps one rule noncompliant every day.
    assert len({row["metric"]["conformance_pack"] for row in rows}) == 2


def test_prometheus_scrapes_the_openmetrics_format(stack: Stack) -> None:
    # An OpenMetrics counter family is named without _total, a text-format one with it: the metadata Prometheus
    # keeps of the target shows which format it parsed.
    selector = urllib.parse.urlencode({"match_target": f'{{job="{JOB}"}}'})

    def counter_families() -> set[str]:
        metadata = stack.api(f"/api/v1/targets/metadata?{selector}")
        return {item["metric"] for item in metadata if item["type"] == "counter" and "api_requests" in item["metric"]}

    families = wait_for("the target's metadata", counter_families, logs=stack.prometheus_log)
    assert families == {"auditmanager_api_requests"}
    assert stack.query(f'auditmanager_api_requests_total{{job="{JOB}"}}')


def test_exporter_metrics_pass_promtool_check_metrics(stack: Stack) -> None:
    promtool = require_binary("promtool")
    status, body = http_get(f"{stack.exporter_url}/metrics")
    assert status == 200
    assert b"auditmanager_assessment_evidence{" in body
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, check=False, timeout=60)
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 0, output
    assert output.strip() == "", output
