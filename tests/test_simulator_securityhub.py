"""The Security Hub CSPM stand-in, checked through a real boto3 `securityhub` client so it cannot drift from
botocore's model."""

import tracemalloc

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from exporter.simulator import SECURITYHUB_ERROR_STATUS, Fault, FindingSet, Simulator
from exporter.simulator.securityhub_data import STANDARD_CONTROL
from exporter.simulator.wire import offset_token
from tests.test_simulator_awsconfig import conforms

NOW = 1_795_000_000.25
MODEL = botocore.session.get_session().get_service_model("securityhub")
FSBP = "standards/aws-foundational-security-best-practices/v/1.0.0"
CIS = "ruleset/cis-aws-foundations-benchmark/v/1.2.0"
FSBP_ARN = "arn:aws:securityhub:us-east-1::standards/aws-foundational-security-best-practices/v/1.0.0"
OWN = [
    {"RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}]},
    {"WorkflowStatus": [{"Value": "SUPPRESSED", "Comparison": "NOT_EQUALS"}]},
    {"ProductName": [{"Value": "Security Hub", "Comparison": "EQUALS"}]},
    {"AwsAccountId": [{"Value": "123456789012", "Comparison": "EQUALS"}]},
    {"Region": [{"Value": "us-east-1", "Comparison": "EQUALS"}]},
]
FILTERS = {key: value for item in OWN for key, value in item.items()}


@pytest.fixture
def sim():
    with Simulator(clock=lambda: NOW) as simulator:
        hub = simulator.securityhub
        hub.enable_hub("us-east-1")
        hub.enable_standard("us-east-1", FSBP)
        hub.enable_standard("us-east-1", CIS, status="INCOMPLETE")
        hub.add_control("us-east-1", "IAM.1", {FSBP: True, CIS: True}, severity="HIGH")
        hub.add_control("us-east-1", "S3.1", {FSBP: True}, severity="MEDIUM")
        hub.add_control("us-east-1", "EC2.2", {FSBP: False, CIS: True}, severity="CRITICAL")
        yield simulator


def client(sim, region="us-east-1"):
    return boto3.client(
        "securityhub",
        region_name=region,
        endpoint_url=sim.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )


def answer(sim, operation, **kwargs):
    response = getattr(client(sim), botocore.xform_name(operation))(**kwargs)
    response.pop("ResponseMetadata")
    assert conforms(MODEL.operation_model(operation).output_shape, response) == []
    return response


def every_finding(sim, filters=FILTERS, page=100):
    findings, token = [], None
    while True:
        response = answer(
            sim, "GetFindings", Filters=filters, MaxResults=page, **({"NextToken": token} if token else {})
        )
        findings += response["Findings"]
        token = response.get("NextToken")
        if token is None:
            return findings


def test_hub_names_the_account_and_the_control_finding_generator(sim):
    sim.securityhub.enable_hub("eu-west-1", STANDARD_CONTROL)

    hub = answer(sim, "DescribeHub")
    legacy = client(sim, "eu-west-1").describe_hub()

    assert hub["HubArn"] == "arn:aws:securityhub:us-east-1:123456789012:hub/default"
    assert hub["ControlFindingGenerator"] == "SECURITY_CONTROL"
    assert legacy["ControlFindingGenerator"] == "STANDARD_CONTROL"


def test_a_region_without_a_hub_answers_invalid_access(sim):
    with pytest.raises(ClientError) as caught:
        client(sim, "ap-south-1").describe_hub()

    assert caught.value.response["Error"]["Code"] == "InvalidAccessException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401


def test_enabled_standards_page_with_their_status_and_names(sim):
    sim.securityhub.page_size = 1

    first = answer(sim, "GetEnabledStandards")
    second = answer(sim, "GetEnabledStandards", NextToken=first["NextToken"])
    standards = answer(sim, "DescribeStandards")

    assert [s["StandardsArn"] for s in first["StandardsSubscriptions"]] == [FSBP_ARN]
    assert [s["StandardsStatus"] for s in second["StandardsSubscriptions"]] == ["INCOMPLETE"]
    assert "NextToken" not in second
    assert second["StandardsSubscriptions"][0]["StandardsSubscriptionArn"] == (
        "arn:aws:securityhub:us-east-1:123456789012:subscription/cis-aws-foundations-benchmark/v/1.2.0"
    )
    names = [s["Name"] for page in [standards] for s in page["Standards"]]
    assert "AWS Foundational Security Best Practices v1.0.0" in names


def test_legacy_standards_controls_page_and_say_which_are_enabled(sim):
    sim.securityhub.page_size = 2
    arn = "arn:aws:securityhub:us-east-1:123456789012:subscription/aws-foundational-security-best-practices/v/1.0.0"

    first = answer(sim, "DescribeStandardsControls", StandardsSubscriptionArn=arn)
    second = answer(sim, "DescribeStandardsControls", StandardsSubscriptionArn=arn, NextToken=first["NextToken"])

    controls = first["Controls"] + second["Controls"]
    assert [(c["ControlId"], c["ControlStatus"], c["SeverityRating"]) for c in controls] == [
        ("IAM.1", "ENABLED", "HIGH"),
        ("S3.1", "ENABLED", "MEDIUM"),
        ("EC2.2", "DISABLED", "CRITICAL"),
    ]
    assert controls[0]["StandardsControlArn"].endswith(
        ":control/aws-foundational-security-best-practices/v/1.0.0/IAM.1"
    )
    assert controls[0]["ControlStatusUpdatedAt"].timestamp() == 1_700_000_000.0


def test_consolidated_definitions_and_associations_say_which_controls_are_enabled(sim):
    definitions = answer(sim, "ListSecurityControlDefinitions", StandardsArn=FSBP_ARN)
    ids = [
        {"SecurityControlId": d["SecurityControlId"], "StandardsArn": FSBP_ARN}
        for d in definitions["SecurityControlDefinitions"]
    ]
    ids.append({"SecurityControlId": "Nope.1", "StandardsArn": FSBP_ARN})

    associations = answer(sim, "BatchGetStandardsControlAssociations", StandardsControlAssociationIds=ids)

    assert [d["SecurityControlId"] for d in definitions["SecurityControlDefinitions"]] == ["IAM.1", "S3.1", "EC2.2"]
    assert [
        (a["SecurityControlId"], a["AssociationStatus"]) for a in associations["StandardsControlAssociationDetails"]
    ] == [
        ("IAM.1", "ENABLED"),
        ("S3.1", "ENABLED"),
        ("EC2.2", "DISABLED"),
    ]
    assert [u["ErrorCode"] for u in associations["UnprocessedAssociations"]] == ["NOT_FOUND"]


def test_findings_page_by_100_and_the_server_side_filters_leave_out_other_findings(sim):
    hub = sim.securityhub
    hub.add_findings("us-east-1", FindingSet(control_id="IAM.1", status="FAILED", count=180))
    hub.add_findings("us-east-1", FindingSet(control_id="S3.1", status="PASSED", count=70))
    for other in (
        {"record_state": "ARCHIVED"},
        {"workflow": "SUPPRESSED"},
        {"product": "GuardDuty"},
        {"account_id": "210987654321"},
        {"region": "eu-west-1"},
    ):
        hub.add_findings("us-east-1", FindingSet(control_id="S3.1", status="FAILED", count=3, **other))

    findings = every_finding(sim)
    unfiltered = every_finding(sim, filters={})

    assert len(findings) == 250
    assert len(unfiltered) == 265
    assert sim.count("GetFindings") == 3 + 3
    assert len({f["Id"] for f in findings}) == 250
    failed = [f for f in findings if f["Compliance"]["Status"] == "FAILED"]
    assert len(failed) == 180
    assert failed[0]["Compliance"]["SecurityControlId"] == "IAM.1"
    assert failed[0]["Compliance"]["AssociatedStandards"] == [{"StandardsId": FSBP}, {"StandardsId": CIS}]
    assert failed[0]["Severity"]["Label"] == "HIGH"


def test_legacy_findings_come_once_per_standard_with_the_standard_in_product_fields(sim):
    sim.securityhub.enable_hub("us-east-1", STANDARD_CONTROL)
    sim.securityhub.add_findings("us-east-1", FindingSet(control_id="IAM.1", status="WARNING", count=2))

    findings = every_finding(sim)

    assert [(f["ProductFields"]["StandardsArn"], f["ProductFields"]["ControlId"]) for f in findings] == [
        (FSBP_ARN, "IAM.1"),
        ("arn:aws:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0", "IAM.1"),
    ] * 2
    assert "SecurityControlId" not in findings[0]["Compliance"]


def test_a_filter_the_simulator_does_not_apply_is_refused(sim):
    with pytest.raises(ClientError) as caught:
        client(sim).get_findings(Filters={"SeverityLabel": [{"Value": "HIGH", "Comparison": "EQUALS"}]})

    assert caught.value.response["Error"]["Code"] == "InvalidInputException"


def test_a_hundred_thousand_findings_cost_the_simulator_a_few_records(sim):
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    sim.securityhub.add_findings("us-east-1", FindingSet(control_id="IAM.1", status="FAILED", count=100_000))
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()

    last = client(sim).get_findings(Filters=FILTERS, MaxResults=100, NextToken=offset_token(99_950))

    assert grown < 10_000
    assert len(last["Findings"]) == 50
    assert "NextToken" not in last


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        (Fault("throttle_above_rate", rate=0), "LimitExceededException", 429),
        (Fault("error", code="AccessDeniedException"), "AccessDeniedException", 403),
    ],
)
def test_faults_answer_in_security_hubs_error_form(sim, fault, code, status):
    sim.securityhub.add_fault(Fault(fault.kind, code=fault.code, rate=fault.rate, operation="GetFindings"))

    with pytest.raises(ClientError) as caught:
        client(sim).get_findings(Filters=FILTERS)
    hub = client(sim).describe_hub()

    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert hub["ControlFindingGenerator"] == "SECURITY_CONTROL"


def test_a_fault_can_single_out_one_standard(sim):
    sim.securityhub.add_fault(Fault("error", code="InternalException", standard=CIS))
    arn = "arn:aws:securityhub:us-east-1:123456789012:subscription/{}"

    fine = client(sim).describe_standards_controls(
        StandardsSubscriptionArn=arn.format("aws-foundational-security-best-practices/v/1.0.0")
    )
    with pytest.raises(ClientError) as caught:
        client(sim).describe_standards_controls(
            StandardsSubscriptionArn=arn.format("cis-aws-foundations-benchmark/v/1.2.0")
        )

    assert len(fine["Controls"]) == 3
    assert caught.value.response["Error"]["Code"] == "InternalException"


def test_error_statuses_match_the_model():
    declared = {shape.name: shape.metadata["error"]["httpStatusCode"] for shape in MODEL.error_shapes}

    assert {code: declared[code] for code in SECURITYHUB_ERROR_STATUS} == SECURITYHUB_ERROR_STATUS
