"""The Security Hub client against the simulator: what it reads, how it pages and folds, its rate limits and errors."""

from __future__ import annotations

import boto3
import pytest

from exporter.aws import AwsError
from exporter.config import parse
from exporter.simulator import Fault, FindingSet, Simulator
from exporter.simulator.securityhub_data import STANDARD_CONTROL
from exporter.snapshot import ApiCounters
from exporter.sources.securityhub.client import SecurityHubClient
from exporter.sources.securityhub.score import ControlInfo

REGION = "us-east-1"
ACCOUNT = "123456789012"
FSBP = "standards/aws-foundational-security-best-practices/v/1.0.0"
CIS = "ruleset/cis-aws-foundations-benchmark/v/1.2.0"
FSBP_ARN = f"arn:aws:securityhub:{REGION}::{FSBP}"


def with_standards(simulator: Simulator):
    """Security Hub enabled in REGION with FSBP (READY) and CIS 1.2 (INCOMPLETE) subscribed."""
    hub = simulator.securityhub
    hub.enable_hub(REGION)
    hub.enable_standard(REGION, FSBP)
    hub.enable_standard(REGION, CIS, status="INCOMPLETE")
    return hub


@pytest.fixture
def sim():
    with Simulator() as simulator:
        hub = with_standards(simulator)
        hub.add_control(REGION, "IAM.1", {FSBP: True, CIS: True}, severity="HIGH")
        hub.add_control(REGION, "S3.1", {FSBP: True})
        hub.add_control(REGION, "EC2.2", {FSBP: False, CIS: True}, severity="CRITICAL")
        yield simulator


def session(target):
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=target.region)


def client_for(sim: Simulator, counters: ApiCounters | None = None, **top) -> SecurityHubClient:
    config = parse(
        {"max_attempts": 1, "targets": [{"region": REGION, "endpoint_url": sim.url, "sources": ["securityhub"]}], **top}
    )
    return SecurityHubClient(config.expanded_targets()[0], config, counters or ApiCounters(), session)


def test_the_hub_standards_and_names_come_as_plain_data(sim):
    client = client_for(sim)

    hub = client.hub()
    subscriptions = client.subscriptions()
    names = client.standard_names()

    assert (hub.account_id, hub.legacy) == (ACCOUNT, False)
    assert [(s.standard_id, s.status) for s in subscriptions] == [(FSBP, "READY"), (CIS, "INCOMPLETE")]
    assert subscriptions[0].standards_arn == FSBP_ARN
    assert names[FSBP] == "AWS Foundational Security Best Practices v1.0.0"
    assert names[CIS] == "CIS AWS Foundations Benchmark v1.2.0"


def test_consolidated_and_legacy_controls_say_the_same_thing(sim):
    sim.securityhub.page_size = 2
    client = client_for(sim)
    subscription = client.subscriptions()[0]

    consolidated = client.consolidated_controls(subscription.standards_arn)
    legacy = client.legacy_controls(subscription.subscription_arn)

    expected = [
        ControlInfo(key="IAM.1", control_id="IAM.1", severity="HIGH", enabled=True),
        ControlInfo(key="S3.1", control_id="S3.1", severity="MEDIUM", enabled=True),
        ControlInfo(key="EC2.2", control_id="EC2.2", severity="CRITICAL", enabled=False),
    ]
    assert list(consolidated) == expected
    assert list(legacy) == expected
    assert sim.count("DescribeStandardsControls") == 2
    assert sim.count("BatchGetStandardsControlAssociations") == 1


def test_findings_are_folded_page_by_page_filtered_to_the_targets_own_account_and_region(sim):
    sim.securityhub.add_findings(REGION, FindingSet(control_id="IAM.1", status="FAILED", count=250))
    sim.securityhub.add_findings(
        REGION, FindingSet(control_id="IAM.1", status="FAILED", count=9, account_id="210987654321")
    )
    sim.securityhub.add_findings(REGION, FindingSet(control_id="IAM.1", status="FAILED", count=9, region="eu-west-1"))
    sim.securityhub.add_findings(
        REGION, FindingSet(control_id="IAM.1", status="FAILED", count=9, workflow="SUPPRESSED")
    )
    pages: list[int] = []

    count = client_for(sim).fold_findings(ACCOUNT, lambda findings: pages.append(len(findings)))

    assert count == 3
    assert pages == [100, 100, 50]
    assert sim.count("GetFindings") == 3


def test_get_findings_waits_for_its_own_rate_and_burst(sim):
    sim.securityhub.add_findings(REGION, FindingSet(control_id="IAM.1", status="PASSED", count=2500))
    client = client_for(sim, securityhub_rate_limits={"GetFindings": 5})

    client.fold_findings(ACCOUNT, lambda findings: None)
    client.hub()

    # A bucket of 10 (two seconds of 5/s) then 5 per second: at most 15 requests in any second.
    assert sim.count("GetFindings") == 25
    assert sim.max_requests_in_window(1.0, operation="GetFindings") <= 15
    assert client.requests_started == 26


def test_throttling_and_denial_are_aws_errors_counted_under_their_operation(sim):
    counters = ApiCounters()
    sim.securityhub.add_fault(Fault("throttle_above_rate", rate=0, operation="GetFindings"))
    sim.securityhub.add_fault(Fault("error", code="AccessDeniedException", operation="DescribeHub"))
    client = client_for(sim, counters)

    with pytest.raises(AwsError) as throttled:
        client.fold_findings(ACCOUNT, lambda findings: None)
    with pytest.raises(AwsError) as denied:
        client.hub()

    assert throttled.value.code == "LimitExceededException"
    assert denied.value.code == "AccessDeniedException"
    assert counters.errors() == {
        ("GetFindings", REGION, "LimitExceededException"): 1,
        ("DescribeHub", REGION, "AccessDeniedException"): 1,
    }


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        (
            "DescribeHub",
            b'{"HubArn": "arn:aws:securityhub:us-east-1:123456789012:hub/default", "ControlFindingGenerator": "BOTH"}',
        ),
        ("DescribeHub", b'{"HubArn": 7}'),
        ("GetFindings", b'{"Findings": {}}'),
        ("DescribeStandardsControls", b'{"Controls": [{"ControlId": "IAM.1", "ControlStatusUpdatedAt": 1700000000}]}'),
    ],
)
def test_an_answer_the_model_or_the_exporter_rejects_is_a_malformed_response(sim, operation, body):
    sim.securityhub.add_fault(Fault("body", operation=operation, body=body))
    client = client_for(sim)
    calls = {
        "DescribeHub": client.hub,
        "GetFindings": lambda: client.fold_findings(ACCOUNT, lambda findings: None),
        "DescribeStandardsControls": lambda: client.legacy_controls(client.subscriptions()[0].subscription_arn),
    }

    with pytest.raises(AwsError) as caught:
        calls[operation]()

    assert caught.value.code == "MalformedResponse"


def test_a_legacy_hub_says_so(sim):
    sim.securityhub.enable_hub(REGION, STANDARD_CONTROL)

    assert client_for(sim).hub().legacy
