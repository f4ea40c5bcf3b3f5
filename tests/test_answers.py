"""AWS answers held to botocore's service model: each row of issue 15's table is rejected by the real exporter,
the rules come from the model (so new fields are covered), and every checked operation names the bad field."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.model import ServiceModel

from exporter.answers import AnswerRules, MalformedAnswer, check_answer
from exporter.aws import AUDIT_MANAGER_ANSWERS, MALFORMED, AuditManagerClient, AwsError
from exporter.config import parse
from exporter.simulator import Fault, Simulator
from exporter.snapshot import ApiCounters
from tests.conftest import Samples, eventually, insights, sample, uuid

REGION = "us-east-1"
MODEL = botocore.session.get_session().get_service_model("auditmanager")
LAUNCH = AUDIT_MANAGER_ANSWERS.launched.timestamp()
UPDATED = datetime(2026, 11, 23, tzinfo=UTC).timestamp()
GOOD = {
    "noncompliantEvidenceCount": 11,
    "compliantEvidenceCount": 111,
    "inconclusiveEvidenceCount": 12,
    "assessmentControlsCountByNoncompliantEvidence": 13,
    "totalAssessmentControlsCount": 140,
    "lastUpdated": UPDATED,
}
FIFTY_YEARS = 50 * 365.25 * 86_400
# Issue 15's table, plus the two cases it found handled, as (what, field, value).
ROWS = [
    ("float count", "noncompliantEvidenceCount", 1.5),
    ("string count", "noncompliantEvidenceCount", "7"),
    ("boolean count", "noncompliantEvidenceCount", True),
    ("count of 2**70", "noncompliantEvidenceCount", 2**70),
    ("lastUpdated 50 years ahead", "lastUpdated", time.time() + FIFTY_YEARS),
    ("lastUpdated -1", "lastUpdated", -1),
    ("negative count", "totalAssessmentControlsCount", -1),
    ("string lastUpdated", "lastUpdated", "yesterday"),
]


def body(insights_json: dict[str, Any]) -> bytes:
    return json.dumps({"insights": insights_json}).encode()


def rejected(operation: str, payload: bytes, rules: AnswerRules = AUDIT_MANAGER_ANSWERS) -> MalformedAnswer:
    with pytest.raises(MalformedAnswer) as caught:
        check_answer(MODEL.operation_model(operation), payload, rules)
    return caught.value


@pytest.mark.parametrize(("what", "key", "value"), ROWS, ids=[row[0] for row in ROWS])
def test_each_bad_value_is_rejected_naming_its_field(what, key, value):
    error = rejected("GetInsightsByAssessment", body(GOOD | {key: value}))
    assert error.field == f"insights.{key}"
    assert f"insights.{key}" in str(error)


def test_a_good_answer_passes_with_every_field():
    assert check_answer(MODEL.operation_model("GetInsightsByAssessment"), body(GOOD), AUDIT_MANAGER_ANSWERS) == {
        "insights": GOOD
    }


@pytest.mark.parametrize(
    ("key", "inside", "outside"),
    [
        ("compliantEvidenceCount", 0, -1),
        ("compliantEvidenceCount", 2**31 - 1, 2**31),
        ("lastUpdated", LAUNCH, LAUNCH - 1),
        ("lastUpdated", time.time() + 86_400 - 600, time.time() + 86_400 + 600),
    ],
)
def test_bounds_are_the_integer_range_and_launch_to_a_day_ahead(key, inside, outside):
    check_answer(MODEL.operation_model("GetInsightsByAssessment"), body(GOOD | {key: inside}), AUDIT_MANAGER_ANSWERS)
    assert rejected("GetInsightsByAssessment", body(GOOD | {key: outside})).field == f"insights.{key}"


def test_null_and_absent_fields_are_allowed_and_unknown_keys_ignored():
    payload = body({"compliantEvidenceCount": None, "lastUpdated": UPDATED, "someNewField": "x"})
    check_answer(MODEL.operation_model("GetInsightsByAssessment"), payload, AUDIT_MANAGER_ANSWERS)


@pytest.mark.parametrize(
    "payload", [b"", b'{"insights": {', b"[1]", b'{"insights": 5}', b'{"insights": {"lastUpdated": NaN}}', b"\xff"]
)
def test_bodies_that_are_not_the_shape_are_rejected(payload):
    if payload == b"":
        # An empty body is an answer without fields, as botocore reads it; the exporter then finds no insights.
        check_answer(MODEL.operation_model("GetInsightsByAssessment"), payload, AUDIT_MANAGER_ANSWERS)
    else:
        rejected("GetInsightsByAssessment", payload)


def test_deeply_nested_json_is_rejected_without_recursing():
    assert rejected("GetInsights", b'{"insights": ' + b"[" * 100_000 + b"]" * 100_000 + b"}").field == "body"


def test_rules_come_from_the_model_so_a_field_it_gains_is_checked():
    model = ServiceModel(
        {
            "metadata": {"protocol": "rest-json", "serviceId": "Example", "endpointPrefix": "example"},
            "operations": {
                "Get": {"name": "Get", "http": {"method": "GET", "requestUri": "/"}, "output": {"shape": "Out"}}
            },
            "shapes": {
                "Out": {"type": "structure", "members": {"newCount": {"shape": "Small"}, "label": {"shape": "Short"}}},
                "Small": {"type": "integer", "min": 1, "max": 5},
                "Short": {"type": "string", "min": 1, "max": 3},
            },
        }
    )
    operation = model.operation_model("Get")
    rules = AnswerRules(launched=datetime(2020, 1, 1, tzinfo=UTC))
    check_answer(operation, b'{"newCount": 5, "label": "abc"}', rules)
    for bad in (b'{"newCount": 6}', b'{"newCount": 0}', b'{"label": "abcd"}', b'{"label": ""}'):
        with pytest.raises(MalformedAnswer):
            check_answer(operation, bad, rules)


def test_the_aws_config_model_is_checked_the_same_way():
    config = botocore.session.get_session().get_service_model("config")
    operation = config.operation_model("GetComplianceSummaryByConfigRule")
    rules = AnswerRules(launched=datetime(2014, 11, 12, tzinfo=UTC))

    def summary(count: object) -> bytes:
        return json.dumps(
            {
                "ComplianceSummary": {
                    "CompliantResourceCount": {"CappedCount": count, "CapExceeded": False},
                    "ComplianceSummaryTimestamp": UPDATED,
                }
            }
        ).encode()

    check_answer(operation, summary(3), rules)
    with pytest.raises(MalformedAnswer) as caught:
        check_answer(operation, summary(1.5), rules)
    assert caught.value.field == "ComplianceSummary.CompliantResourceCount.CappedCount"


@pytest.mark.parametrize(
    ("stamp", "problem"),
    [
        ("2026-11-23T10:00:00.000Z", None),
        ("2026-11-23T10:00:00+02:00", None),
        (UPDATED, "not an ISO 8601 timestamp"),
        ("yesterday", "not an ISO 8601 timestamp"),
        ("2014-01-01T00:00:00Z", "outside"),
    ],
)
def test_a_timestamp_follows_its_shapes_timestamp_format(stamp, problem):
    # Security Hub's model declares its timestamps iso8601: strings on the wire, not epoch seconds.
    securityhub = botocore.session.get_session().get_service_model("securityhub")
    operation = securityhub.operation_model("DescribeStandardsControls")
    rules = AnswerRules(launched=datetime(2018, 11, 28, tzinfo=UTC))
    body = json.dumps({"Controls": [{"ControlId": "IAM.1", "ControlStatusUpdatedAt": stamp}]}).encode()

    if problem is None:
        check_answer(operation, body, rules)
    else:
        with pytest.raises(MalformedAnswer, match=problem) as caught:
            check_answer(operation, body, rules)
        assert caught.value.field == "Controls[0].ControlStatusUpdatedAt"


# ---- the real client against the simulator


def client_for(sim: Simulator, counters: ApiCounters) -> AuditManagerClient:
    config = parse(
        {"max_attempts": 3, "targets": [{"region": REGION, "endpoint_url": sim.url, "assessments": [{"id": uuid(1)}]}]}
    )

    def session(target):
        return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=target.region)

    return AuditManagerClient(config.expanded_targets()[0], config, counters, session)


DOMAIN = {"name": "D", "id": "UNCATEGORIZED", "lastUpdated": UPDATED}
CALLS = [
    ("GetInsightsByAssessment", lambda c: c.assessment_insights(uuid(1)),
     body(GOOD | {"inconclusiveEvidenceCount": "7"}), "insights.inconclusiveEvidenceCount"),
    ("GetInsights", lambda c: c.account_insights(), body(GOOD | {"activeAssessmentsCount": True}),
     "insights.activeAssessmentsCount"),
    (
        "ListControlDomainInsightsByAssessment",
        lambda c: c.control_domain_insights(uuid(1)),
        json.dumps(
            {"controlDomainInsights": [DOMAIN, DOMAIN | {"evidenceInsights": {"compliantEvidenceCount": 1.5}}]}
        ).encode(),
        "controlDomainInsights[1].evidenceInsights.compliantEvidenceCount",
    ),
    (
        "ListControlDomainInsightsByAssessment",
        lambda c: c.control_domain_insights(uuid(1)),
        json.dumps({"controlDomainInsights": [DOMAIN, DOMAIN | {"id": "arn:aws:controlcatalog:::domain/X"}]}).encode(),
        "controlDomainInsights item 1: name 'D' repeats",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("operation", "call", "payload", "path"), CALLS, ids=[c[3] for c in CALLS])
def test_a_bad_answer_is_a_malformed_response_naming_the_field_and_is_not_retried(
    simulator, operation, call, payload, path
):
    simulator.add_assessment(REGION, uuid(1), "A", insights=insights())
    simulator.add_fault(Fault("body", operation=operation, body=payload))
    counters = ApiCounters()
    with pytest.raises(AwsError) as caught:
        call(client_for(simulator, counters))
    assert caught.value.code == MALFORMED
    assert path in caught.value.message
    assert counters.errors() == {(operation, REGION, MALFORMED): 1}
    assert simulator.count(operation) == 1


# ---- the real exporter process


def test_the_exporter_rejects_each_row_keeping_the_last_good_values(simulator, run_exporter):
    ids = {what: uuid(10 + n) for n, (what, _, _) in enumerate(ROWS)}
    control = uuid(99)
    good, new = insights(11, 111, 12, 13, 140), insights(21, 221, 22, 23, 240)
    for what, assessment_id in [*ids.items(), ("control", control)]:
        simulator.add_assessment(REGION, assessment_id, what, insights=good)
    assessments = [{"id": assessment_id} for assessment_id in [*ids.values(), control]]
    exporter = run_exporter(
        {
            "poll_interval": "1s",
            "max_attempts": 1,
            "targets": [{"region": REGION, "endpoint_url": simulator.url, "assessments": assessments}],
        }
    )

    def labels(assessment_id: str) -> dict[str, str]:
        name = next((w for w, a in ids.items() if a == assessment_id), "control")
        return {"account_id": "123456789012", "region": REGION, "assessment_id": assessment_id, "assessment_name": name}

    def values(samples: dict, assessment_id: str) -> dict:
        wanted = set(labels(assessment_id).items())
        return {
            (name, key): value
            for (name, key), value in samples.items()
            # The info series comes from GetAssessment, fetched apart from the poll.
            if wanted <= key and "poll_success" not in name and not name.endswith(("_age_seconds", "_info"))
        }

    samples = eventually(
        exporter.scrape,
        lambda s: sample(s, "auditmanager_assessment_controls", **labels(control)) == 140,
        what="the first poll",
        timeout=60,
        detail=exporter.logs,
    )
    before = {assessment_id: values(samples, assessment_id) for assessment_id in ids.values()}
    assert all(before.values())

    for what, key, value in ROWS:
        simulator.add_fault(Fault("body", assessment_id=ids[what], body=body(GOOD | {key: value})))
    simulator.set_insights(REGION, control, new)

    def polled_with_bad_answers(samples: Samples) -> bool:
        polls = {sample(samples, "auditmanager_assessment_poll_success", **labels(a)) for a in ids.values()}
        return sample(samples, "auditmanager_assessment_controls", **labels(control)) == 240 and polls == {0}

    samples = eventually(
        exporter.scrape, polled_with_bad_answers, what="a poll with the bad answers", timeout=60, detail=exporter.logs
    )

    for assessment_id in ids.values():
        assert values(samples, assessment_id) == before[assessment_id]
    text = exporter.logs()
    errors = {
        s: v for (n, s), v in samples.items() if n == "auditmanager_api_errors_total" and ("error_code", MALFORMED) in s
    }
    assert sum(errors.values()) >= len(ROWS)
    for _, key, _ in ROWS:
        assert any(MALFORMED in line and f"insights.{key}" in line for line in text.splitlines()), text


def test_a_null_inside_a_list_is_rejected_while_a_null_field_is_absent():
    domain = {"name": "D", "id": "UNCATEGORIZED", "totalControlsCount": None}
    operation = MODEL.operation_model("ListControlDomainInsightsByAssessment")
    check_answer(operation, json.dumps({"controlDomainInsights": [domain]}).encode(), AUDIT_MANAGER_ANSWERS)
    error = rejected(
        "ListControlDomainInsightsByAssessment", json.dumps({"controlDomainInsights": [domain, None]}).encode()
    )
    assert error.field == "controlDomainInsights[1]"
