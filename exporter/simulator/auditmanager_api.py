"""The Audit Manager simulator's operations: the route of each request, and its answer from one region's assessments
in Audit Manager's REST-JSON shapes, with its paging and its errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.simulator.auditmanager_data import (
    ACTIVE_KEY,
    ASSESSMENT_ID,
    CONTROL_KEYS,
    EVIDENCE_KEYS,
    STATUSES,
    Assessment,
    assessment_arn,
    assessment_json,
    counts_json,
    domain_json,
    insights_json,
    metadata_json,
)
from exporter.simulator.model import AccountInsights
from exporter.simulator.wire import Answer, ApiError, field_problem, page_of, with_token

UNKNOWN_OPERATION = "UnknownOperation"
_ARN = re.compile(r"arn:.*:auditmanager:.*")
_ASSESSMENT_ARN = re.compile(r"arn:[^:]*:auditmanager:[^:]*:[^:]*:assessment/(.+)")


@dataclass(frozen=True, kw_only=True)
class Call:
    """One routed request and the region's state it is answered from (read under the simulator's lock)."""

    operation: str
    account_id: str
    region: str
    assessments: Mapping[str, Assessment]
    account_insights: AccountInsights | None
    page_size: int
    now: float
    assessment_id: str | None
    query: dict[str, str]
    resource_arn: str | None


def route(method: str, segments: list[str], query: Mapping[str, str]) -> tuple[str, str | None, str | None]:
    """The operation a request calls, the assessment it concerns, and the resource ARN it names (tags only)."""
    if method == "GET":
        match segments:
            case ["insights"]:
                return "GetInsights", None, None
            case ["insights", "assessments", assessment_id]:
                return "GetInsightsByAssessment", assessment_id, None
            case ["insights", "control-domains-by-assessment"]:
                return "ListControlDomainInsightsByAssessment", query.get("assessmentId"), None
            case ["assessments"]:
                return "ListAssessments", None, None
            case ["assessments", assessment_id]:
                return "GetAssessment", assessment_id, None
            case ["tags", resource_arn]:
                match = _ASSESSMENT_ARN.fullmatch(resource_arn)
                return "ListTagsForResource", match.group(1) if match else None, resource_arn
    return UNKNOWN_OPERATION, None, None


def answer_call(call: Call) -> Answer:
    """The answer to `call`, an AWS error answer included. May count a per-request assessment's served answers."""
    try:
        if call.operation == "GetInsights":
            return Answer(200, {"insights": _region_insights(call)})
        if call.operation == "ListAssessments":
            return Answer(200, _list_assessments(call))
        if call.operation == UNKNOWN_OPERATION:
            raise ApiError("UnknownOperationException", "no such operation", status=404)
        if call.operation == "ListTagsForResource":
            return Answer(200, {"tags": dict(_tagged(call).tags)})
        assessment = _find(call.assessments, call.assessment_id)
        if call.operation == "GetAssessment":
            return Answer(200, {"assessment": assessment_json(call.account_id, call.region, assessment)})
        insights, domains = assessment.current(call.now)
        if call.operation == "GetInsightsByAssessment" and assessment.per_request is not None:
            assessment.served += 1
            insights = assessment.per_request(assessment.served)
        if call.operation == "GetInsightsByAssessment":
            return Answer(200, {"insights": {} if insights is None else insights_json(insights)})
        page, token = page_of(domains, call.query, call.page_size)
        return Answer(200, with_token({"controlDomainInsights": [domain_json(d) for d in page]}, token))
    except ApiError as error:
        return error.answer


def _region_insights(call: Call) -> dict[str, Any]:
    fixed = call.account_insights
    if fixed is not None:
        return counts_json(fixed, ACTIVE_KEY + EVIDENCE_KEYS + CONTROL_KEYS, fixed.last_updated)
    active = [a for a in call.assessments.values() if a.status == "ACTIVE"]
    present = [insights for a in active if (insights := a.current(call.now)[0]) is not None]
    payload: dict[str, Any] = {"activeAssessmentsCount": len(active)}
    for key, attribute in EVIDENCE_KEYS + CONTROL_KEYS:
        values = [value for i in present if (value := getattr(i, attribute)) is not None]
        if values:
            payload[key] = sum(values)
    if present:
        payload["lastUpdated"] = max(i.last_updated for i in present).timestamp()
    return payload


def _list_assessments(call: Call) -> dict[str, Any]:
    status = call.query.get("status")
    if status is not None and status not in STATUSES:
        raise ApiError("ValidationException", f"invalid status {status!r}", **field_problem("status", "invalid"))
    matching = [a for a in call.assessments.values() if status in (None, a.status)]
    page, token = page_of(matching, call.query, call.page_size)
    return with_token({"assessmentMetadata": [metadata_json(a) for a in page]}, token)


def _tagged(call: Call) -> Assessment:
    """The assessment a ListTagsForResource ARN names in this account and region; only assessments have tags
    here, so any other resource is not found."""
    resource_arn = call.resource_arn or ""
    if not 20 <= len(resource_arn) <= 2048 or not _ARN.fullmatch(resource_arn):
        raise ApiError(
            "ValidationException",
            f"resourceArn {resource_arn!r} is not an Audit Manager ARN",
            **field_problem("resourceArn", "invalid"),
        )
    assessment = call.assessments.get(call.assessment_id or "")
    if assessment is None or resource_arn != assessment_arn(call.account_id, call.region, assessment):
        raise ApiError(
            "ResourceNotFoundException",
            f"resource {resource_arn} not found",
            resourceId=resource_arn,
            resourceType="ASSESSMENT",
        )
    return assessment


def _find(assessments: Mapping[str, Assessment], assessment_id: str | None) -> Assessment:
    if assessment_id is None:
        raise ApiError("ValidationException", "assessmentId is required", **field_problem("assessmentId", "required"))
    if not ASSESSMENT_ID.fullmatch(assessment_id):
        raise ApiError(
            "ValidationException",
            f"assessmentId {assessment_id!r} does not match the UUID pattern",
            **field_problem("assessmentId", "invalid"),
        )
    assessment = assessments.get(assessment_id)
    if assessment is None:
        raise ApiError(
            "ResourceNotFoundException",
            f"assessment {assessment_id} not found",
            resourceId=assessment_id,
            resourceType="ASSESSMENT",
        )
    return assessment
