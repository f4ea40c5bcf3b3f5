"""The AWS Config source end to end: the real exporter process against the simulator's conformance packs, for values,
faults, vanished packs, reload, sharding and the demo."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

import pytest

from exporter.simulator import Fault, Simulator
from tests.conftest import (
    ROLE_ACCOUNT,
    ROLE_ARN,
    ExporterProcess,
    Samples,
    assumed_roles,
    eventually,
    http_get,
    insights,
    sample,
    series,
    uuid,
    write_config,
)
from tests.test_reload import post_reload

REGION = "us-east-1"
ACCOUNT = "123456789012"
DEADLINE_SECONDS = 30.0
CIS = {"root-mfa": "COMPLIANT", "cloudtrail": "NON_COMPLIANT", "flow-logs": "INSUFFICIENT_DATA", "mfa": "COMPLIANT"}
S3 = {"s3-versioning": "COMPLIANT", "s3-logging": "NON_COMPLIANT"}


def config_for(simulator: Simulator, packs: object, poll_interval: str = "1h", **target: object) -> dict[str, object]:
    return {
        "poll_interval": poll_interval,
        "max_attempts": 1,
        "max_requests_per_second": 100,
        "targets": [
            {
                "region": REGION,
                "endpoint_url": simulator.url,
                "sources": ["config"],
                "conformance_packs": packs,
                **target,
            }
        ],
    }


def pack_labels(name: str, account: str = ACCOUNT) -> dict[str, str]:
    return {"account_id": account, "region": REGION, "conformance_pack": name}


def packs_of(samples: Samples) -> set[str]:
    return {s["conformance_pack"] for s in series(samples, "awsconfig_conformance_pack_poll_success")}


def wait_for(exporter: ExporterProcess, condition: Callable[[Samples], bool]) -> Samples:
    return eventually(exporter.scrape, condition, what="the scrape", timeout=DEADLINE_SECONDS, detail=exporter.logs)


def requests(samples: Samples, operation: str) -> float:
    return sample(samples, "auditmanager_api_requests_total", operation=operation, region=REGION) or 0.0


def test_scores_rule_counts_and_rule_compliance_are_published_with_one_scores_call_per_cycle(simulator, run_exporter):
    simulator.awsconfig.add_conformance_pack(REGION, "CIS", CIS, score="62.5")
    simulator.awsconfig.add_conformance_pack(REGION, "S3", S3)
    simulator.awsconfig.add_conformance_pack(REGION, "Unevaluated", {"new-rule": "INSUFFICIENT_DATA"})
    simulator.awsconfig.page_size = 2

    samples = run_exporter(config_for(simulator, {"discover": True})).scrape()

    cis = pack_labels("CIS")
    assert sample(samples, "awsconfig_conformance_pack_compliance_score", **cis) == 62.5
    assert sample(samples, "awsconfig_conformance_pack_compliance_score", **pack_labels("S3")) == 50.0
    assert sample(samples, "awsconfig_conformance_pack_compliance_score", **pack_labels("Unevaluated")) is None
    counts = {c: sample(samples, "awsconfig_conformance_pack_rules", **cis, compliance=c) for c in CIS.values()}
    assert counts == {"COMPLIANT": 2, "NON_COMPLIANT": 1, "INSUFFICIENT_DATA": 1}
    compliant = {
        s["config_rule"]: sample(samples, "awsconfig_conformance_pack_rule_compliant", **s)
        for s in series(samples, "awsconfig_conformance_pack_rule_compliant")
        if s["conformance_pack"] == "CIS"
    }
    assert compliant == {"root-mfa": 1, "cloudtrail": 0, "mfa": 1}
    for name in ("CIS", "S3", "Unevaluated"):
        assert sample(samples, "awsconfig_conformance_pack_poll_success", **pack_labels(name)) == 1
        assert sample(samples, "awsconfig_conformance_pack_last_poll_success_timestamp_seconds", **pack_labels(name))
    # One paged scores call for the three packs (two pages of two), then the rules of each pack (CIS has two pages).
    assert simulator.count("ListConformancePackComplianceScores") == 2
    assert requests(samples, "ListConformancePackComplianceScores") == 2
    assert sorted(r.conformance_pack for r in simulator.requests("DescribeConformancePackCompliance")) == [
        "CIS",
        "CIS",
        "S3",
        "Unevaluated",
    ]
    assert simulator.count("GetInsightsByAssessment") + simulator.count("ListAssessments") == 0


def test_the_aggregator_view_is_off_by_default(simulator, run_exporter):
    simulator.awsconfig.add_conformance_pack(REGION, "CIS", CIS)
    simulator.awsconfig.set_aggregate_pack(REGION, "org", (ACCOUNT, REGION, "CIS"), CIS)

    samples = run_exporter(config_for(simulator, ["CIS"])).scrape()

    assert series(samples, "awsconfig_aggregator_poll_success") == []
    assert series(samples, "awsconfig_aggregate_conformance_pack_rules") == []
    assert simulator.count("DescribeAggregateComplianceByConformancePacks") == 0


def test_the_aggregator_publishes_rule_counts_per_source_and_keeps_them_while_its_poll_fails(simulator, run_exporter):
    other = ("210987654321", "eu-west-1", "S3")
    simulator.awsconfig.add_conformance_pack(REGION, "CIS", CIS)
    simulator.awsconfig.set_aggregate_pack(REGION, "org", (ACCOUNT, REGION, "CIS"), CIS)
    simulator.awsconfig.set_aggregate_pack(REGION, "org", other, S3)
    simulator.awsconfig.page_size = 1
    exporter = run_exporter(config_for(simulator, ["CIS"], poll_interval="1s", aggregator="org"))

    samples = exporter.scrape()
    source = {"aggregator": "org", "account_id": other[0], "region": other[1], "conformance_pack": "S3"}
    status = {"aggregator": "org", "account_id": ACCOUNT, "region": REGION}
    assert sample(samples, "awsconfig_aggregator_poll_success", **status) == 1
    assert sample(samples, "awsconfig_aggregate_conformance_pack_rules", **source, compliance="COMPLIANT") == 1
    assert sample(samples, "awsconfig_aggregate_conformance_pack_rules", **source, compliance="NON_COMPLIANT") == 1
    cis = {**pack_labels("CIS"), "aggregator": "org"}
    assert sample(samples, "awsconfig_aggregate_conformance_pack_rules", **cis, compliance="COMPLIANT") == 2
    assert requests(samples, "DescribeAggregateComplianceByConformancePacks") == 2

    simulator.awsconfig.set_aggregate_pack(REGION, "org", other, {"s3-versioning": "NON_COMPLIANT"})
    simulator.awsconfig.add_fault(
        Fault("error", code="ServiceUnavailable", operation="DescribeAggregateComplianceByConformancePacks")
    )
    failing = wait_for(exporter, lambda s: sample(s, "awsconfig_aggregator_poll_success", **status) == 0)
    assert sample(failing, "awsconfig_aggregate_conformance_pack_rules", **source, compliance="COMPLIANT") == 1
    assert sample(failing, "awsconfig_conformance_pack_poll_success", **pack_labels("CIS")) == 1

    simulator.awsconfig.clear_faults()
    recovered = wait_for(exporter, lambda s: sample(s, "awsconfig_aggregator_poll_success", **status) == 1)
    assert sample(recovered, "awsconfig_aggregate_conformance_pack_rules", **source, compliance="COMPLIANT") == 0
    assert sample(recovered, "awsconfig_aggregate_conformance_pack_rules", **source, compliance="NON_COMPLIANT") == 1


def test_a_malformed_aggregate_answer_is_never_published(simulator, run_exporter):
    simulator.awsconfig.add_conformance_pack(REGION, "CIS", CIS)
    simulator.awsconfig.add_fault(
        Fault(
            "body",
            operation="DescribeAggregateComplianceByConformancePacks",
            body=b'{"AggregateComplianceByConformancePacks": [{"ConformancePackName": "P", "AccountId": "123456789012",'
            b' "AwsRegion": "us-east-1", "Compliance": {"CompliantRuleCount": -4, "NonCompliantRuleCount": 0}}]}',
        )
    )

    samples = run_exporter(config_for(simulator, ["CIS"], aggregator="org")).scrape()

    assert series(samples, "awsconfig_aggregate_conformance_pack_rules") == []
    status = {"aggregator": "org", "account_id": ACCOUNT, "region": REGION}
    assert sample(samples, "awsconfig_aggregator_poll_success", **status) == 0


def test_assessments_and_conformance_packs_of_one_target_share_account_and_region(simulator, run_exporter):
    simulator.add_assessment(REGION, uuid(1), "SOC 2", insights=insights())
    simulator.awsconfig.add_conformance_pack(REGION, "CIS", CIS)
    config = config_for(simulator, ["CIS"], sources=["auditmanager", "config"], assessments=[{"id": uuid(1)}])

    samples = run_exporter(config).scrape()

    (assessment,) = series(samples, "auditmanager_assessment_poll_success")
    (pack,) = series(samples, "awsconfig_conformance_pack_poll_success")
    assert (assessment["account_id"], assessment["region"]) == (pack["account_id"], pack["region"]) == (ACCOUNT, REGION)


@pytest.mark.usefixtures("sts")
def test_named_packs_take_the_account_from_the_role_and_need_no_listing(simulator, run_exporter):
    simulator.awsconfig.add_conformance_pack(REGION, "CIS", CIS)
    config = config_for(simulator, ["CIS"], role_arn=ROLE_ARN)

    samples = run_exporter(config, env={"AWS_ENDPOINT_URL_STS": os.environ["AWS_ENDPOINT_URL_STS"]}).scrape()

    assert sample(samples, "awsconfig_conformance_pack_poll_success", **pack_labels("CIS", ROLE_ACCOUNT)) == 1
    assert simulator.count("DescribeConformancePacks") == 0
    (role,) = assumed_roles()
    assert {r.access_key for r in simulator.requests()} == {role.access_key_id}


def test_a_pack_failing_keeps_its_last_values_while_the_others_are_polled_and_recovers(simulator, run_exporter):
    simulator.awsconfig.add_conformance_pack(REGION, "CIS", CIS)
    simulator.awsconfig.add_conformance_pack(REGION, "S3", S3)
    exporter = run_exporter(config_for(simulator, ["CIS", "S3"], poll_interval="1s"))
    exporter.scrape()

    simulator.awsconfig.add_fault(Fault("error", code="AccessDeniedException", conformance_pack="CIS"))
    simulator.awsconfig.set_rules(REGION, "S3", {"s3-versioning": "COMPLIANT", "s3-logging": "COMPLIANT"})
    failing = wait_for(
        exporter, lambda s: sample(s, "awsconfig_conformance_pack_poll_success", **pack_labels("CIS")) == 0
    )
    cis = pack_labels("CIS")
    assert sample(failing, "awsconfig_conformance_pack_rules", **cis, compliance="NON_COMPLIANT") == 1
    assert sample(failing, "awsconfig_conformance_pack_compliance_score", **cis) == pytest.approx(66.67)
    errors = {"operation": "DescribeConformancePackCompliance", "region": REGION, "error_code": "AccessDeniedException"}
    assert sample(failing, "auditmanager_api_errors_total", **errors) >= 1
    s3 = wait_for(
        exporter, lambda s: sample(s, "awsconfig_conformance_pack_compliance_score", **pack_labels("S3")) == 100
    )
    assert sample(s3, "awsconfig_conformance_pack_poll_success", **pack_labels("S3")) == 1

    simulator.awsconfig.clear_faults()
    wait_for(exporter, lambda s: sample(s, "awsconfig_conformance_pack_poll_success", **pack_labels("CIS")) == 1)


@pytest.mark.parametrize("score", ["150", "NaN", "-1", "abc"])
def test_a_malformed_score_is_never_published_and_fails_the_polls(simulator, run_exporter, score):
    simulator.awsconfig.add_conformance_pack(REGION, "CIS", CIS, score=score)
    simulator.awsconfig.add_conformance_pack(REGION, "S3", S3)

    samples = run_exporter(config_for(simulator, ["CIS", "S3"])).scrape()

    assert series(samples, "awsconfig_conformance_pack_compliance_score") == []
    assert series(samples, "awsconfig_conformance_pack_rules") == []
    assert [sample(samples, "awsconfig_conformance_pack_poll_success", **pack_labels(n)) for n in ("CIS", "S3")] == [
        0,
        0,
    ]
    errors = {"operation": "ListConformancePackComplianceScores", "region": REGION, "error_code": "MalformedResponse"}
    assert sample(samples, "auditmanager_api_errors_total", **errors) == 1


@pytest.mark.parametrize("kind", ["malformed_json", "empty_body", "no_insights"])
def test_an_answer_without_its_rules_is_never_published_as_zero(simulator, run_exporter, kind):
    simulator.awsconfig.add_conformance_pack(REGION, "CIS", CIS)
    simulator.awsconfig.add_fault(Fault(kind, operation="DescribeConformancePackCompliance"))

    samples = run_exporter(config_for(simulator, ["CIS"])).scrape()

    assert series(samples, "awsconfig_conformance_pack_rules") == []
    assert series(samples, "awsconfig_conformance_pack_rule_compliant") == []
    assert sample(samples, "awsconfig_conformance_pack_poll_success", **pack_labels("CIS")) == 0


def test_throttled_scores_fail_every_pack_of_the_target_until_aws_config_answers_again(simulator, run_exporter):
    simulator.awsconfig.add_conformance_pack(REGION, "CIS", CIS)
    simulator.awsconfig.add_fault(Fault("throttle_above_rate", rate=0, operation="ListConformancePackComplianceScores"))
    exporter = run_exporter(config_for(simulator, {"discover": True}, poll_interval="1s"))

    throttled = wait_for(exporter, lambda s: packs_of(s) == {"CIS"})
    assert sample(throttled, "awsconfig_conformance_pack_poll_success", **pack_labels("CIS")) == 0
    errors = {"operation": "ListConformancePackComplianceScores", "region": REGION, "error_code": "ThrottlingException"}
    assert sample(throttled, "auditmanager_api_errors_total", **errors) >= 1

    simulator.awsconfig.clear_faults()
    recovered = wait_for(
        exporter, lambda s: sample(s, "awsconfig_conformance_pack_poll_success", **pack_labels("CIS")) == 1
    )
    assert sample(recovered, "awsconfig_conformance_pack_compliance_score", **pack_labels("CIS")) == pytest.approx(
        66.67
    )


def test_a_discovered_pack_that_vanishes_loses_its_series(simulator, run_exporter):
    simulator.awsconfig.add_conformance_pack(REGION, "CIS", CIS)
    simulator.awsconfig.add_conformance_pack(REGION, "S3", S3)
    config = config_for(simulator, {"discover": True}, poll_interval="1s")
    config["discovery_interval"] = "1s"
    exporter = run_exporter(config)
    assert packs_of(exporter.scrape()) == {"CIS", "S3"}

    simulator.awsconfig.remove_conformance_pack(REGION, "S3")

    after = wait_for(exporter, lambda s: packs_of(s) == {"CIS"})
    assert [s["conformance_pack"] for s in series(after, "awsconfig_conformance_pack_compliance_score")] == ["CIS"]
    assert {s["conformance_pack"] for s in series(after, "awsconfig_conformance_pack_rule_compliant")} == {"CIS"}
    assert sample(after, "awsconfig_discovery_success", account_id=ACCOUNT, region=REGION) == 1


def test_a_named_pack_that_vanishes_stays_as_a_failed_poll_without_values(simulator, run_exporter):
    simulator.awsconfig.add_conformance_pack(REGION, "CIS", CIS)
    simulator.awsconfig.add_conformance_pack(REGION, "S3", S3)
    exporter = run_exporter(config_for(simulator, ["CIS", "S3"], poll_interval="1s"))
    assert sample(exporter.scrape(), "awsconfig_conformance_pack_poll_success", **pack_labels("S3")) == 1

    simulator.awsconfig.remove_conformance_pack(REGION, "S3")

    after = wait_for(exporter, lambda s: sample(s, "awsconfig_conformance_pack_poll_success", **pack_labels("S3")) == 0)
    assert [s["conformance_pack"] for s in series(after, "awsconfig_conformance_pack_compliance_score")] == ["CIS"]
    assert {s["conformance_pack"] for s in series(after, "awsconfig_conformance_pack_rule_compliant")} == {"CIS"}
    (row,) = [u for u in status_units(exporter) if u["name"] == "S3"]
    assert (row["state"], row["error_code"]) == ("failing", "NoSuchConformancePackException")


@pytest.mark.parametrize("others", [True, False], ids=["beside-other-packs", "region-without-packs"])
def test_a_named_pack_that_does_not_exist_is_failing_from_the_first_cycle(simulator, run_exporter, others):
    if others:
        simulator.awsconfig.add_conformance_pack(REGION, "CIS", CIS)
    exporter = run_exporter(config_for(simulator, ["Typo"]))
    account = ACCOUNT if others else ""

    samples = exporter.scrape()

    assert sample(samples, "awsconfig_conformance_pack_poll_success", **pack_labels("Typo", account)) == 0
    (row,) = status_units(exporter)
    assert (row["state"], row["kind"], row["name"]) == ("failing", "conformance pack", "Typo")
    assert row["error_code"] == "NoSuchConformancePackException"
    assert cycle_failures(exporter) >= 1


def test_a_discovering_target_whose_calls_are_denied_has_a_failing_discovery_series(simulator, run_exporter):
    simulator.awsconfig.add_conformance_pack(REGION, "CIS", CIS)
    simulator.awsconfig.add_fault(Fault("error", code="AccessDeniedException", message="not allowed"))
    exporter = run_exporter(config_for(simulator, {"discover": True}))

    samples = exporter.scrape()

    assert sample(samples, "awsconfig_discovery_success", account_id="", region=REGION) == 0
    (target,) = status_document(exporter)["targets"]
    assert (target["source"], target["state"], target["error_code"]) == ("config", "failing", "AccessDeniedException")
    assert cycle_failures(exporter) >= 1


def status_document(exporter: ExporterProcess) -> dict[str, Any]:
    status, body, _ = http_get(exporter.url + "/status?format=json")
    assert status == 200
    document: dict[str, Any] = json.loads(body)
    return document


def status_units(exporter: ExporterProcess) -> list[dict[str, Any]]:
    units: list[dict[str, Any]] = status_document(exporter)["units"]
    return units


def cycle_failures(exporter: ExporterProcess) -> int:
    """The `failed` count of the latest "poll cycle finished" log line (written just after the cycle publishes, so
    it may come a moment after the scrape that saw the cycle)."""
    lines = eventually(
        lambda: [line for line in exporter.logs().splitlines() if 'msg="poll cycle finished"' in line],
        what="a poll cycle's log line",
        detail=exporter.logs,
    )
    return int(re.search(r" failed=(\d+)", lines[-1]).group(1))  # type: ignore[union-attr]


def test_the_rule_series_cap_leaves_out_whole_packs_and_counts_them(simulator, run_exporter):
    simulator.awsconfig.add_conformance_pack(REGION, "A-Pack", {f"a{n}": "COMPLIANT" for n in range(3)})
    simulator.awsconfig.add_conformance_pack(REGION, "B-Pack", {f"b{n}": "NON_COMPLIANT" for n in range(4)})
    config = config_for(simulator, {"discover": True})
    config["max_conformance_pack_rule_series"] = 5

    samples = run_exporter(config).scrape()

    assert {s["conformance_pack"] for s in series(samples, "awsconfig_conformance_pack_rule_compliant")} == {"A-Pack"}
    assert sample(samples, "awsconfig_conformance_pack_rules", **pack_labels("B-Pack"), compliance="NON_COMPLIANT") == 4
    assert sample(samples, "awsconfig_conformance_pack_rule_series_dropped_total") == 4


def test_a_reload_polls_added_packs_and_stops_publishing_removed_ones(simulator, run_exporter):
    for name in ("CIS", "S3", "HIPAA"):
        simulator.awsconfig.add_conformance_pack(REGION, name, CIS)
    exporter = run_exporter(config_for(simulator, ["CIS", "S3"]))
    assert packs_of(exporter.scrape()) == {"CIS", "S3"}

    write_config(exporter.config_path, config_for(simulator, ["S3", "HIPAA"]))
    assert post_reload(exporter) == (200, "config reloaded\n")

    after = wait_for(exporter, lambda s: packs_of(s) == {"S3", "HIPAA"})
    assert sample(after, "awsconfig_conformance_pack_poll_success", **pack_labels("HIPAA")) == 1

    write_config(exporter.config_path, config_for(simulator, ["CIS"], sources=["config", "cloudtrail"]))
    assert post_reload(exporter)[0] == 500
    assert packs_of(exporter.scrape()) == {"S3", "HIPAA"}


def test_two_exporter_processes_split_the_packs_without_overlap(simulator, run_exporter):
    names = [f"Pack-{n}" for n in range(12)]
    for name in names:
        simulator.awsconfig.add_conformance_pack(REGION, name, S3)
    config = config_for(simulator, {"discover": True})

    shards = [run_exporter(config, "--shard.index", str(i), "--shard.count", "2").scrape() for i in range(2)]

    polled = [packs_of(samples) for samples in shards]
    assert polled[0] | polled[1] == set(names)
    assert not polled[0] & polled[1]
    asked = [r.conformance_pack for r in simulator.requests("DescribeConformancePackCompliance")]
    assert sorted(asked) == sorted(names)


def test_the_demo_shows_two_conformance_packs_beside_the_assessments(run_exporter):
    samples = run_exporter(None, "--demo").scrape()

    assert len(packs_of(samples)) == 2
    assert len(series(samples, "awsconfig_conformance_pack_compliance_score")) == 2
    assert series(samples, "auditmanager_assessment_poll_success")
    assert all(v == 1 for (name, _), v in samples.items() if name == "awsconfig_conformance_pack_poll_success")
