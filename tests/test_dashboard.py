"""grafana/: the committed dashboard is what grafana/build.py generates; it is importable, filtered by its variables
everywhere, has every panel the issue asks for, lays them out without overlap, and the provisioning files point at
it and at Prometheus. (tests/test_prometheus_e2e.py runs every query against a real Prometheus.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from grafana import build
from tests.conftest import CONTRACT_METRICS

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
DASHBOARD = GRAFANA / "auditmanager-exporter.json"
RULES = ROOT / "prometheus" / "alerts.yml"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# Panel title -> what the issue asks it to show.
REQUIRED_PANELS = {
    "Noncompliant evidence per assessment": "auditmanager_assessment_evidence",
    "Evidence by compliance": "by (compliance)",
    "Compliance ratio per assessment": "assessment:auditmanager_evidence_compliance:ratio",
    "Controls with noncompliant evidence / total controls": "auditmanager_assessment_controls",
    "Noncompliant evidence against its 7-day baseline": "assessment:auditmanager_noncompliant_evidence:baseline7d",
    "Insights age": "auditmanager_assessment_insights_last_updated_timestamp_seconds",
    "All assessments": "auditmanager_assessment_evidence",
    "Poll success": "auditmanager_assessment_poll_success",
    "API requests by operation": "auditmanager_api_requests_total",
    "API errors by code": "auditmanager_api_errors_total",
    "Poll duration": "auditmanager_poll_duration_seconds",
    "Active assessments per account": "auditmanager_account_active_assessments",
    "Account evidence by compliance": "auditmanager_account_evidence",
    "Account compliance ratio": "account:auditmanager_evidence_compliance:ratio",
    "Accounts": "auditmanager_account_controls",
    "Assessment frameworks and status": "auditmanager_assessment_info",
    "Account poll success": "auditmanager_account_poll_success",
    "Control-domain poll success": "auditmanager_assessment_control_domains_poll_success",
    "Conformance pack compliance score": "awsconfig_conformance_pack_compliance_score",
    "Conformance pack rules by compliance": "sum by (conformance_pack, compliance) (awsconfig_conformance_pack_rules{",
    "Noncompliant conformance pack rules": "awsconfig_conformance_pack_rule_compliant",
    "Conformance pack poll success": "awsconfig_conformance_pack_poll_success",
    "Security score per standard": "securityhub_standard_score",
    "Security Hub controls by status": "sum by (standard, status) (securityhub_standard_controls{",
    "Failing CRITICAL and HIGH controls": 'securityhub_control_status{status="failed", severity=~"CRITICAL|HIGH"',
    "Failed findings by severity": "sum by (severity) (securityhub_standard_failed_findings{",
    "Security Hub standard poll success": "securityhub_standard_poll_success",
    "Time since last successful conformance pack poll": "awsconfig_conformance_pack_last_poll_success_timestamp",
}
POLL_SUCCESS = (
    "auditmanager_assessment_poll_success",
    "awsconfig_conformance_pack_poll_success",
    "securityhub_standard_poll_success",
)
ACCOUNT_FILTERS = ('account_id=~"$account"', 'region=~"$region"')
ASSESSMENT_FILTERS = (*ACCOUNT_FILTERS, 'assessment_name=~"$assessment"')
SELECTOR = re.compile(r"\b((?:auditmanager_|awsconfig_|securityhub_|assessment:|account:)[\w:]+)\s*(\{[^}]*\})?")


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels() -> list[dict[str, Any]]:
    found = []
    for panel in dashboard()["panels"]:
        found.append(panel)
        found += panel.get("panels", [])
    return found


def graph_panels() -> list[dict[str, Any]]:
    return [panel for panel in panels() if panel["type"] != "row"]


def queries() -> list[str]:
    return [target["expr"] for panel in graph_panels() for target in panel["targets"]]


def variables() -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in dashboard()["templating"]["list"]}


def recorded_names() -> set[str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def test_committed_dashboard_is_what_the_generator_produces() -> None:
    assert DASHBOARD.read_text(encoding="utf-8") == build.render(), "regenerate it: python -m grafana.build"


def test_generator_writes_the_committed_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert build.OUTPUT == DASHBOARD
    monkeypatch.setattr(build, "OUTPUT", tmp_path / "dashboard.json")
    build.main()
    assert (tmp_path / "dashboard.json").read_text(encoding="utf-8") == build.render()


def test_a_new_row_extends_the_dashboard_below_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    def extra() -> build.Row:
        return "Extra", [build.graph("Extra panel", "", build.query("up"))]

    monkeypatch.setattr(build, "ROWS", [*build.ROWS, extra])
    generated = json.loads(build.render())["panels"]
    assert [panel["title"] for panel in generated[-2:]] == ["Extra", "Extra panel"]
    assert generated[-1]["gridPos"]["y"] > max(panel["gridPos"]["y"] for panel in generated[:-2])
    assert len({panel["id"] for panel in generated}) == len(generated)


def test_dashboard_is_importable_json_with_a_fixed_uid_and_no_instance_id() -> None:
    board = dashboard()
    assert board["uid"] == "auditmanager-exporter"
    assert board["title"]
    assert board.get("id") is None
    # Importing must not ask for a datasource input: the datasource variable picks one.
    assert "__inputs" not in board
    assert isinstance(board["schemaVersion"], int)


def test_datasource_variable_selects_a_prometheus_datasource() -> None:
    variable = variables()["datasource"]
    assert variable["type"] == "datasource"
    assert variable["query"] == "prometheus"
    assert variables().keys() >= {"datasource", "account", "region", "assessment"}


@pytest.mark.parametrize(
    ("name", "label"), [("account", "account_id"), ("region", "region"), ("assessment", "assessment_name")]
)
def test_filter_variable_lists_label_values_and_allows_all(name: str, label: str) -> None:
    variable = variables()[name]
    assert variable["type"] == "query"
    assert variable["datasource"] == DATASOURCE
    assert re.fullmatch(rf"label_values\((\w+)?(\{{.*\}})?, {label}\)", variable["query"])
    assert variable["multi"] is True
    assert variable["includeAll"] is True
    assert variable["allValue"] == ".*"


@pytest.mark.parametrize("name", ["account", "region"])
def test_account_and_region_choices_come_from_audit_manager_and_conformance_packs(name: str) -> None:
    # A deployment that polls only AWS Config has no auditmanager_ series; its accounts must still be listed.
    match = re.search(r'__name__=~"([^"]*)"', variables()[name]["query"])
    assert match, variables()[name]["query"]
    assert sorted(match.group(1).split("|")) == sorted(POLL_SUCCESS)


def test_region_and_assessment_choices_follow_the_selected_account_and_region() -> None:
    assert '$account"' in variables()["region"]["query"]
    assert '$account"' in variables()["assessment"]["query"]
    assert '$region"' in variables()["assessment"]["query"]


def test_every_panel_and_query_uses_the_datasource_variable() -> None:
    for panel in graph_panels():
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, (panel["title"], target["refId"])


@pytest.mark.parametrize(("title", "shows"), REQUIRED_PANELS.items())
def test_dashboard_has_the_required_panel(title: str, shows: str) -> None:
    matching = [panel for panel in graph_panels() if panel["title"] == title]
    assert len(matching) == 1, f"no panel titled {title!r}"
    assert any(shows in target["expr"] for target in matching[0]["targets"]), title


def test_controls_panel_shows_noncompliant_against_total_controls() -> None:
    panel = next(p for p in graph_panels() if p["title"] == "Controls with noncompliant evidence / total controls")
    exprs = " ".join(target["expr"] for target in panel["targets"])
    assert "auditmanager_assessment_noncompliant_controls{" in exprs
    assert "auditmanager_assessment_controls{" in exprs


def test_assessment_table_merges_instant_table_queries_keyed_by_assessment() -> None:
    table = next(panel for panel in graph_panels() if panel["title"] == "All assessments")
    assert len(table["targets"]) >= 6
    for target in table["targets"]:
        assert target["instant"] is True and target["format"] == "table", target["refId"]
        assert target["expr"].startswith("max by (account_id, region, assessment_id, assessment_name)")
    assert table["transformations"][0]["id"] == "merge"


def test_noncompliant_rules_table_lists_the_rules_that_are_not_compliant_now_by_pack() -> None:
    table = next(panel for panel in graph_panels() if panel["title"] == "Noncompliant conformance pack rules")
    (target,) = table["targets"]
    assert target["instant"] is True and target["format"] == "table"
    assert re.fullmatch(r"awsconfig_conformance_pack_rule_compliant\{[^}]*\} == 0", target["expr"])
    columns = ["account_id", "region", "conformance_pack", "config_rule"]
    shown, ordered = table["transformations"]
    assert shown == {"id": "filterFieldsByName", "options": {"include": {"names": columns}}}
    assert ordered["id"] == "organize"
    assert sorted(ordered["options"]["indexByName"], key=ordered["options"]["indexByName"].get) == columns


def test_every_per_assessment_selector_is_filtered_by_account_region_and_assessment() -> None:
    checked = 0
    for expr in queries():
        for name, matchers in SELECTOR.findall(expr):
            if name.startswith(("auditmanager_assessment_", "assessment:")):
                checked += 1
                for wanted in ASSESSMENT_FILTERS:
                    assert wanted in matchers, f"{name}{matchers} lacks {wanted}"
            elif name.startswith(("auditmanager_account_", "account:", "awsconfig_")):
                checked += 1
                for wanted in ACCOUNT_FILTERS:
                    assert wanted in matchers, f"{name}{matchers} lacks {wanted}"
            elif name.startswith("auditmanager_api_"):
                checked += 1
                assert 'region=~"$region"' in matchers, f"{name}{matchers} lacks the region filter"
    assert checked > 15


def test_queries_use_only_published_metrics_and_recorded_series() -> None:
    known = CONTRACT_METRICS | {"process_resident_memory_bytes", "process_cpu_seconds_total"} | recorded_names()
    used = {
        name
        for expr in queries()
        for name in re.findall(r"\b(auditmanager_\w+|awsconfig_\w+|process_\w+|[a-z_]+:\w+:\w+)\b", expr)
    }
    assert used <= known, f"unknown metrics (typo?): {sorted(used - known)}"


def test_daily_counts_are_not_rated() -> None:
    for expr in queries():
        assert not re.search(r"\b(rate|irate|increase|delta)\s*\(\s*auditmanager_assessment_", expr), expr


def test_no_query_reads_the_removed_insights_age_gauge() -> None:
    # Replaced by the timestamp (or the recording rule assessment:auditmanager_insights_age:seconds).
    for expr in queries():
        assert "auditmanager_assessment_insights_age_seconds" not in expr, expr


def test_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids))


def test_panels_fit_the_grid_without_overlapping() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in panels():
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[x, y]}"
                cells[x, y] = panel["title"]


def test_datasource_provisioning_points_at_the_compose_prometheus() -> None:
    provisioning = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text(encoding="utf-8"))
    (source,) = provisioning["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source["isDefault"] is True


def test_dashboard_provisioning_loads_the_directory_compose_mounts_the_dashboard_into() -> None:
    provisioning = yaml.safe_load(
        (GRAFANA / "provisioning/dashboards/auditmanager-exporter.yml").read_text(encoding="utf-8")
    )
    (provider,) = provisioning["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"])
    assert mounts["./grafana/auditmanager-exporter.json"] == f"{provider['options']['path']}/{DASHBOARD.name}"


def test_the_builder_without_its_sdk_names_the_extra_to_install_in_one_line():
    # None in sys.modules makes every import of the SDK fail as if it were not installed.
    blocked = (
        "import sys, runpy; sys.modules['grafana_foundation_sdk'] = None; "
        "runpy.run_module('grafana.build', run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "grafana.build needs grafana-foundation-sdk: pip install '.[dashboards]' in the source tree"
    ]


def test_the_dashboards_extra_and_the_test_extra_pin_the_same_sdk():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    [sdk] = extras["dashboards"]
    assert sdk.startswith("grafana-foundation-sdk")
    assert sdk in extras["test"]
