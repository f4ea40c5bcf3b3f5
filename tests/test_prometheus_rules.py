"""The alerting and recording rules in prometheus/: promtool accepts them, their unit tests pass and cover every
alert both ways, and every alert is labelled, described and documented."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import CONTRACT_METRICS, require_binary

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "prometheus" / "alerts.test.yml"
RUNBOOK = ROOT / "docs" / "alerts.md"

SEVERITIES = {"critical", "warning", "info"}
METRIC_NAME = re.compile(r"\b(auditmanager_\w+|awsconfig_\w+|securityhub_\w+|[a-z_]+:\w+:\w+|up)\b")


def rule_groups() -> list[dict[str, Any]]:
    return yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]


def alerts() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def recorded_names() -> set[str]:
    return {rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule}


def alert_names() -> list[str]:
    return [rule["alert"] for rule in alerts()]


def test_promtool_check_rules_accepts_the_rule_file() -> None:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "test", "rules", RULE_TESTS.name],
        check=False,
        capture_output=True,
        text=True,
        cwd=RULE_TESTS.parent,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_unit_tests_load_the_shipped_rule_file() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    assert [RULE_TESTS.parent / name for name in tests["rule_files"]] == [RULES]


@pytest.mark.parametrize("alert", alert_names())
def test_every_alert_has_a_unit_test_where_it_fires_and_one_where_it_stays_silent(alert: str) -> None:
    cases = [
        case
        for group in yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
        for case in group.get("alert_rule_test", [])
        if case["alertname"] == alert
    ]
    assert any(case.get("exp_alerts") for case in cases), f"{alert} never expected to fire"
    assert any(not case.get("exp_alerts") for case in cases), f"{alert} never expected to stay silent"


@pytest.mark.parametrize("alert", alert_names())
def test_every_alert_has_a_severity_a_summary_and_a_description(alert: str) -> None:
    rule = next(rule for rule in alerts() if rule["alert"] == alert)
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["annotations"]["summary"].strip()
    assert rule["annotations"]["description"].strip()


@pytest.mark.parametrize("alert", [rule["alert"] for rule in alerts() if "auditmanager_assessment_" in rule["expr"]])
def test_per_assessment_alerts_name_the_assessment_in_summary_and_description(alert: str) -> None:
    rule = next(rule for rule in alerts() if rule["alert"] == alert)
    for annotation in ("summary", "description"):
        assert "{{ $labels.assessment_name }}" in rule["annotations"][annotation], (alert, annotation)


PER_PACK = re.compile(r"\bawsconfig_conformance_pack_(?!rule_series_dropped)")


@pytest.mark.parametrize("alert", [rule["alert"] for rule in alerts() if PER_PACK.search(rule["expr"])])
def test_per_pack_alerts_name_the_conformance_pack_in_summary_and_description(alert: str) -> None:
    rule = next(rule for rule in alerts() if rule["alert"] == alert)
    for annotation in ("summary", "description"):
        assert "{{ $labels.conformance_pack }}" in rule["annotations"][annotation], (alert, annotation)


def test_rules_use_only_published_metrics_and_recorded_series() -> None:
    known = CONTRACT_METRICS | {"up"} | recorded_names()
    used = {name for group in rule_groups() for rule in group["rules"] for name in METRIC_NAME.findall(rule["expr"])}
    assert used, "no metric found in the rules"
    assert used <= known, f"unknown metrics (typo?): {sorted(used - known)}"


def test_recording_rule_names_follow_level_metric_operation_convention() -> None:
    names = recorded_names()
    assert names
    for name in names:
        assert re.fullmatch(r"[a-z_]+:auditmanager_[a-z0-9_]+:[a-z0-9_]+", name), name


def test_daily_counts_are_never_fed_to_counter_functions() -> None:
    # The evidence and control counts drop at every daily rollover: rate()/increase() would read that as a
    # counter reset, and delta()/deriv() as a fall.
    daily = re.compile(r"\b(rate|irate|increase|delta|idelta|deriv|resets)\s*\(\s*auditmanager_assessment_")
    for group in rule_groups():
        for rule in group["rules"]:
            assert not daily.search(rule["expr"]), rule


@pytest.mark.parametrize("alert", alert_names())
def test_every_alert_has_a_runbook_entry_in_the_readme(alert: str) -> None:
    readme = RUNBOOK.read_text(encoding="utf-8")
    assert re.search(rf"^#+ .*`?{alert}`?\s*$", readme, re.MULTILINE), f"the runbook has no heading for {alert}"
