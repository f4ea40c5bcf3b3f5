"""The AWS Config client against the simulator through real boto3: validated plain data, paging, errors, limits."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from exporter.aws import MALFORMED, AuditManagerClient, AwsError
from exporter.awsconfig import NOT_FOUND, ConformancePackClient
from exporter.config import parse
from exporter.conformance import AggregatePackCompliance, PackMeta, PackScore, RuleCompliance
from exporter.simulator import Fault, Simulator
from exporter.snapshot import ApiCounters
from tests.conftest import insights, uuid

NOW = 1_795_000_000.0
RULES = {"rule-a": "COMPLIANT", "rule-b": "NON_COMPLIANT", "rule-c": "INSUFFICIENT_DATA"}


@pytest.fixture
def sim():
    with Simulator(clock=lambda: NOW) as simulator:
        yield simulator


def target_config(sim: Simulator, **settings: object):
    return parse(
        {
            "max_attempts": 1,
            **settings,
            "targets": [
                {
                    "region": "us-east-1",
                    "endpoint_url": sim.url,
                    "sources": ["auditmanager", "config"],
                    "assessments": [{"id": uuid(1)}],
                    "conformance_packs": {"discover": True},
                }
            ],
        }
    )


def session(target):
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=target.region)


def client_for(sim: Simulator, counters: ApiCounters | None = None, **settings: object) -> ConformancePackClient:
    config = target_config(sim, **settings)
    return ConformancePackClient(config.expanded_targets()[0], config, counters or ApiCounters(), session)


def test_scores_arrive_as_percentages_and_none_without_data(sim):
    sim.awsconfig.add_conformance_pack("us-east-1", "Computed", RULES)
    sim.awsconfig.add_conformance_pack("us-east-1", "Perfect", RULES, score="100")
    sim.awsconfig.add_conformance_pack("us-east-1", "Nothing-yet", {"rule-x": "INSUFFICIENT_DATA"})

    scores = client_for(sim).compliance_scores()

    assert scores == (
        PackScore("Computed", 50.0),
        PackScore("Perfect", 100.0),
        PackScore("Nothing-yet", None),
    )


def test_scores_of_every_page_come_in_one_logical_call(sim):
    names = [f"Pack-{n:02d}" for n in range(45)]
    for name in names:
        sim.awsconfig.add_conformance_pack("us-east-1", name, RULES)
    counters = ApiCounters()

    scores = client_for(sim, counters).compliance_scores()

    assert [s.name for s in scores] == names
    assert sim.count("ListConformancePackComplianceScores") == 3
    assert counters.requests() == {("ListConformancePackComplianceScores", "us-east-1"): 3}


def test_rule_compliance_of_every_page_arrives_in_order(sim):
    rules = {f"rule-{n:02d}": ("COMPLIANT", "NON_COMPLIANT", "INSUFFICIENT_DATA")[n % 3] for n in range(7)}
    sim.awsconfig.add_conformance_pack("us-east-1", "Pack", rules)
    sim.awsconfig.page_size = 3

    result = client_for(sim).rule_compliance("Pack")

    assert result == tuple(RuleCompliance(rule, compliance) for rule, compliance in rules.items())
    assert sim.count("DescribeConformancePackCompliance") == 3


def test_conformance_packs_carry_the_account_their_arn_names(sim):
    sim.awsconfig.add_conformance_pack("us-east-1", "Alpha")
    sim.awsconfig.add_conformance_pack("us-east-1", "Beta")
    sim.awsconfig.page_size = 1

    assert client_for(sim).conformance_packs() == (PackMeta("Alpha", "123456789012"), PackMeta("Beta", "123456789012"))


@pytest.mark.parametrize("score", ["150", "100.5", "-3", "abc", "NaN", "inf", " 50", "1e2", "", "50%"])
def test_a_score_that_is_not_a_percentage_is_a_malformed_response(sim, score):
    sim.awsconfig.add_conformance_pack("us-east-1", "Good", RULES)
    sim.awsconfig.add_conformance_pack("us-east-1", "Bad", RULES, score=score)
    counters = ApiCounters()

    with pytest.raises(AwsError) as caught:
        client_for(sim, counters).compliance_scores()

    assert caught.value.code == MALFORMED
    assert counters.errors() == {("ListConformancePackComplianceScores", "us-east-1", MALFORMED): 1}


@pytest.mark.parametrize("compliance", ["NOT_APPLICABLE", "compliant", ""])
def test_an_unknown_compliance_type_is_a_malformed_response(sim, compliance):
    sim.awsconfig.add_conformance_pack("us-east-1", "Pack", {"rule-a": "COMPLIANT", "rule-b": compliance})

    with pytest.raises(AwsError) as caught:
        client_for(sim).rule_compliance("Pack")

    assert caught.value.code == MALFORMED


@pytest.mark.parametrize("kind", ["malformed_json", "empty_body", "no_insights"])
def test_an_answer_without_its_list_is_a_malformed_response_for_every_operation(sim, kind):
    sim.awsconfig.add_conformance_pack("us-east-1", "Pack", RULES)
    sim.awsconfig.add_fault(Fault(kind))
    counters = ApiCounters()
    client = client_for(sim, counters)

    for call in (client.compliance_scores, lambda: client.rule_compliance("Pack"), client.conformance_packs):
        with pytest.raises(AwsError) as caught:
            call()
        assert caught.value.code == MALFORMED
    assert set(counters.errors().values()) == {1}
    assert len(counters.errors()) == 3


def test_aggregate_compliance_of_every_page_arrives_as_rule_counts_per_source(sim):
    for n in range(150):
        sim.awsconfig.set_aggregate_pack("us-east-1", "org", (f"{n:012d}", "eu-west-1", "Pack"), RULES)

    packs = client_for(sim).aggregate_compliance("org")

    assert len(packs) == 150
    assert packs[7] == AggregatePackCompliance("000000000007", "eu-west-1", "Pack", 1, 1)
    assert len(sim.requests("DescribeAggregateComplianceByConformancePacks")) == 2


@pytest.mark.parametrize(
    "fault",
    [
        Fault(
            "body",
            body=b'{"AggregateComplianceByConformancePacks": [{"ConformancePackName": "P", '
            b'"AccountId": "1234", "AwsRegion": "us-east-1", "Compliance": {}}]}',
        ),
        Fault(
            "body",
            body=b'{"AggregateComplianceByConformancePacks": [{"ConformancePackName": "P", '
            b'"AccountId": "123456789012", "AwsRegion": "us-east-1", "Compliance": {"CompliantRuleCount": -1, '
            b'"NonCompliantRuleCount": 0}}]}',
        ),
        Fault(
            "body",
            body=b'{"AggregateComplianceByConformancePacks": [{"ConformancePackName": "P", '
            b'"AccountId": "123456789012", "AwsRegion": "us-east-1", "Compliance": {"NonCompliantRuleCount": 0}}]}',
        ),
        Fault(
            "body",
            body=b'{"AggregateComplianceByConformancePacks": [{"ConformancePackName": "P", '
            b'"AccountId": "123456789012", "AwsRegion": "us-east-1\\n", "Compliance": {"CompliantRuleCount": 1, '
            b'"NonCompliantRuleCount": 0}}]}',
        ),
        Fault("no_insights"),
    ],
    ids=["account", "negative", "missing-count", "region", "no-list"],
)
def test_a_malformed_aggregate_answer_is_a_malformed_response(sim, fault):
    sim.awsconfig.add_fault(fault)
    counters = ApiCounters()

    with pytest.raises(AwsError) as caught:
        client_for(sim, counters).aggregate_compliance("org")

    assert caught.value.code == MALFORMED
    assert counters.errors() == {("DescribeAggregateComplianceByConformancePacks", "us-east-1", MALFORMED): 1}


def test_a_source_pack_answered_twice_is_a_malformed_response(sim):
    item = (
        b'{"ConformancePackName": "P", "AccountId": "123456789012", "AwsRegion": "us-east-1", '
        b'"Compliance": {"CompliantRuleCount": 1, "NonCompliantRuleCount": 0}}'
    )
    sim.awsconfig.add_fault(
        Fault("body", body=b'{"AggregateComplianceByConformancePacks": [' + item + b", " + item + b"]}")
    )

    with pytest.raises(AwsError) as caught:
        client_for(sim).aggregate_compliance("org")

    assert caught.value.code == MALFORMED


def test_a_missing_aggregator_is_its_error_code(sim):
    with pytest.raises(AwsError) as caught:
        client_for(sim).aggregate_compliance("org")

    assert caught.value.code == "NoSuchConfigurationAggregatorException"


def test_a_vanished_pack_is_not_found(sim):
    counters = ApiCounters()

    with pytest.raises(AwsError) as caught:
        client_for(sim, counters).rule_compliance("Gone")

    assert caught.value.code == NOT_FOUND
    assert counters.errors() == {("DescribeConformancePackCompliance", "us-east-1", NOT_FOUND): 1}


def test_throttling_is_retried_and_counted_as_requests(sim):
    sim.awsconfig.add_conformance_pack("us-east-1", "Pack", RULES)
    sim.awsconfig.add_fault(Fault("error", code="ThrottlingException"))
    counters = ApiCounters()

    with pytest.raises(AwsError) as caught:
        client_for(sim, counters, max_attempts=3).rule_compliance("Pack")

    assert caught.value.code == "ThrottlingException"
    assert counters.requests() == {("DescribeConformancePackCompliance", "us-east-1"): 3}
    assert sim.count("DescribeConformancePackCompliance") == 3


def test_each_source_keeps_to_the_rate_limit_on_its_own(sim):
    sim.add_assessment("us-east-1", uuid(1), "SOC 2", insights=insights())
    sim.awsconfig.add_conformance_pack("us-east-1", "Pack", RULES)
    config = target_config(sim, max_requests_per_second=4, max_concurrency=8)
    (target,) = config.expanded_targets()
    counters = ApiCounters()
    packs = ConformancePackClient(target, config, counters, session)
    assessments = AuditManagerClient(target, config, counters, session)

    with ThreadPoolExecutor(max_workers=8) as pool:
        calls = [pool.submit(packs.rule_compliance, "Pack") for _ in range(12)]
        calls += [pool.submit(assessments.assessment_insights, uuid(1)) for _ in range(12)]
        for call in calls:
            call.result()

    config_operation, audit_operation = "DescribeConformancePackCompliance", "GetInsightsByAssessment"
    # The limiter admits 4 per 1.02 s; half a second of window leaves room for a loaded machine delaying arrivals.
    assert sim.max_requests_in_window(0.5, operation=config_operation) <= 4
    assert sim.max_requests_in_window(0.5, operation=audit_operation) <= 4
    assert counters.requests() == {(config_operation, "us-east-1"): 12, (audit_operation, "us-east-1"): 12}
