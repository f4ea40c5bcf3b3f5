"""Assessment tags as labels: the allow-list in the config, the label names, and auditmanager_assessment_tags."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from exporter.collector import SnapshotCollector
from exporter.config import ConfigError, parse
from exporter.snapshot import ApiCounters, Snapshot, SnapshotStore
from exporter.sources.auditmanager.state import AssessmentDetails, AssessmentState
from exporter.tags import label_name
from tests.conftest import (
    ROOT,
    audit_manager_snapshot,
    aws_env,
    parse_metrics,
    require_binary,
    series,
    uuid,
    write_config,
)

TARGETS = [{"region": "us-east-1", "assessments": [{"id": uuid(1)}]}]
ACCOUNT = "111122223333"


def labels_of(n: int, name: str) -> dict[str, str]:
    return {"account_id": ACCOUNT, "region": "us-east-1", "assessment_id": uuid(n), "assessment_name": name}


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("team", "tag_team"),
        ("cost-center", "tag_cost_center"),
        ("app.kubernetes.io/name", "tag_app_kubernetes_io_name"),
        ("Owner:Email+Alias=1", "tag_Owner_Email_Alias_1"),
        ("Zürich", "tag_Z_rich"),
        ("1st_line", "tag_1st_line"),
    ],
)
def test_label_names_are_sanitised_like_kube_state_metrics(key: str, label: str) -> None:
    assert label_name(key) == label


def test_tag_labels_default_to_none_and_keep_the_configs_order() -> None:
    assert parse({"targets": TARGETS}).tag_labels == ()
    assert parse({"targets": TARGETS, "tag_labels": None}).tag_labels == ()
    assert parse({"targets": TARGETS, "tag_labels": ["team", "cost-center", "Env"]}).tag_labels == (
        "team",
        "cost-center",
        "Env",
    )


@pytest.mark.parametrize(
    ("tag_labels", "problems"),
    [
        (
            ["team", "cost-center", "cost.center"],
            ["tag_labels[2]: 'cost.center' and tag_labels[1] 'cost-center' both become the label tag_cost_center"],
        ),
        (["team", "team"], ["tag_labels[1]: 'team' and tag_labels[0] 'team' both become the label tag_team"]),
        ("team", ["tag_labels: must be a list"]),
        (["team", 7, ""], ["tag_labels[1]: must be a string", "tag_labels[2]: must not be empty"]),
        (["k" * 129], ["tag_labels[0]: longer than 128 characters"]),
    ],
    ids=["colliding", "repeated", "not-a-list", "not-strings", "too-long"],
)
def test_bad_tag_labels_are_one_problem_each(tag_labels: Any, problems: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"targets": TARGETS, "tag_labels": tag_labels})
    assert caught.value.problems == problems


@pytest.mark.parametrize("flags", [["--config.check"], []], ids=["config-check", "start"])
def test_the_exporter_refuses_a_colliding_allow_list_in_one_line_with_exit_code_2(
    tmp_path: Path, flags: list[str]
) -> None:
    path = write_config(tmp_path / "config.yml", {"tag_labels": ["cost-center", "cost_center"], "targets": TARGETS})

    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.file", str(path), "--web.listen-address", "127.0.0.1:0", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        env=aws_env(tmp_path),
    )

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{path}: tag_labels[1]: 'cost_center' and tag_labels[0] 'cost-center' both become the label tag_cost_center"
    ]


def scrape(snapshot: Snapshot) -> str:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(SnapshotCollector(SnapshotStore(snapshot), ApiCounters()))
    return generate_latest(registry).decode()


def assessment(n: int, name: str) -> AssessmentState:
    return AssessmentState(
        account_id=ACCOUNT,
        region="us-east-1",
        assessment_id=uuid(n),
        name=name,
        insights=None,
        poll_success=True,
        last_success=1_700_000_000.0,
    )


def details(**tags: str) -> AssessmentDetails:
    return AssessmentDetails("SOC 2", "ACTIVE", MappingProxyType(tags))


def test_one_tags_series_per_assessment_with_an_empty_value_for_a_missing_tag() -> None:
    states = (assessment(1, "Prod"), assessment(2, "Staging"), assessment(3, "Details unknown"))
    snapshot = audit_manager_snapshot(
        assessments=states,
        tag_labels=("team", "cost-center"),
        details=MappingProxyType(
            {states[0].key: details(team="payments", **{"cost-center": "cc-2040"}), states[1].key: details(team="data")}
        ),
    )

    samples = parse_metrics(scrape(snapshot))

    assert sorted(series(samples, "auditmanager_assessment_tags"), key=lambda s: s["assessment_id"]) == [
        labels_of(1, "Prod") | {"tag_team": "payments", "tag_cost_center": "cc-2040"},
        labels_of(2, "Staging") | {"tag_team": "data", "tag_cost_center": ""},
    ]
    assert {v for (name, _), v in samples.items() if name == "auditmanager_assessment_tags"} == {1.0}


def test_no_tags_metric_without_tag_labels_even_when_tags_are_known() -> None:
    state = assessment(1, "Prod")
    snapshot = audit_manager_snapshot(
        assessments=(state,), details=MappingProxyType({state.key: details(team="payments")})
    )

    text = scrape(snapshot)

    assert "auditmanager_assessment_tags" not in text
    assert "auditmanager_assessment_info{" in text


def fenced(path: Path, section: str, language: str) -> list[str]:
    """The code blocks of `language` in a section (from its heading to the next) of a Markdown document."""
    text = path.read_text(encoding="utf-8").split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def test_the_documented_join_and_team_alert_carry_tag_team_and_alert_once_per_assessment(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    (join,) = fenced(ROOT / "docs" / "metrics.md", "Tags as labels", "promql")
    (rule,) = fenced(ROOT / "docs" / "metrics.md", "Tags as labels", "yaml")
    alert = yaml.safe_load(rule)[0]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "teams", "rules": [alert]}]}))
    base = 'account_id="111122223333",region="us-east-1"'
    payments, untagged, gone = (f'{base},assessment_id="{uuid(n)}",assessment_name="A{n}"' for n in (1, 2, 3))
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"auditmanager_assessment_poll_success{{{payments}}}", "values": "0x40"},
                    {"series": f"auditmanager_assessment_poll_success{{{untagged}}}", "values": "0x40"},
                    {"series": f"auditmanager_assessment_poll_success{{{gone}}}", "values": "0x40"},
                    {"series": f'auditmanager_assessment_tags{{{payments},tag_team="payments"}}', "values": "1x40"},
                    {"series": f'auditmanager_assessment_tags{{{untagged},tag_team=""}}', "values": "1x40"},
                    {"series": f"auditmanager_assessment_noncompliant_controls{{{payments}}}", "values": "4x40"},
                    {"series": f"auditmanager_assessment_noncompliant_controls{{{untagged}}}", "values": "3x40"},
                ],
                "promql_expr_test": [
                    {
                        "expr": join,
                        "eval_time": "10m",
                        "exp_samples": [{"labels": '{tag_team="payments"}', "value": 4}, {"labels": "{}", "value": 3}],
                    }
                ],
                "alert_rule_test": [
                    {
                        "alertname": alert["alert"],
                        "eval_time": "35m",
                        "exp_alerts": [
                            {"exp_labels": dict(labels(payments), tag_team="payments")},
                            {"exp_labels": labels(untagged)},
                            {"exp_labels": labels(gone)},
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))

    result = subprocess.run(
        [promtool, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stdout + result.stderr


def labels(selector: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', selector))


@pytest.mark.parametrize(
    ("alert_labels", "receiver"),
    [
        (["tag_team=payments"], "payments-oncall"),
        (["tag_team=infrastructure"], "platform-oncall"),
        (["tag_team=data"], "compliance"),
        ([], "compliance"),
    ],
)
def test_the_documented_alertmanager_route_sends_each_team_to_its_receiver(
    tmp_path: Path, alert_labels: list[str], receiver: str
) -> None:
    amtool = require_binary("amtool")
    (route,) = fenced(ROOT / "docs" / "alerts.md", "Routing by team", "yaml")
    config = tmp_path / "alertmanager.yml"
    config.write_text(route)

    result = subprocess.run(
        [
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={config}",
            "alertname=AuditManagerPollsFailing",
            *alert_labels,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert (result.returncode, result.stdout.strip()) == (0, receiver), result.stderr
