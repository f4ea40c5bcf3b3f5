"""The AWS Config stand-in, checked through a real boto3 `config` client so it cannot drift from botocore's model."""

import contextlib
import http.client
import json
import re
from datetime import UTC, datetime

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from exporter.simulator import CONFIG_ERROR_STATUS, Fault, Simulator, demo_simulator

NOW = 1_795_000_000.25
MODEL = botocore.session.get_session().get_service_model("config")
RULES = {"rule-a": "COMPLIANT", "rule-b": "NON_COMPLIANT", "rule-c": "INSUFFICIENT_DATA", "rule-d": "COMPLIANT"}
OPERATIONS = (
    "ListConformancePackComplianceScores",
    "DescribeConformancePackCompliance",
    "DescribeConformancePacks",
    "DescribeAggregateComplianceByConformancePacks",
)


@pytest.fixture
def sim():
    with Simulator(clock=lambda: NOW) as simulator:
        yield simulator


def client(sim, region="us-east-1", attempts=1, **config):
    return boto3.client(
        "config",
        region_name=region,
        endpoint_url=sim.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}, **config),
    )


def body(response):
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


def conforms(shape, value, path="$"):
    """Problems of a parsed answer against botocore's output shape: required members, enums, patterns, types."""
    problems = []
    if shape.type_name == "structure":
        problems += [f"{path}.{name}: required" for name in shape.required_members if name not in value]
        for name, item in value.items():
            problems += conforms(shape.members[name], item, f"{path}.{name}")
    elif shape.type_name == "list":
        for index, item in enumerate(value):
            problems += conforms(shape.member, item, f"{path}[{index}]")
    elif shape.type_name == "string":
        if not isinstance(value, str):
            problems.append(f"{path}: not a string")
        elif "enum" in shape.metadata and value not in shape.metadata["enum"]:
            problems.append(f"{path}: {value!r} not in the enum")
        elif "pattern" in shape.metadata and not re.fullmatch(shape.metadata["pattern"], value):
            problems.append(f"{path}: {value!r} does not match {shape.metadata['pattern']}")
    elif shape.type_name == "timestamp" and not isinstance(value, datetime):
        problems.append(f"{path}: not a timestamp")
    return problems


def answer(sim, operation, **kwargs):
    """Call `operation` through boto3 and check the answer against the operation's output shape."""
    response = body(getattr(client(sim), botocore.xform_name(operation))(**kwargs))
    assert conforms(MODEL.operation_model(operation).output_shape, response) == []
    return response


def error_of(call, **kwargs):
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


def all_pages(call, key, **kwargs):
    pages, token = [], None
    while True:
        response = call(**kwargs, **({"NextToken": token} if token else {}))
        pages.append([item for item in response[key]])
        token = response.get("NextToken")
        if token is None:
            return pages


def test_compliance_scores_parse_into_the_stored_and_computed_scores(sim):
    sim.awsconfig.add_conformance_pack("us-east-1", "Computed", RULES)
    sim.awsconfig.add_conformance_pack("us-east-1", "Fixed", RULES, score="42.5")
    sim.awsconfig.add_conformance_pack("us-east-1", "Unevaluated", {"rule-x": "INSUFFICIENT_DATA"})
    sim.awsconfig.add_conformance_pack("us-east-1", "Empty")

    scores = answer(sim, "ListConformancePackComplianceScores")

    updated = datetime.fromtimestamp(NOW, UTC)
    assert scores == {
        "ConformancePackComplianceScores": [
            {"Score": "66.67", "ConformancePackName": "Computed", "LastUpdatedTime": updated},
            {"Score": "42.5", "ConformancePackName": "Fixed", "LastUpdatedTime": updated},
            {"Score": "INSUFFICIENT_DATA", "ConformancePackName": "Unevaluated", "LastUpdatedTime": updated},
            {"Score": "INSUFFICIENT_DATA", "ConformancePackName": "Empty", "LastUpdatedTime": updated},
        ]
    }


def test_compliance_scores_page_through_every_pack_and_filter_by_name(sim):
    names = [f"Pack-{n}" for n in range(7)]
    for name in names:
        sim.awsconfig.add_conformance_pack("us-east-1", name, RULES)
    sim.awsconfig.page_size = 3
    config = client(sim)

    pages = all_pages(config.list_conformance_pack_compliance_scores, "ConformancePackComplianceScores", Limit=20)
    two = all_pages(config.list_conformance_pack_compliance_scores, "ConformancePackComplianceScores", Limit=2)
    filtered = config.list_conformance_pack_compliance_scores(Filters={"ConformancePackNames": ["Pack-5", "Nope"]})

    assert [[s["ConformancePackName"] for s in page] for page in pages] == [names[0:3], names[3:6], names[6:]]
    assert [len(page) for page in two] == [2, 2, 2, 1]
    assert [s["ConformancePackName"] for s in filtered["ConformancePackComplianceScores"]] == ["Pack-5"]
    assert "NextToken" not in filtered


def test_rule_compliance_pages_and_filters_by_compliance_type_and_rule(sim):
    rules = {f"rule-{n:02d}": ("COMPLIANT", "NON_COMPLIANT", "INSUFFICIENT_DATA")[n % 3] for n in range(8)}
    sim.awsconfig.add_conformance_pack("us-east-1", "Pack", rules)
    sim.awsconfig.page_size = 3
    config = client(sim)

    pages = all_pages(
        config.describe_conformance_pack_compliance, "ConformancePackRuleComplianceList", ConformancePackName="Pack"
    )
    noncompliant = config.describe_conformance_pack_compliance(
        ConformancePackName="Pack", Filters={"ComplianceType": "NON_COMPLIANT"}
    )
    two_rules = config.describe_conformance_pack_compliance(
        ConformancePackName="Pack", Filters={"ConfigRuleNames": ["rule-00", "rule-04"]}
    )

    assert [len(page) for page in pages] == [3, 3, 2]
    assert {item["ConfigRuleName"]: item["ComplianceType"] for page in pages for item in page} == rules
    assert pages[0][0] == {"ConfigRuleName": "rule-00", "ComplianceType": "COMPLIANT", "Controls": []}
    assert [item["ConfigRuleName"] for item in noncompliant["ConformancePackRuleComplianceList"]] == [
        "rule-01",
        "rule-04",
        "rule-07",
    ]
    assert [item["ComplianceType"] for item in two_rules["ConformancePackRuleComplianceList"]] == [
        "COMPLIANT",
        "NON_COMPLIANT",
    ]
    assert noncompliant["ConformancePackName"] == "Pack"


def test_rule_compliance_answer_conforms_to_the_model(sim):
    sim.awsconfig.add_conformance_pack("us-east-1", "Pack", RULES)

    response = answer(sim, "DescribeConformancePackCompliance", ConformancePackName="Pack")

    assert len(response["ConformancePackRuleComplianceList"]) == len(RULES)


def test_conformance_pack_details_page_and_name_the_pack_in_its_arn(sim):
    for name in ("Alpha", "Beta", "Gamma"):
        sim.awsconfig.add_conformance_pack("eu-west-1", name, RULES)
    sim.awsconfig.page_size = 2

    config = client(sim, "eu-west-1")
    pages = all_pages(config.describe_conformance_packs, "ConformancePackDetails")
    named = config.describe_conformance_packs(ConformancePackNames=["Gamma"])["ConformancePackDetails"]

    details = [detail for page in pages for detail in page]
    assert [len(page) for page in pages] == [2, 1]
    assert [d["ConformancePackName"] for d in details] == ["Alpha", "Beta", "Gamma"]
    assert details[0]["ConformancePackArn"] == (
        f"arn:aws:config:eu-west-1:123456789012:conformance-pack/Alpha/{details[0]['ConformancePackId']}"
    )
    assert re.fullmatch(r"conformance-pack-[0-9a-f]{6}", details[0]["ConformancePackId"])
    assert [d["ConformancePackName"] for d in named] == ["Gamma"]
    assert (
        conforms(MODEL.operation_model("DescribeConformancePacks").output_shape, {"ConformancePackDetails": details})
        == []
    )


def test_aggregate_compliance_pages_through_the_source_packs_with_their_rule_counts(sim):
    sources = [(f"{n:012d}", "eu-west-1", f"Pack-{n}") for n in range(5)]
    for source in sources:
        sim.awsconfig.set_aggregate_pack("us-east-1", "org", source, RULES)
    sim.awsconfig.set_aggregate_pack("us-east-1", "org", sources[0], {"rule-x": "INSUFFICIENT_DATA"})
    sim.awsconfig.page_size = 2

    first = answer(sim, "DescribeAggregateComplianceByConformancePacks", ConfigurationAggregatorName="org")
    pages = all_pages(
        client(sim).describe_aggregate_compliance_by_conformance_packs,
        "AggregateComplianceByConformancePacks",
        ConfigurationAggregatorName="org",
    )

    assert first["AggregateComplianceByConformancePacks"][0] == {
        "ConformancePackName": "Pack-0",
        "Compliance": {
            "ComplianceType": "INSUFFICIENT_DATA",
            "CompliantRuleCount": 0,
            "NonCompliantRuleCount": 0,
            "TotalRuleCount": 1,
        },
        "AccountId": "000000000000",
        "AwsRegion": "eu-west-1",
    }
    items = [item for page in pages for item in page]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [(i["AccountId"], i["AwsRegion"], i["ConformancePackName"]) for i in items] == sources
    assert items[1]["Compliance"] == {
        "ComplianceType": "NON_COMPLIANT",
        "CompliantRuleCount": 2,
        "NonCompliantRuleCount": 1,
        "TotalRuleCount": 4,
    }


def test_unknown_or_removed_aggregator_is_no_such_configuration_aggregator(sim):
    sim.awsconfig.set_aggregate_pack("us-east-1", "org", ("111122223333", "us-east-1", "Pack"), RULES)
    call = client(sim).describe_aggregate_compliance_by_conformance_packs

    elsewhere = error_of(
        client(sim, "eu-west-1").describe_aggregate_compliance_by_conformance_packs, ConfigurationAggregatorName="org"
    )
    unknown = error_of(call, ConfigurationAggregatorName="other")
    sim.awsconfig.remove_aggregator("us-east-1", "org")
    removed = error_of(call, ConfigurationAggregatorName="org")

    assert elsewhere == unknown == removed == ("NoSuchConfigurationAggregatorException", 400)


def test_unknown_pack_is_no_such_conformance_pack(sim):
    sim.awsconfig.add_conformance_pack("us-east-1", "Known", RULES)
    config = client(sim)

    assert error_of(config.describe_conformance_pack_compliance, ConformancePackName="Unknown") == (
        "NoSuchConformancePackException",
        400,
    )
    assert error_of(config.describe_conformance_packs, ConformancePackNames=["Known", "Unknown"]) == (
        "NoSuchConformancePackException",
        400,
    )
    assert error_of(
        config.describe_conformance_pack_compliance, ConformancePackName="Known", Filters={"ConfigRuleNames": ["x"]}
    ) == ("NoSuchConfigRuleInConformancePackException", 400)


def test_removed_pack_leaves_listings_and_answers_no_such_conformance_pack(sim):
    sim.awsconfig.add_conformance_pack("us-east-1", "Staying", RULES)
    sim.awsconfig.add_conformance_pack("us-east-1", "Leaving", RULES)

    sim.awsconfig.remove_conformance_pack("us-east-1", "Leaving")

    config = client(sim)
    scores = config.list_conformance_pack_compliance_scores()["ConformancePackComplianceScores"]
    assert [s["ConformancePackName"] for s in scores] == ["Staying"]
    assert sim.awsconfig.conformance_pack_names("us-east-1") == ["Staying"]
    assert error_of(config.describe_conformance_pack_compliance, ConformancePackName="Leaving")[0] == (
        "NoSuchConformancePackException"
    )


def test_set_rules_and_set_score_change_the_answers(sim):
    sim.awsconfig.add_conformance_pack("us-east-1", "Pack", RULES)
    config = client(sim)

    sim.awsconfig.set_rules("us-east-1", "Pack", {"only": "NON_COMPLIANT"})
    computed = config.list_conformance_pack_compliance_scores()["ConformancePackComplianceScores"][0]["Score"]
    sim.awsconfig.set_score("us-east-1", "Pack", "not a number")
    fixed = config.list_conformance_pack_compliance_scores()["ConformancePackComplianceScores"][0]["Score"]
    rules = config.describe_conformance_pack_compliance(ConformancePackName="Pack")

    assert (computed, fixed) == ("0.0", "not a number")
    assert rules["ConformancePackRuleComplianceList"] == [
        {"ConfigRuleName": "only", "ComplianceType": "NON_COMPLIANT", "Controls": []}
    ]


@pytest.mark.parametrize(
    ("operation", "kwargs", "code"),
    [
        ("list_conformance_pack_compliance_scores", {"Limit": 21}, "InvalidLimitException"),
        ("describe_conformance_packs", {"Limit": 21}, "InvalidLimitException"),
        (
            "describe_conformance_pack_compliance",
            {"ConformancePackName": "Pack", "Limit": 1001},
            "InvalidLimitException",
        ),
        ("list_conformance_pack_compliance_scores", {"NextToken": "garbage"}, "InvalidNextTokenException"),
        (
            "describe_conformance_pack_compliance",
            {"ConformancePackName": "Pack", "NextToken": "MFSGS==="},
            "InvalidNextTokenException",
        ),
        (
            "describe_conformance_pack_compliance",
            {"ConformancePackName": "1-starts-with-a-digit"},
            "ValidationException",
        ),
    ],
)
def test_invalid_parameters_get_the_error_aws_config_answers(sim, operation, kwargs, code):
    sim.awsconfig.add_conformance_pack("us-east-1", "Pack", RULES)

    assert error_of(getattr(client(sim), operation), **kwargs) == (code, 400)


def test_modelled_errors_of_the_operations_are_known_to_the_simulator():
    modelled = {error.name for name in OPERATIONS for error in MODEL.operation_model(name).error_shapes}

    assert modelled <= CONFIG_ERROR_STATUS.keys()


@pytest.mark.parametrize("code", sorted(CONFIG_ERROR_STATUS))
def test_injected_errors_reach_the_client_with_their_code_and_status(sim, code):
    sim.awsconfig.add_conformance_pack("us-east-1", "Pack", RULES)
    sim.awsconfig.add_fault(Fault("error", code=code))

    assert error_of(client(sim).describe_conformance_pack_compliance, ConformancePackName="Pack") == (
        code,
        CONFIG_ERROR_STATUS[code],
    )
    assert sim.requests()[0].status == CONFIG_ERROR_STATUS[code]


def test_faults_reject_audit_manager_codes_and_assessments():
    config = Simulator().awsconfig

    with pytest.raises(ValueError, match="AWS Config error code"):
        config.add_fault(Fault("error", code="ResourceNotFoundException"))
    with pytest.raises(ValueError, match="assessment"):
        config.add_fault(Fault("error", code="ThrottlingException", assessment_id="x"))
    with pytest.raises(ValueError, match="Audit Manager error code"):
        Simulator().add_fault(Fault("error", code="NoSuchConformancePackException"))


def test_throttling_answers_400_throttling_exception_above_the_rate_which_botocore_retries(sim):
    sim.awsconfig.add_conformance_pack("us-east-1", "Pack", RULES)
    sim.awsconfig.add_fault(Fault("throttle_above_rate", rate=3, operation="DescribeConformancePackCompliance"))
    config = client(sim)

    codes = []
    for _ in range(5):
        try:
            config.describe_conformance_pack_compliance(ConformancePackName="Pack")
            codes.append("OK")
        except ClientError as error:
            codes.append(error.response["Error"]["Code"])
    config.list_conformance_pack_compliance_scores()
    retried = client(sim, attempts=2)
    with contextlib.suppress(ClientError):
        retried.describe_conformance_pack_compliance(ConformancePackName="Pack")

    assert codes == ["OK"] * 3 + ["ThrottlingException"] * 2
    statuses = [r.status for r in sim.requests("DescribeConformancePackCompliance")]
    assert statuses[:5] == [200] * 3 + [400] * 2
    # The retrying client tried twice: botocore treats AWS Config's ThrottlingException as retryable.
    assert len(statuses) == 7
    assert sim.count("ListConformancePackComplianceScores") == 1


def test_faults_for_one_pack_leave_the_other_packs_and_audit_manager_alone(sim):
    sim.awsconfig.add_conformance_pack("us-east-1", "Faulty", RULES)
    sim.awsconfig.add_conformance_pack("us-east-1", "Healthy", RULES)
    sim.awsconfig.add_fault(Fault("error", code="AccessDeniedException", conformance_pack="Faulty"))
    sim.add_fault(Fault("error", code="InternalServerException"))
    config = client(sim)

    assert error_of(config.describe_conformance_pack_compliance, ConformancePackName="Faulty") == (
        "AccessDeniedException",
        400,
    )
    assert (
        len(
            config.describe_conformance_pack_compliance(ConformancePackName="Healthy")[
                "ConformancePackRuleComplianceList"
            ]
        )
        == 4
    )
    assert len(config.list_conformance_pack_compliance_scores()["ConformancePackComplianceScores"]) == 2
    sim.awsconfig.clear_faults()
    assert config.describe_conformance_pack_compliance(ConformancePackName="Faulty")["ConformancePackName"] == "Faulty"
    assert [(r.operation, r.conformance_pack) for r in sim.requests()] == [
        ("DescribeConformancePackCompliance", "Faulty"),
        ("DescribeConformancePackCompliance", "Healthy"),
        ("ListConformancePackComplianceScores", None),
        ("DescribeConformancePackCompliance", "Faulty"),
    ]


@pytest.mark.parametrize("kind", ["malformed_json", "empty_body", "no_insights"])
def test_body_faults_answer_200_without_the_required_list(sim, kind):
    sim.awsconfig.add_conformance_pack("us-east-1", "Pack", RULES)
    sim.awsconfig.add_fault(Fault(kind))
    config = client(sim)

    scores = config.list_conformance_pack_compliance_scores()
    rules = config.describe_conformance_pack_compliance(ConformancePackName="Pack")

    assert scores["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert body(scores) == body(rules) == {}


def test_reset_fault_breaks_the_connection_mid_body(sim):
    sim.awsconfig.add_fault(Fault("reset"))

    with pytest.raises(ConnectionClosedError):
        client(sim).list_conformance_pack_compliance_scores()
    assert sim.requests()[0].status == 200


def test_regions_hold_separate_packs_and_requests_record_their_region(sim):
    sim.awsconfig.add_conformance_pack("us-east-1", "Virginia", RULES)
    sim.awsconfig.add_conformance_pack("eu-west-1", "Ireland", RULES)

    virginia = client(sim, "us-east-1").list_conformance_pack_compliance_scores()["ConformancePackComplianceScores"]
    ireland = client(sim, "eu-west-1").list_conformance_pack_compliance_scores()["ConformancePackComplianceScores"]

    assert [s["ConformancePackName"] for s in virginia] == ["Virginia"]
    assert [s["ConformancePackName"] for s in ireland] == ["Ireland"]
    assert [(r.region, r.access_key) for r in sim.requests()] == [("us-east-1", "testing"), ("eu-west-1", "testing")]
    assert sim.count("ListConformancePackComplianceScores", "eu-west-1") == 1


def raw_post(sim, target, payload):
    connection = http.client.HTTPConnection("127.0.0.1", int(sim.url.rsplit(":", 1)[1]), timeout=5)
    try:
        connection.request(
            "POST", "/", body=payload, headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"}
        )
        response = connection.getresponse()
        return response, json.loads(response.read())
    finally:
        connection.close()


def test_unknown_operations_and_bodies_that_are_not_json_objects_are_errors_in_json_1_1(sim):
    unknown, unknown_body = raw_post(sim, "StarlingDoveService.DeleteConformancePack", b"{}")
    other_service, _ = raw_post(sim, "DynamoDB_20120810.ListTables", b"{}")
    garbage, garbage_body = raw_post(sim, "StarlingDoveService.DescribeConformancePacks", b"[1, 2")

    assert (unknown.status, unknown_body["__type"]) == (400, "UnknownOperationException")
    assert unknown.getheader("Content-Type") == "application/x-amz-json-1.1"
    assert other_service.status == 400
    assert (garbage.status, garbage_body["__type"]) == (400, "SerializationException")
    assert [r.operation for r in sim.requests()] == ["UnknownConfigOperation"] * 2 + ["DescribeConformancePacks"]


def test_demo_holds_two_conformance_packs_whose_rules_change_from_day_to_day():
    now = [1000.0]
    sim = demo_simulator(start_time=0.0, day_seconds=100.0, clock=lambda: now[0])
    with sim:
        config = client(sim)
        days = []
        for day in range(6):
            now[0] = day * 100.0 + 50.0
            day_start = datetime.fromtimestamp(day * 100.0, UTC)
            scores = config.list_conformance_pack_compliance_scores()["ConformancePackComplianceScores"]
            rules = {
                s["ConformancePackName"]: config.describe_conformance_pack_compliance(
                    ConformancePackName=s["ConformancePackName"]
                )["ConformancePackRuleComplianceList"]
                for s in scores
            }
            days.append((scores, rules))
            assert {s["LastUpdatedTime"] for s in scores} == {day_start}
        eu = client(sim, "eu-west-1").list_conformance_pack_compliance_scores()["ConformancePackComplianceScores"]

    assert len(days[0][0]) == 2
    assert eu == []
    for scores, rules in days:
        for score in scores:
            assert 0.0 <= float(score["Score"]) <= 100.0
            assert len(rules[score["ConformancePackName"]]) >= 7
    assert len({tuple(s["Score"] for s in scores) for scores, _ in days}) > 1
    kinds = {item["ComplianceType"] for _, rules in days for items in rules.values() for item in items}
    assert {"COMPLIANT", "NON_COMPLIANT"} <= kinds


def test_every_demo_pack_has_a_noncompliant_rule_every_day():
    # The dashboard's noncompliant-rules table and the live dashboard test need one on any day.
    now = [0.0]
    sim = demo_simulator(start_time=0.0, day_seconds=100.0, clock=lambda: now[0])
    with sim:
        config = client(sim)
        for day in range(40):
            now[0] = day * 100.0 + 50.0
            for pack in sim.awsconfig.conformance_pack_names("us-east-1"):
                rules = config.describe_conformance_pack_compliance(ConformancePackName=pack)
                kinds = [item["ComplianceType"] for item in rules["ConformancePackRuleComplianceList"]]
                assert "NON_COMPLIANT" in kinds, (day, pack)
                assert "COMPLIANT" in kinds, (day, pack)
