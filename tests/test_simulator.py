"""The Audit Manager simulator, checked through a real boto3 client so it cannot drift from the AWS API."""

import contextlib
import http.client
import json
import re
import threading
import time
from datetime import UTC, datetime

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from exporter.simulator import (
    ERROR_STATUS,
    AccountInsights,
    ControlDomain,
    Fault,
    Insights,
    Simulator,
    demo_simulator,
)

NOW = 1_795_000_000.25
A = "0a1b2c3d-0000-4000-8000-00000000000a"
B = "0a1b2c3d-0000-4000-8000-00000000000b"
C = "0a1b2c3d-0000-4000-8000-00000000000c"
UNKNOWN = "0a1b2c3d-0000-4000-8000-0000000000ff"
T1 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
T2 = datetime(2026, 11, 24, 6, 30, 15, 123456, tzinfo=UTC)
FULL = Insights(7, 120, 15, 3, 61, T2)
SPARSE = Insights(None, 40, None, None, 20, T1)
MODEL = botocore.session.get_session().get_service_model("auditmanager")


@pytest.fixture
def sim():
    with Simulator(page_size=3, clock=lambda: NOW) as simulator:
        yield simulator


def client(sim, region="us-east-1", service="auditmanager", access_key="testing", **config):
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=sim.url,
        aws_access_key_id=access_key,
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, **config),
    )


def body(response):
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


def insights_dict(insights):
    fields = {
        "noncompliantEvidenceCount": insights.noncompliant_evidence,
        "compliantEvidenceCount": insights.compliant_evidence,
        "inconclusiveEvidenceCount": insights.inconclusive_evidence,
        "assessmentControlsCountByNoncompliantEvidence": insights.noncompliant_controls,
        "totalAssessmentControlsCount": insights.total_controls,
        "lastUpdated": insights.last_updated,
    }
    return {key: value for key, value in fields.items() if value is not None}


def domain_dict(domain):
    evidence = {
        "noncompliantEvidenceCount": domain.noncompliant_evidence,
        "compliantEvidenceCount": domain.compliant_evidence,
        "inconclusiveEvidenceCount": domain.inconclusive_evidence,
    }
    fields = {
        "name": domain.name,
        "id": domain.id,
        "controlsCountByNoncompliantEvidence": domain.noncompliant_controls,
        "totalControlsCount": domain.total_controls,
        "evidenceInsights": {key: value for key, value in evidence.items() if value is not None},
        "lastUpdated": domain.last_updated,
    }
    return {key: value for key, value in fields.items() if value is not None}


def error_of(call, **kwargs):
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def raw(sim):
    connection = http.client.HTTPConnection("127.0.0.1", int(sim.url.rsplit(":", 1)[1]), timeout=5)
    yield connection
    connection.close()


def raw_get(connection, path, authorization=None):
    connection.request("GET", path, headers={"Authorization": authorization} if authorization else {})
    response = connection.getresponse()
    return response, response.read()


@pytest.mark.parametrize("insights", [FULL, SPARSE], ids=["all-fields", "null-fields-omitted"])
def test_insights_by_assessment_parse_into_exactly_the_stored_values(sim, insights):
    sim.add_assessment("us-east-1", A, "Production", insights=insights)

    response = client(sim).get_insights_by_assessment(assessmentId=A)

    assert body(response) == {"insights": insights_dict(insights)}
    assert response["insights"]["lastUpdated"] == insights.last_updated


def test_assessment_without_insights_answers_an_empty_insights_object(sim):
    sim.add_assessment("us-east-1", A, "New")
    sim.add_assessment("us-east-1", B, "Had some", insights=FULL)
    sim.set_insights("us-east-1", B, None)

    am = client(sim)

    assert body(am.get_insights_by_assessment(assessmentId=A)) == {"insights": {}}
    assert body(am.get_insights_by_assessment(assessmentId=B)) == {"insights": {}}


def test_account_insights_sum_the_active_assessments_of_the_region(sim):
    sim.add_assessment("us-east-1", A, "Full", insights=FULL)
    sim.add_assessment("us-east-1", B, "Sparse", insights=SPARSE)
    sim.add_assessment("us-east-1", C, "Closed", status="INACTIVE", insights=Insights(1000, 1000, 1000, 1, 1, T2))
    sim.add_assessment("eu-west-1", A, "Elsewhere", insights=Insights(500, 500, 500, 5, 5, T2))

    assert body(client(sim).get_insights()) == {
        "insights": {
            "activeAssessmentsCount": 2,
            "noncompliantEvidenceCount": 7,
            "compliantEvidenceCount": 160,
            "inconclusiveEvidenceCount": 15,
            "assessmentControlsCountByNoncompliantEvidence": 3,
            "totalAssessmentControlsCount": 81,
            "lastUpdated": T2,
        }
    }


def test_account_insights_omit_counts_no_assessment_has(sim):
    sim.add_assessment("us-east-1", A, "Sparse", insights=SPARSE)
    sim.add_assessment("us-east-1", B, "New")

    assert body(client(sim).get_insights()) == {
        "insights": {
            "activeAssessmentsCount": 2,
            "compliantEvidenceCount": 40,
            "totalAssessmentControlsCount": 20,
            "lastUpdated": T1,
        }
    }
    assert body(client(sim, "ap-south-1").get_insights()) == {"insights": {"activeAssessmentsCount": 0}}


def test_account_insights_override_is_answered_until_cleared(sim):
    sim.add_assessment("us-east-1", A, "Full", insights=FULL)
    am = client(sim)

    sim.set_account_insights("us-east-1", AccountInsights(9, 1, None, 3, 4, 5, T1))
    overridden = body(am.get_insights())
    sim.set_account_insights("us-east-1", None)

    assert overridden == {
        "insights": {
            "activeAssessmentsCount": 9,
            "noncompliantEvidenceCount": 1,
            "inconclusiveEvidenceCount": 3,
            "assessmentControlsCountByNoncompliantEvidence": 4,
            "totalAssessmentControlsCount": 5,
            "lastUpdated": T1,
        }
    }
    assert am.get_insights()["insights"]["activeAssessmentsCount"] == 1


def test_list_assessments_pages_through_a_status_filter_in_a_stable_order(sim):
    ids = [f"0a1b2c3d-0000-4000-8000-00000000010{n}" for n in range(7)]
    statuses = ["ACTIVE", "INACTIVE", "ACTIVE", "ACTIVE", "INACTIVE", "ACTIVE", "ACTIVE"]
    for n, (assessment_id, status) in enumerate(zip(ids, statuses, strict=True)):
        sim.add_assessment("us-east-1", assessment_id, f"Assessment {n}", status=status, compliance_type=f"Type {n}")
    am = client(sim)

    pages, token = [], None
    while True:
        response = am.list_assessments(status="ACTIVE", maxResults=2, **({"nextToken": token} if token else {}))
        pages.append(response["assessmentMetadata"])
        token = response.get("nextToken")
        if token is None:
            break

    created = datetime.fromtimestamp(NOW, UTC)
    expected = [
        {
            "name": f"Assessment {n}",
            "id": ids[n],
            "complianceType": f"Type {n}",
            "status": "ACTIVE",
            "creationTime": created,
            "lastUpdated": created,
            "roles": [],
            "delegations": [],
        }
        for n in (0, 2, 3, 5, 6)
    ]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [item for page in pages for item in page] == expected
    assert [a["id"] for a in am.list_assessments(status="INACTIVE")["assessmentMetadata"]] == [ids[1], ids[4]]


def test_list_assessments_uses_the_default_page_size_and_omits_the_token_on_the_last_page(sim):
    for n in range(4):
        sim.add_assessment("us-east-1", f"0a1b2c3d-0000-4000-8000-00000000020{n}", f"A{n}")
    am = client(sim)

    first = am.list_assessments()
    last = am.list_assessments(nextToken=first["nextToken"])

    assert len(first["assessmentMetadata"]) == 3
    assert [a["name"] for a in last["assessmentMetadata"]] == ["A3"]
    assert "nextToken" not in last
    assert "nextToken" not in am.list_assessments(maxResults=4)


def test_get_assessment_describes_account_metadata_and_framework(sim):
    sim.add_assessment(
        "eu-west-1", A, 'Prod "PCI", Zürich', framework="PCI DSS V4.0", compliance_type="PCI DSS", insights=FULL
    )

    assessment = client(sim, "eu-west-1").get_assessment(assessmentId=A)["assessment"]

    framework = assessment.pop("framework")
    account = {"id": "123456789012", "name": "Account 123456789012", "emailAddress": "aws+123456789012@example.com"}
    created = datetime.fromtimestamp(NOW, UTC)
    assert assessment == {
        "arn": f"arn:aws:auditmanager:eu-west-1:123456789012:assessment/{A}",
        "tags": {},
        "awsAccount": account,
        "metadata": {
            "name": 'Prod "PCI", Zürich',
            "id": A,
            "complianceType": "PCI DSS",
            "status": "ACTIVE",
            "scope": {"awsAccounts": [account], "awsServices": []},
            "roles": [],
            "delegations": [],
            "creationTime": created,
            "lastUpdated": created,
        },
    }
    assert framework == {
        "id": framework["id"],
        "arn": f"arn:aws:auditmanager:eu-west-1:123456789012:assessmentFramework/{framework['id']}",
        "metadata": {"name": "PCI DSS V4.0", "complianceType": "PCI DSS"},
        "controlSets": [],
    }
    assert len(framework["id"]) == 36


def model_problems(shape, value, path="$"):
    """Where `value`, as botocore parsed it, breaks `shape`'s constraints: required members, enums, lengths,
    string patterns, list and map sizes. Parsing alone checks none of them."""
    problems = []
    metadata = shape.metadata
    if shape.type_name == "structure":
        problems += [f"{path}.{name}: required" for name in shape.required_members if name not in value]
        for name, member in value.items():
            if name not in shape.members:
                problems.append(f"{path}.{name}: not in the model")
            else:
                problems += model_problems(shape.members[name], member, f"{path}.{name}")
    elif shape.type_name == "list":
        for index, item in enumerate(value):
            problems += model_problems(shape.member, item, f"{path}[{index}]")
    elif shape.type_name == "map":
        for key, item in value.items():
            problems += model_problems(shape.key, key, f"{path}<key>")
            problems += model_problems(shape.value, item, f"{path}[{key}]")
    elif shape.type_name == "string":
        if "enum" in metadata and value not in metadata["enum"]:
            problems.append(f"{path}: {value!r} not in {metadata['enum']}")
        if "pattern" in metadata and not re.search(metadata["pattern"], value):
            problems.append(f"{path}: {value!r} does not match {metadata['pattern']}")
    sized = shape.type_name in ("string", "list", "map")
    if sized and not metadata.get("min", 0) <= len(value) <= metadata.get("max", len(value)):
        problems.append(f"{path}: length {len(value)} outside [{metadata.get('min')}, {metadata.get('max')}]")
    return problems


def test_model_problems_finds_broken_constraints():
    shape = MODEL.operation_model("GetAssessment").output_shape
    broken = {
        "assessment": {
            "arn": "arn:aws:s3:::bucket-name",
            "framework": {"controlSets": [{"status": "DONE", "controls": [{"id": "short"}]}]},
            "tags": {"aws:reserved": "x"},
            "surprise": 1,
        }
    }

    assert sorted(model_problems(shape, broken)) == sorted(
        [
            "$.assessment.arn: 'arn:aws:s3:::bucket-name' does not match ^arn:.*:auditmanager:.*",
            "$.assessment.framework.controlSets[0].status: 'DONE' not in ['ACTIVE', 'UNDER_REVIEW', 'REVIEWED']",
            "$.assessment.framework.controlSets[0].controls[0].id: 'short' does not match "
            + MODEL.shape_for("UUID").metadata["pattern"],
            "$.assessment.framework.controlSets[0].controls[0].id: length 5 outside [36, 36]",
            "$.assessment.tags<key>: 'aws:reserved' does not match " + MODEL.shape_for("TagKey").metadata["pattern"],
            "$.assessment.surprise: not in the model",
        ]
    )


def test_get_assessment_carries_a_real_sized_framework_that_fits_botocores_model(raw):
    with Simulator(framework_controls=1000, clock=lambda: NOW) as sim:
        sim.add_assessment("us-east-1", A, "NIST", framework="NIST SP 800-53 Rev 5", tags={"team": "security"})
        sim.add_assessment("us-east-1", B, "Small", framework_controls=61)
        am = client(sim)

        answer = am.get_assessment(assessmentId=A)
        small = am.get_assessment(assessmentId=B)["assessment"]["framework"]["controlSets"]
        connection = http.client.HTTPConnection("127.0.0.1", int(sim.url.rsplit(":", 1)[1]), timeout=5)
        _, raw_body = raw_get(connection, f"/assessments/{A}")
        connection.close()

    assert model_problems(MODEL.operation_model("GetAssessment").output_shape, body(answer)) == []
    sets = answer["assessment"]["framework"]["controlSets"]
    controls = [control for control_set in sets for control in control_set["controls"]]
    assert (len(sets), len(controls), len({c["id"] for c in controls})) == (20, 1000, 1000)
    assert all(c["description"] and c["evidenceSources"] and "evidenceCount" in c for c in controls)
    assert sum(s["systemEvidenceCount"] + s["manualEvidenceCount"] for s in sets) == sum(
        c["evidenceCount"] for c in controls
    )
    assert 700_000 <= len(raw_body) <= 900_000
    assert sum(len(s["controls"]) for s in small) == 61


def test_tags_are_served_by_get_assessment_and_list_tags_for_resource_and_can_change(sim):
    sim.add_assessment("eu-west-1", A, "Production", tags={"team": "payments", "cost-center": "cc-2040"})
    sim.add_assessment("eu-west-1", B, "Untagged")
    am = client(sim, "eu-west-1")
    arn = am.get_assessment(assessmentId=A)["assessment"]["arn"]

    first = am.list_tags_for_resource(resourceArn=arn)
    before = am.get_assessment(assessmentId=A)["assessment"]["tags"]
    sim.set_tags("eu-west-1", A, {"team": "platform"})
    after = am.list_tags_for_resource(resourceArn=arn)["tags"]
    untagged = am.list_tags_for_resource(resourceArn=arn.replace(A, B))["tags"]

    assert model_problems(MODEL.operation_model("ListTagsForResource").output_shape, body(first)) == []
    assert first["tags"] == before == {"team": "payments", "cost-center": "cc-2040"}
    assert after == am.get_assessment(assessmentId=A)["assessment"]["tags"] == {"team": "platform"}
    assert untagged == {}
    records = sim.requests("ListTagsForResource")
    assert [(r.region, r.assessment_id, r.status) for r in records] == [("eu-west-1", A, 200)] * 2 + [
        ("eu-west-1", B, 200)
    ]


@pytest.mark.parametrize(
    ("resource_arn", "error"),
    [
        (f"arn:aws:auditmanager:us-east-1:123456789012:assessment/{UNKNOWN}", ("ResourceNotFoundException", 404)),
        (f"arn:aws:auditmanager:eu-west-1:123456789012:assessment/{A}", ("ResourceNotFoundException", 404)),
        (f"arn:aws:auditmanager:us-east-1:210987654321:assessment/{A}", ("ResourceNotFoundException", 404)),
        (f"arn:aws:auditmanager:us-east-1:123456789012:assessmentFramework/{A}", ("ResourceNotFoundException", 404)),
        ("arn:aws:s3:::a-bucket-of-evidence", ("ValidationException", 400)),
    ],
    ids=["unknown", "other-region", "other-account", "not-an-assessment", "not-audit-manager"],
)
def test_list_tags_for_resource_finds_only_assessments_of_its_account_and_region(sim, resource_arn, error):
    sim.add_assessment("us-east-1", A, "Production", tags={"team": "payments"})

    assert error_of(client(sim).list_tags_for_resource, resourceArn=resource_arn) == error


def test_tags_aws_would_refuse_are_refused(sim):
    with pytest.raises(ValueError, match="tag key"):
        sim.add_assessment("us-east-1", A, "Production", tags={"aws:createdBy": "me"})
    with pytest.raises(ValueError, match="at most 50"):
        sim.add_assessment("us-east-1", A, "Production", tags={f"k{i}": "v" for i in range(51)})
    sim.add_assessment("us-east-1", A, "Production")
    with pytest.raises(ValueError, match="longer than 256"):
        sim.set_tags("us-east-1", A, {"team": "x" * 257})


def test_get_assessment_uses_the_simulators_account(sim):
    with Simulator("210987654321") as other:
        other.add_assessment("us-east-1", A, "Other account")

        assessment = client(other).get_assessment(assessmentId=A)["assessment"]

    assert assessment["awsAccount"]["id"] == "210987654321"
    assert assessment["arn"] == f"arn:aws:auditmanager:us-east-1:210987654321:assessment/{A}"


def test_accounts_on_one_endpoint_answer_the_requests_signed_with_their_access_key(sim):
    sim.add_assessment("us-east-1", A, "Default account")
    sim.add_account("alpha", "111111111111").add_assessment("us-east-1", B, "Alpha")
    sim.add_account("beta", "222222222222").add_assessment("us-east-1", C, "Beta")
    seen = {
        "alpha": ("111111111111", B),
        "beta": ("222222222222", C),
        "unknown": ("123456789012", A),
    }

    for access_key, (account_id, assessment_id) in seen.items():
        am = client(sim, access_key=access_key)
        assert [a["id"] for a in am.list_assessments()["assessmentMetadata"]] == [assessment_id]
        assessment = am.get_assessment(assessmentId=assessment_id)["assessment"]
        assert assessment["awsAccount"]["id"] == account_id
        assert assessment["metadata"]["scope"]["awsAccounts"][0]["id"] == account_id
        assert assessment["arn"] == f"arn:aws:auditmanager:us-east-1:{account_id}:assessment/{assessment_id}"
    alpha = client(sim, access_key="alpha")
    assert error_of(alpha.get_assessment, assessmentId=C) == ("ResourceNotFoundException", 404)

    assert sim.count() == 7
    assert sim.count("GetAssessment") == 4
    assert [r.access_key for r in sim.requests("ListAssessments")] == ["alpha", "beta", "unknown"]


def test_aws_config_and_security_hub_requests_go_to_the_account_of_their_access_key_too(sim):
    alpha = sim.add_account("alpha", "111111111111")
    alpha.awsconfig.add_conformance_pack("us-east-1", "Alpha-Pack", {"rule": "COMPLIANT"})
    alpha.securityhub.enable_hub("us-east-1")

    packs = client(sim, service="config", access_key="alpha").describe_conformance_packs()["ConformancePackDetails"]
    hub = client(sim, service="securityhub", access_key="alpha").describe_hub()

    assert [p["ConformancePackArn"].split(":")[4] for p in packs] == ["111111111111"]
    assert hub["HubArn"] == "arn:aws:securityhub:us-east-1:111111111111:hub/default"
    assert client(sim, service="config").describe_conformance_packs()["ConformancePackDetails"] == []
    assert error_of(client(sim, service="securityhub").describe_hub) == ("InvalidAccessException", 401)
    assert [r.access_key for r in sim.requests()] == ["alpha", "alpha", "testing", "testing"]


def test_an_access_key_has_one_account(sim):
    sim.add_account("alpha", "111111111111")
    with pytest.raises(ValueError, match="alpha"):
        sim.add_account("alpha", "222222222222")


def test_control_domains_page_with_max_results_smaller_than_the_data(sim):
    domains = [
        ControlDomain(
            f"arn:aws:controlcatalog:::domain/D{n}", f"Domain {n}", n, 10 * n, None if n % 2 else n, n, 5 + n, T2
        )
        for n in range(5)
    ] + [ControlDomain("UNCATEGORIZED", "Uncategorized", None, None, None, None, None, T1)]
    sim.add_assessment("us-east-1", A, "With domains", control_domains=domains)
    am = client(sim)

    pages, token = [], None
    while True:
        response = am.list_control_domain_insights_by_assessment(
            assessmentId=A, maxResults=4, **({"nextToken": token} if token else {})
        )
        pages.append(response["controlDomainInsights"])
        token = response.get("nextToken")
        if token is None:
            break

    assert [len(page) for page in pages] == [4, 2]
    assert [item for page in pages for item in page] == [domain_dict(d) for d in domains]
    assert pages[1][1] == {"name": "Uncategorized", "id": "UNCATEGORIZED", "evidenceInsights": {}, "lastUpdated": T1}


def test_set_status_moves_an_assessment_between_filters_and_remove_deletes_it(sim):
    sim.add_assessment("us-east-1", A, "Soon inactive")
    sim.add_assessment("us-east-1", B, "Soon gone")
    am = client(sim)

    sim.set_status("us-east-1", A, "INACTIVE")
    sim.remove_assessment("us-east-1", B)

    assert [a["id"] for a in am.list_assessments(status="INACTIVE")["assessmentMetadata"]] == [A]
    assert am.list_assessments(status="ACTIVE")["assessmentMetadata"] == []
    assert sim.assessment_ids("us-east-1") == [A]
    assert sim.assessment_ids("eu-west-1") == []
    assert error_of(am.get_assessment, assessmentId=B) == ("ResourceNotFoundException", 404)


def test_regions_hold_separate_data(sim):
    sim.add_assessment("us-east-1", A, "Virginia", insights=FULL)
    sim.add_assessment("eu-west-1", B, "Ireland", insights=SPARSE)
    virginia, ireland = client(sim, "us-east-1"), client(sim, "eu-west-1")

    assert [a["name"] for a in virginia.list_assessments()["assessmentMetadata"]] == ["Virginia"]
    assert [a["name"] for a in ireland.list_assessments()["assessmentMetadata"]] == ["Ireland"]
    assert ireland.get_insights_by_assessment(assessmentId=B)["insights"] == insights_dict(SPARSE)
    assert error_of(ireland.get_insights_by_assessment, assessmentId=A) == ("ResourceNotFoundException", 404)
    assert [r.region for r in sim.requests()] == ["us-east-1", "eu-west-1", "eu-west-1", "eu-west-1"]


def test_requests_without_a_signature_go_to_us_east_1(sim, raw):
    sim.add_assessment("us-east-1", A, "Virginia", insights=FULL)

    response, data = raw_get(raw, "/insights")

    assert response.status == 200
    assert json.loads(data)["insights"]["activeAssessmentsCount"] == 1
    assert sim.requests()[0].region == "us-east-1"


def test_error_codes_carry_the_status_botocores_model_declares():
    assert {code: MODEL.shape_for(code).metadata["error"]["httpStatusCode"] for code in ERROR_STATUS} == ERROR_STATUS


@pytest.mark.parametrize(
    "code",
    [
        "ThrottlingException",
        "InternalServerException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ValidationException",
        "ServiceQuotaExceededException",
    ],
)
def test_injected_errors_reach_the_client_with_their_code_and_status(sim, code):
    sim.add_assessment("us-east-1", A, "Production", insights=FULL)
    sim.add_fault(Fault("error", code=code))

    assert error_of(client(sim).get_insights_by_assessment, assessmentId=A) == (code, ERROR_STATUS[code])
    assert sim.requests()[0].status == ERROR_STATUS[code]


@pytest.mark.parametrize(
    ("operation", "kwargs"),
    [
        ("get_insights_by_assessment", {"assessmentId": "ZZZZZZZZ-0000-4000-8000-00000000000a"}),
        ("get_assessment", {"assessmentId": "0A1B2C3D-0000-4000-8000-00000000000A"}),
        ("list_control_domain_insights_by_assessment", {"assessmentId": "not-a-uuid-but-long-enough-to-pass-botocore"}),
        ("list_assessments", {"status": "PAUSED"}),
        ("list_assessments", {"maxResults": 1001}),
        ("list_assessments", {"nextToken": "garbage"}),
        ("list_control_domain_insights_by_assessment", {"assessmentId": A, "nextToken": "MFSGS==="}),
    ],
)
def test_invalid_parameters_are_a_validation_exception(sim, operation, kwargs):
    sim.add_assessment("us-east-1", A, "Production")

    assert error_of(getattr(client(sim), operation), **kwargs) == ("ValidationException", 400)


@pytest.mark.parametrize(
    "operation", ["get_insights_by_assessment", "get_assessment", "list_control_domain_insights_by_assessment"]
)
def test_unknown_assessment_is_resource_not_found(sim, operation):
    with pytest.raises(ClientError) as caught:
        getattr(client(sim), operation)(assessmentId=UNKNOWN)

    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert caught.value.response["resourceId"] == UNKNOWN


def test_responses_are_json_with_length_and_request_id_on_one_kept_alive_connection(sim, raw):
    sim.add_assessment("us-east-1", A, "Production", insights=FULL)
    auth = "AWS4-HMAC-SHA256 Credential=AKID/20261124/us-east-1/auditmanager/aws4_request, Signature=0"

    answers = [raw_get(raw, "/nowhere", auth)]
    first_socket = raw.sock
    answers += [raw_get(raw, path, auth) for path in ("/insights/assessments/bad", f"/assessments/{A}", "/insights")]

    assert [response.status for response, _ in answers] == [404, 400, 200, 200]
    for response, data in answers:
        assert response.getheader("Content-Type") == "application/json"
        assert int(response.getheader("Content-Length")) == len(data)
        assert response.getheader("x-amzn-RequestId")
        assert not response.will_close
        assert isinstance(json.loads(data), dict)
    assert [response.getheader("x-amzn-ErrorType") for response, _ in answers] == [
        "UnknownOperationException",
        "ValidationException",
        None,
        None,
    ]
    assert "message" in json.loads(answers[0][1])
    assert raw.sock is first_socket
    assert [r.operation for r in sim.requests()] == [
        "UnknownOperation",
        "GetInsightsByAssessment",
        "GetAssessment",
        "GetInsights",
    ]


def test_unknown_routes_and_methods_are_json_404s(sim, raw):
    raw.request("POST", "/insights", body=b'{"ignored": true}')
    post = raw.getresponse()
    post_body = json.loads(post.read())
    get = raw_get(raw, "/insights/assessments")[0]

    assert (post.status, post.getheader("x-amzn-ErrorType")) == (404, "UnknownOperationException")
    assert "message" in post_body
    assert get.status == 404


def test_reset_fault_breaks_the_connection_mid_body(sim):
    sim.add_assessment("us-east-1", A, "Production", insights=FULL)
    sim.add_fault(Fault("reset"))

    with pytest.raises(ConnectionClosedError):
        client(sim).get_insights_by_assessment(assessmentId=A)
    assert sim.requests()[0].status == 200


@pytest.mark.parametrize("kind", ["malformed_json", "empty_body", "no_insights"])
def test_body_faults_answer_200_without_insights(sim, kind):
    sim.add_assessment("us-east-1", A, "Production", insights=FULL)
    sim.add_fault(Fault(kind))
    am = client(sim)

    by_assessment = am.get_insights_by_assessment(assessmentId=A)
    account = am.get_insights()

    assert by_assessment["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "insights" not in by_assessment
    assert "insights" not in account
    assert [r.status for r in sim.requests()] == [200, 200]


def test_a_body_fault_serves_its_bytes_verbatim_to_the_operation_it_names(sim):
    sim.add_assessment("us-east-1", A, "Production", insights=FULL)
    raw = b'{"insights": {"noncompliantEvidenceCount": 1.5, "lastUpdated": "soon"}}'
    sim.add_fault(Fault("body", operation="GetInsightsByAssessment", body=raw))

    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", int(sim.url.rsplit(":", 1)[1]))) as connection:
        faulted, faulted_body = raw_get(connection, f"/insights/assessments/{A}")
        normal, normal_body = raw_get(connection, "/insights")

    assert (faulted.status, faulted_body) == (200, raw)
    assert normal.status == 200
    assert json.loads(normal_body)["insights"]["noncompliantEvidenceCount"] == FULL.noncompliant_evidence


def test_latency_fault_beyond_the_read_timeout_is_a_read_timeout(sim):
    sim.add_assessment("us-east-1", A, "Production", insights=FULL)
    sim.add_fault(Fault("latency", seconds=1.0, operation="GetInsightsByAssessment"))
    am = client(sim, read_timeout=0.2)

    with pytest.raises(ReadTimeoutError):
        am.get_insights_by_assessment(assessmentId=A)
    assert am.get_insights()["insights"]["activeAssessmentsCount"] == 1


def test_refused_connections_are_an_endpoint_error_until_accepted_again(sim):
    sim.add_assessment("us-east-1", A, "Production", insights=FULL)
    am = client(sim)
    am.get_insights()
    url = sim.url

    sim.refuse_connections()
    with pytest.raises(EndpointConnectionError):
        am.get_insights()
    sim.accept_connections()

    assert am.get_insights_by_assessment(assessmentId=A)["insights"] == insights_dict(FULL)
    assert sim.url == url


def test_throttling_answers_429_only_above_the_rate(sim):
    sim.add_assessment("us-east-1", A, "Production", insights=FULL)
    sim.add_fault(Fault("throttle_above_rate", rate=5, operation="GetInsightsByAssessment"))
    sim.add_fault(Fault("throttle_above_rate", rate=50, operation="GetInsights"))
    am = client(sim)

    codes = []
    for _ in range(12):
        try:
            am.get_insights_by_assessment(assessmentId=A)
            codes.append("OK")
        except ClientError as error:
            codes.append(error.response["Error"]["Code"])
    for _ in range(12):
        am.get_insights()

    assert codes == ["OK"] * 5 + ["ThrottlingException"] * 7
    assert [r.status for r in sim.requests("GetInsightsByAssessment")] == [200] * 5 + [429] * 7
    assert {r.status for r in sim.requests("GetInsights")} == {200}


def test_throttling_counts_each_region_separately(sim):
    sim.add_fault(Fault("throttle_above_rate", rate=2))

    for region in ("us-east-1", "eu-west-1"):
        am = client(sim, region)
        for _ in range(3):
            with contextlib.suppress(ClientError):
                am.list_assessments()

    assert [r.status for r in sim.requests()] == [200, 200, 429, 200, 200, 429]


def test_faults_for_one_assessment_leave_the_others_alone(sim):
    sim.add_assessment(
        "us-east-1",
        A,
        "Faulty",
        insights=FULL,
        control_domains=[ControlDomain("UNCATEGORIZED", "U", 1, 1, 1, 1, 1, T1)],
    )
    sim.add_assessment("us-east-1", B, "Healthy", insights=SPARSE)
    sim.add_fault(Fault("error", code="AccessDeniedException", assessment_id=A))
    am = client(sim)

    assert error_of(am.get_insights_by_assessment, assessmentId=A) == ("AccessDeniedException", 403)
    assert error_of(am.get_assessment, assessmentId=A) == ("AccessDeniedException", 403)
    assert error_of(am.list_control_domain_insights_by_assessment, assessmentId=A) == ("AccessDeniedException", 403)
    arn = "arn:aws:auditmanager:us-east-1:123456789012:assessment/"
    assert error_of(am.list_tags_for_resource, resourceArn=arn + A) == ("AccessDeniedException", 403)
    assert body(am.list_tags_for_resource(resourceArn=arn + B)) == {"tags": {}}
    assert am.get_insights_by_assessment(assessmentId=B)["insights"] == insights_dict(SPARSE)
    assert len(am.list_assessments()["assessmentMetadata"]) == 2
    assert am.get_insights()["insights"]["activeAssessmentsCount"] == 2


def test_first_added_fault_wins_and_clear_faults_restores_normal_answers(sim):
    sim.add_assessment("us-east-1", A, "Production", insights=FULL)
    sim.add_fault(Fault("error", code="InternalServerException", operation="GetInsightsByAssessment"))
    sim.add_fault(Fault("error", code="AccessDeniedException"))
    am = client(sim)

    first = error_of(am.get_insights_by_assessment, assessmentId=A)
    other_operation = error_of(am.get_insights)
    sim.clear_faults()

    assert (first, other_operation) == (("InternalServerException", 500), ("AccessDeniedException", 403))
    assert am.get_insights_by_assessment(assessmentId=A)["insights"] == insights_dict(FULL)


def test_faults_reject_unknown_kinds_and_codes():
    with pytest.raises(ValueError, match="kind"):
        Fault("explode")
    with pytest.raises(ValueError, match="code"):
        Fault("error", code="TeapotException")


def test_stats_count_by_operation_and_region_and_find_the_busiest_window(sim):
    sim.add_assessment("us-east-1", A, "Production", insights=FULL)
    virginia, ireland = client(sim, "us-east-1"), client(sim, "eu-west-1")

    for _ in range(3):
        virginia.get_insights_by_assessment(assessmentId=A)
    time.sleep(0.5)
    virginia.get_insights()
    ireland.get_insights()

    assert sim.count() == 5
    assert sim.count("GetInsightsByAssessment") == 3
    assert sim.count(region="eu-west-1") == 1
    assert sim.count("GetInsights", "us-east-1") == 1
    assert sim.max_requests_in_window(0.45) == 3
    assert sim.max_requests_in_window(0.45, operation="GetInsights") == 2
    assert sim.max_requests_in_window(0.45, region="us-east-1", operation="GetInsights") == 1
    assert sim.max_requests_in_window(5.0) == 5
    records = sim.requests()
    assert [r.at for r in records] == sorted(r.at for r in records)
    assert records[0].assessment_id == A
    assert records[3].assessment_id is None
    sim.reset_stats()
    assert sim.count() == 0
    assert sim.max_requests_in_window() == 0


def test_latency_delays_every_answer_without_serialising_concurrent_requests(sim):
    sim.add_assessment("us-east-1", A, "Production", insights=FULL)
    am = client(sim, max_pool_connections=16)
    sim.latency = 0.1
    failures = []

    def calls():
        for _ in range(3):
            try:
                am.get_insights_by_assessment(assessmentId=A)
            except Exception as error:
                failures.append(error)

    threads = [threading.Thread(target=calls) for _ in range(16)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started

    assert failures == []
    # Each of a thread's 3 calls waits 0.1 s; serialised answers would also leave at most one arrival per 0.1 s.
    assert elapsed >= 0.3
    assert sim.count() == 48
    assert sim.max_requests_in_window(0.1) >= 2


class FakeClock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


DAY = 100.0
ORIGIN = 1_800_000_000.0


def demo_insights(demo):
    by_name = {}
    for region in ("us-east-1", "eu-west-1"):
        am = client(demo, region)
        for assessment in am.list_assessments()["assessmentMetadata"]:
            by_name[assessment["name"]] = am.get_insights_by_assessment(assessmentId=assessment["id"])["insights"]
    return by_name


def test_demo_holds_realistic_assessments_in_two_regions():
    with demo_simulator(clock=FakeClock(ORIGIN + 1234.5)) as demo:
        virginia, ireland = client(demo, "us-east-1"), client(demo, "eu-west-1")
        east = virginia.list_assessments()["assessmentMetadata"]
        west = ireland.list_assessments()["assessmentMetadata"]
        domains = ireland.list_control_domain_insights_by_assessment(assessmentId=west[0]["id"])
        account = virginia.get_insights()["insights"]
        insights = demo_insights(demo)
        answers = [
            am.get_assessment(assessmentId=a["id"])["assessment"]
            for am, listed in ((virginia, east), (ireland, west))
            for a in listed
        ]
        described = {a["metadata"]["name"]: a["tags"] for a in answers}
        frameworks = {a["metadata"]["name"]: a["framework"]["controlSets"] for a in answers}

    assert 5 <= len(east) <= 6
    assert 1 <= len(west) <= 2
    assert {"ACTIVE", "INACTIVE"} == {a["status"] for a in east}
    assert any('"' in a["name"] and "," in a["name"] and not a["name"].isascii() for a in east + west)
    assert [d["name"] for d in domains["controlDomainInsights"]] == [
        "Identity and access management",
        "Logging and monitoring",
        "Data protection",
    ]
    assert account["activeAssessmentsCount"] == sum(a["status"] == "ACTIVE" for a in east)
    assert len(insights) == len(east) + len(west)
    assert demo.assessment_ids("eu-west-1") == [a["id"] for a in west]
    assert {frozenset(tags) for tags in described.values()} == {frozenset({"team", "cost-center", "environment"})}
    sizes = {name: sum(len(s["controls"]) for s in framework) for name, framework in frameworks.items()}
    assert sizes["SOC 2 Type II - Production"] == 61
    assert sizes["NIST 800-53 - Shared services"] > 1000
    for values in insights.values():
        assert values["lastUpdated"] == datetime.fromtimestamp(ORIGIN + 1200, UTC)
        assert 0 < values["noncompliantEvidenceCount"] < values["compliantEvidenceCount"]
        assert values["assessmentControlsCountByNoncompliantEvidence"] <= values["totalAssessmentControlsCount"]


def test_demo_counts_rise_through_the_day_and_drop_at_the_rollover():
    clock = FakeClock(ORIGIN + 7 * DAY + 10)
    with demo_simulator(start_time=ORIGIN, day_seconds=DAY, clock=clock) as demo:
        morning = demo_insights(demo)
        clock.now = ORIGIN + 7 * DAY + 90
        evening = demo_insights(demo)
        clock.now = ORIGIN + 8 * DAY + 5
        next_morning = demo_insights(demo)

    for name, late in evening.items():
        early, after = morning[name], next_morning[name]
        for key in ("noncompliantEvidenceCount", "compliantEvidenceCount", "inconclusiveEvidenceCount"):
            assert early[key] < late[key], (name, key)
            assert after[key] < late[key], (name, key)
        assert early["lastUpdated"] == late["lastUpdated"] == datetime.fromtimestamp(ORIGIN + 7 * DAY, UTC)
        assert after["lastUpdated"] == datetime.fromtimestamp(ORIGIN + 8 * DAY, UTC)
        assert late["assessmentControlsCountByNoncompliantEvidence"] <= late["totalAssessmentControlsCount"]


def test_demo_occasionally_spikes_noncompliant_evidence():
    clock = FakeClock(0.0)
    with demo_simulator(start_time=ORIGIN, day_seconds=DAY, clock=clock) as demo:
        am = client(demo)
        ids = [a["id"] for a in am.list_assessments()["assessmentMetadata"]]
        ratios = {assessment_id: [] for assessment_id in ids}
        for day in range(30):
            clock.now = ORIGIN + day * DAY + 50
            for assessment_id in ids:
                insights = am.get_insights_by_assessment(assessmentId=assessment_id)["insights"]
                ratios[assessment_id].append(insights["noncompliantEvidenceCount"] / insights["compliantEvidenceCount"])

    spikes = 0
    for daily in ratios.values():
        ordinary = sorted(daily)[len(daily) // 2]
        spikes += sum(ratio > 2.5 * ordinary for ratio in daily)
    assert 2 <= spikes <= 15
