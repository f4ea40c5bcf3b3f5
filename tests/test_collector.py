from __future__ import annotations

from types import MappingProxyType

from prometheus_client import CollectorRegistry, generate_latest

from exporter.collector import SnapshotCollector
from exporter.conformance import RuleCompliance
from exporter.snapshot import ApiCounters, Snapshot, SnapshotStore
from exporter.sources.auditmanager.state import (
    AccountInsights,
    AccountState,
    AssessmentDetails,
    AssessmentState,
    ControlDomainInsights,
    Insights,
)
from exporter.sources.awsconfig.source import AwsConfigPart
from exporter.sources.awsconfig.state import ConformancePackState, rule_counts
from exporter.sources.base import SourcePart
from tests.conftest import audit_manager_snapshot, parse_metrics, sample, series, uuid

LABELS = {"account_id": "111122223333", "region": "us-east-1", "assessment_id": uuid(1), "assessment_name": "SOC 2"}


def state(
    insights: Insights | None,
    poll_success: bool = True,
    last_success: float | None = 1_700_000_100.0,
    name: str = "SOC 2",
    assessment: int = 1,
    domains: tuple[ControlDomainInsights, ...] = (),
) -> AssessmentState:
    return AssessmentState(
        account_id="111122223333",
        region="us-east-1",
        assessment_id=uuid(assessment),
        name=name,
        insights=insights,
        poll_success=poll_success,
        last_success=last_success,
        control_domains=domains,
    )


FULL = Insights(7, 70, 3, 2, 40, 1_700_000_000.0)


def registry_for(store: SnapshotStore, counters: ApiCounters | None = None):
    registry = CollectorRegistry(auto_describe=True)
    registry.register(SnapshotCollector(store, counters or ApiCounters()))
    return registry


def test_every_count_is_a_gauge_with_the_assessment_labels():
    store = SnapshotStore(
        audit_manager_snapshot(
            assessments=(state(FULL),), poll_durations=MappingProxyType({"us-east-1": 1.5}), completed_cycles=1
        )
    )
    registry = registry_for(store)
    get = registry.get_sample_value
    assert get("auditmanager_assessment_evidence", {**LABELS, "compliance": "noncompliant"}) == 7
    assert get("auditmanager_assessment_evidence", {**LABELS, "compliance": "compliant"}) == 70
    assert get("auditmanager_assessment_evidence", {**LABELS, "compliance": "inconclusive"}) == 3
    assert get("auditmanager_assessment_noncompliant_controls", LABELS) == 2
    assert get("auditmanager_assessment_controls", LABELS) == 40
    assert get("auditmanager_assessment_insights_last_updated_timestamp_seconds", LABELS) == 1_700_000_000
    assert get("auditmanager_assessment_poll_success", LABELS) == 1
    assert get("auditmanager_assessment_last_poll_success_timestamp_seconds", LABELS) == 1_700_000_100
    assert get("auditmanager_poll_duration_seconds", {"region": "us-east-1"}) == 1.5
    assert get("auditmanager_exporter_build_info", {"version": "0.1.0"}) == 1


def test_the_insights_age_is_left_to_prometheus_only_the_timestamp_is_published():
    samples = parse_metrics(
        generate_latest(
            registry_for(SnapshotStore(audit_manager_snapshot(assessments=(state(FULL),), completed_cycles=1)))
        ).decode()
    )
    assert sample(samples, "auditmanager_assessment_insights_last_updated_timestamp_seconds", **LABELS) == 1_700_000_000
    assert not [name for name, _ in samples if "_age" in name]


def test_a_null_count_publishes_no_series_for_that_field_only():
    partial = Insights(None, 70, None, None, 40, None)
    registry = registry_for(SnapshotStore(audit_manager_snapshot(assessments=(state(partial),), completed_cycles=1)))
    get = registry.get_sample_value
    assert get("auditmanager_assessment_evidence", {**LABELS, "compliance": "noncompliant"}) is None
    assert get("auditmanager_assessment_evidence", {**LABELS, "compliance": "compliant"}) == 70
    assert get("auditmanager_assessment_noncompliant_controls", LABELS) is None
    assert get("auditmanager_assessment_controls", LABELS) == 40
    assert get("auditmanager_assessment_insights_last_updated_timestamp_seconds", LABELS) is None


def test_an_assessment_never_polled_successfully_has_poll_status_but_no_values():
    registry = registry_for(
        SnapshotStore(audit_manager_snapshot(assessments=(state(None, poll_success=False, last_success=None),)))
    )
    get = registry.get_sample_value
    assert get("auditmanager_assessment_poll_success", LABELS) == 0
    assert get("auditmanager_assessment_last_poll_success_timestamp_seconds", LABELS) is None
    assert get("auditmanager_assessment_evidence", {**LABELS, "compliance": "compliant"}) is None


def test_api_counters_are_exported_as_counters():
    counters = ApiCounters()
    for _ in range(3):
        counters.count_request("GetInsightsByAssessment", "us-east-1")
    counters.count_error("GetInsightsByAssessment", "us-east-1", "ThrottlingException")
    registry = registry_for(SnapshotStore(), counters)
    labels = {"operation": "GetInsightsByAssessment", "region": "us-east-1"}
    assert registry.get_sample_value("auditmanager_api_requests_total", labels) == 3
    assert (
        registry.get_sample_value("auditmanager_api_errors_total", {**labels, "error_code": "ThrottlingException"}) == 1
    )


def test_an_assessment_that_leaves_the_snapshot_leaves_the_output():
    store = SnapshotStore(
        audit_manager_snapshot(assessments=(state(FULL), state(FULL, assessment=2)), completed_cycles=1)
    )
    registry = registry_for(store)
    other = {**LABELS, "assessment_id": uuid(2)}
    assert registry.get_sample_value("auditmanager_assessment_controls", other) == 40
    store.publish(audit_manager_snapshot(assessments=(state(FULL),), completed_cycles=2))
    assert registry.get_sample_value("auditmanager_assessment_controls", other) is None
    assert registry.get_sample_value("auditmanager_assessment_controls", LABELS) == 40


ACCOUNT = {"account_id": "111122223333", "region": "us-east-1"}


def test_account_insights_are_gauges_by_account_and_region_and_null_counts_publish_nothing():
    account = AccountState("111122223333", "us-east-1", AccountInsights(3, 7, 70, None, 2, 40, 1_700_000_000.0))
    get = registry_for(SnapshotStore(audit_manager_snapshot(accounts=(account,), completed_cycles=1))).get_sample_value
    assert get("auditmanager_account_active_assessments", ACCOUNT) == 3
    assert get("auditmanager_account_evidence", {**ACCOUNT, "compliance": "noncompliant"}) == 7
    assert get("auditmanager_account_evidence", {**ACCOUNT, "compliance": "compliant"}) == 70
    assert get("auditmanager_account_evidence", {**ACCOUNT, "compliance": "inconclusive"}) is None
    assert get("auditmanager_account_noncompliant_controls", ACCOUNT) == 2
    assert get("auditmanager_account_controls", ACCOUNT) == 40
    assert get("auditmanager_account_insights_last_updated_timestamp_seconds", ACCOUNT) == 1_700_000_000


def test_assessment_info_is_published_only_once_the_framework_is_known():
    known = state(FULL)
    unknown = state(FULL, assessment=2, name="Other")
    details = MappingProxyType({known.key: AssessmentDetails("SOC 2", "ACTIVE")})
    registry = registry_for(
        SnapshotStore(audit_manager_snapshot(assessments=(known, unknown), details=details, completed_cycles=1))
    )
    info = {**LABELS, "framework": "SOC 2", "status": "ACTIVE"}
    assert registry.get_sample_value("auditmanager_assessment_info", info) == 1
    samples = parse_metrics(generate_latest(registry).decode())
    assert [labels["assessment_id"] for labels in series(samples, "auditmanager_assessment_info")] == [uuid(1)]


def test_control_domains_are_published_by_domain_and_the_dropped_series_counted():
    domains = (
        ControlDomainInsights("Data protection", 4, 40, 1, 2, 10, 1_700_000_000.0),
        ControlDomainInsights("Logging", None, 9, None, None, 3, 1_700_000_000.0),
    )
    snapshot = audit_manager_snapshot(
        assessments=(state(FULL, domains=domains),), completed_cycles=1, control_domain_series_dropped=5
    )
    get = registry_for(SnapshotStore(snapshot)).get_sample_value
    domain = {**LABELS, "control_domain": "Data protection"}
    assert get("auditmanager_assessment_control_domain_evidence", {**domain, "compliance": "noncompliant"}) == 4
    assert get("auditmanager_assessment_control_domain_evidence", {**domain, "compliance": "compliant"}) == 40
    assert get("auditmanager_assessment_control_domain_evidence", {**domain, "compliance": "inconclusive"}) == 1
    assert get("auditmanager_assessment_control_domain_noncompliant_controls", domain) == 2
    logging_domain = {**LABELS, "control_domain": "Logging"}
    assert get("auditmanager_assessment_control_domain_evidence", {**logging_domain, "compliance": "compliant"}) == 9
    assert get("auditmanager_assessment_control_domain_noncompliant_controls", logging_domain) is None
    assert get("auditmanager_control_domain_series_dropped_total") == 5


def test_the_dropped_series_counter_is_published_at_zero():
    registry = registry_for(SnapshotStore())
    assert registry.get_sample_value("auditmanager_control_domain_series_dropped_total") == 0


PACK = {"account_id": "111122223333", "region": "us-east-1", "conformance_pack": "CIS"}


def pack_state(
    score: float | None = 87.5,
    rules: tuple[RuleCompliance, ...] = (
        RuleCompliance("root-mfa", "COMPLIANT"),
        RuleCompliance("cloudtrail", "NON_COMPLIANT"),
        RuleCompliance("flow-logs", "INSUFFICIENT_DATA"),
    ),
    poll_success: bool = True,
    last_success: float | None = 1_700_000_100.0,
) -> ConformancePackState:
    return ConformancePackState(
        account_id="111122223333",
        region="us-east-1",
        name="CIS",
        score=score,
        rule_counts=rule_counts(rules),
        rules=rules,
        poll_success=poll_success,
        last_success=last_success,
    )


def with_packs(*packs: ConformancePackState, dropped: int = 0) -> Snapshot:
    """A snapshot whose AWS Config part holds `packs`."""
    part = SourcePart(states=packs, dropped=dropped, data=AwsConfigPart(packs=packs))
    return Snapshot(parts=MappingProxyType({"config": part}))


def test_conformance_packs_publish_score_rules_by_compliance_and_each_rules_compliance():
    store = SnapshotStore(with_packs(pack_state(), dropped=4))
    get = registry_for(store).get_sample_value

    assert get("awsconfig_conformance_pack_compliance_score", PACK) == 87.5
    assert get("awsconfig_conformance_pack_rules", {**PACK, "compliance": "COMPLIANT"}) == 1
    assert get("awsconfig_conformance_pack_rules", {**PACK, "compliance": "NON_COMPLIANT"}) == 1
    assert get("awsconfig_conformance_pack_rules", {**PACK, "compliance": "INSUFFICIENT_DATA"}) == 1
    assert get("awsconfig_conformance_pack_rule_compliant", {**PACK, "config_rule": "root-mfa"}) == 1
    assert get("awsconfig_conformance_pack_rule_compliant", {**PACK, "config_rule": "cloudtrail"}) == 0
    assert get("awsconfig_conformance_pack_rule_compliant", {**PACK, "config_rule": "flow-logs"}) is None
    assert get("awsconfig_conformance_pack_poll_success", PACK) == 1
    assert get("awsconfig_conformance_pack_last_poll_success_timestamp_seconds", PACK) == 1_700_000_100
    assert get("awsconfig_conformance_pack_rule_series_dropped_total", {}) == 4


def test_a_pack_without_a_score_or_a_successful_poll_publishes_only_its_poll_status():
    never = ConformancePackState(account_id="111122223333", region="us-east-1", name="CIS", poll_success=False)
    text = generate_latest(registry_for(SnapshotStore(with_packs(never)))).decode()
    samples = parse_metrics(text)

    assert sample(samples, "awsconfig_conformance_pack_poll_success", **PACK) == 0
    assert series(samples, "awsconfig_conformance_pack_compliance_score") == []
    assert series(samples, "awsconfig_conformance_pack_rule_compliant") == []
    assert series(samples, "awsconfig_conformance_pack_last_poll_success_timestamp_seconds") == []
    assert series(samples, "awsconfig_conformance_pack_rules") == []


def test_api_counters_carry_aws_config_operations():
    counters = ApiCounters()
    counters.count_request("DescribeConformancePackCompliance", "eu-west-1")
    counters.count_error("ListConformancePackComplianceScores", "eu-west-1", "ThrottlingException")
    get = registry_for(SnapshotStore(), counters).get_sample_value

    assert (
        get(
            "auditmanager_api_requests_total", {"operation": "DescribeConformancePackCompliance", "region": "eu-west-1"}
        )
        == 1
    )
    errors = {
        "operation": "ListConformancePackComplianceScores",
        "region": "eu-west-1",
        "error_code": "ThrottlingException",
    }
    assert get("auditmanager_api_errors_total", errors) == 1
