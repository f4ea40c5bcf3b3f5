"""The Audit Manager client of one target: rate-limited and counted as every `ServiceClient`, turning Audit Manager's
answers into plain data (insights, control domains, assessments and their tags)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from exporter.answers import AnswerRules
from exporter.aws import reading
from exporter.aws.client import ServiceClient, pages
from exporter.aws.errors import AnswerError
from exporter.aws.ratelimit import RequestRateLimiter
from exporter.config import Target
from exporter.sources.auditmanager.state import AccountInsights, ControlDomainInsights, Insights

# Audit Manager became generally available on 8 December 2020: no timestamp in its answers is older.
AUDIT_MANAGER_ANSWERS = AnswerRules(launched=datetime(2020, 12, 8, tzinfo=UTC))
PAGE_SIZE = 1000
# The share of a target's request rate that the framework look-ups (GetAssessment between cycles) may use on top of
# waiting for the target's own limiter: a cycle running alongside them loses at most this much of its budget.
BACKGROUND_SHARE = 0.1
# A GetAssessment answer carries the assessment's whole framework: about 800 KB of JSON for 1,000 controls, several
# MB once parsed. At most this many are read at once in the whole process, whatever the targets and their
# concurrency, so that they bound peak memory.
ASSESSMENT_ANSWERS_AT_ONCE = 2
_ASSESSMENT_ANSWERS = threading.BoundedSemaphore(ASSESSMENT_ANSWERS_AT_ONCE)

_EVIDENCE_FIELDS = {
    "noncompliant_evidence": "noncompliantEvidenceCount",
    "compliant_evidence": "compliantEvidenceCount",
    "inconclusive_evidence": "inconclusiveEvidenceCount",
}
_INSIGHT_FIELDS = {
    **_EVIDENCE_FIELDS,
    "noncompliant_controls": "assessmentControlsCountByNoncompliantEvidence",
    "total_controls": "totalAssessmentControlsCount",
}
_ACCOUNT_FIELDS = {"active_assessments": "activeAssessmentsCount", **_INSIGHT_FIELDS}
_DOMAIN_CONTROL_FIELDS = {
    "noncompliant_controls": "controlsCountByNoncompliantEvidence",
    "total_controls": "totalControlsCount",
}


@dataclass(frozen=True)
class AssessmentMeta:
    """An assessment as ListAssessments lists it."""

    assessment_id: str
    name: str
    status: str


@dataclass(frozen=True)
class DescribedAssessment:
    """What the exporter keeps of a GetAssessment answer. The rest, the framework's every control set and control,
    is dropped as soon as the answer is read."""

    assessment_id: str
    name: str
    status: str
    account_id: str
    arn: str
    framework_id: str
    framework_name: str
    tags: Mapping[str, str]


class AuditManagerClient(ServiceClient):
    """Audit Manager calls for one target, shared by the poll cycle and the assessment details refresh."""

    SERVICE = "auditmanager"
    ANSWERS = AUDIT_MANAGER_ANSWERS

    def _set_up(self, target: Target) -> None:
        self._background_limiter = RequestRateLimiter(target.max_requests_per_second * BACKGROUND_SHARE)
        self._background = threading.local()

    def _before_send(self, event_name: str, **kwargs: Any) -> None:
        if getattr(self._background, "active", False):
            self._background_limiter.acquire()
        super()._before_send(event_name, **kwargs)

    def assessment_insights(self, assessment_id: str) -> Insights:
        """GetInsightsByAssessment, validated: a missing or ill-typed answer raises `AwsError(MalformedResponse)`."""
        return self._call(
            "GetInsightsByAssessment",
            lambda: self._client.get_insights_by_assessment(assessmentId=assessment_id),
            _insights,
        )

    def account_insights(self) -> AccountInsights:
        """GetInsights: the counts over every ACTIVE assessment of the account in this region."""

        def request() -> dict[str, Any]:
            return self._client.get_insights()

        return self._call("GetInsights", request, _account_insights)

    def control_domain_insights(self, assessment_id: str) -> tuple[ControlDomainInsights, ...]:
        """ListControlDomainInsightsByAssessment, every page."""

        def every_page() -> list[dict[str, Any]]:
            return pages(
                lambda **paging: self._client.list_control_domain_insights_by_assessment(
                    assessmentId=assessment_id, maxResults=PAGE_SIZE, **paging
                )
            )

        return self._call(
            "ListControlDomainInsightsByAssessment",
            every_page,
            lambda answer: _domains(reading.items(answer, "controlDomainInsights")),
        )

    def describe_assessment(self, assessment_id: str, *, background: bool = False) -> DescribedAssessment:
        """GetAssessment, keeping only the assessment's name, status, account, ARN, framework name and id, and tags.

        The answer holds one of the process's ASSESSMENT_ANSWERS_AT_ONCE slots from the request until it is parsed.
        `background` calls (the look-ups between cycles) also wait for their own small slice of the target's rate
        (BACKGROUND_SHARE), so they never take more than that from a poll cycle running meanwhile.
        """
        if background:
            # Waited for before taking a slot, so that no slot is held through the slice's long waits; a retry then
            # only waits for the target's own limit.
            self._background_limiter.acquire()
        with _ASSESSMENT_ANSWERS:
            return self._call(
                "GetAssessment", lambda: self._client.get_assessment(assessmentId=assessment_id), _described
            )

    def list_tags(self, resource_arn: str, *, background: bool = False) -> Mapping[str, str]:
        """ListTagsForResource: the resource's tags, key to value; `background` as for `describe_assessment`."""
        with self._in_background(background):
            return self._call(
                "ListTagsForResource", lambda: self._client.list_tags_for_resource(resourceArn=resource_arn), _tags
            )

    def list_assessments(self, status: str | None = None) -> list[AssessmentMeta]:
        """ListAssessments, every page."""
        filters = {"status": status} if status else {}
        return self._call(
            "ListAssessments",
            lambda: pages(lambda **paging: self._client.list_assessments(maxResults=PAGE_SIZE, **filters, **paging)),
            _assessment_list,
        )

    @contextlib.contextmanager
    def _in_background(self, background: bool) -> Iterator[None]:
        """Mark this thread's requests as background ones (or not) for `_before_send`, for the duration."""
        self._background.active = background
        try:
            yield
        finally:
            self._background.active = False


# The parsers below read answers that check_answers has already held to the model: counts are ints within
# range or None, timestamps datetimes within range or None. They check only what the model leaves optional but the
# exporter needs.


def _timestamp(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _counts(source: dict[str, Any], fields: dict[str, str]) -> dict[str, int | None]:
    return {name: source.get(key) for name, key in fields.items()}


def _insights(response: dict[str, Any]) -> Insights:
    insights = response.get("insights")
    if not isinstance(insights, dict):
        raise AnswerError("no insights")
    return Insights(**_counts(insights, _INSIGHT_FIELDS), last_updated=_timestamp(insights.get("lastUpdated")))


def _account_insights(response: dict[str, Any]) -> AccountInsights:
    insights = response.get("insights")
    if not isinstance(insights, dict):
        raise AnswerError("no insights")
    return AccountInsights(**_counts(insights, _ACCOUNT_FIELDS), last_updated=_timestamp(insights.get("lastUpdated")))


def _domains(items: Iterable[dict[str, Any]]) -> tuple[ControlDomainInsights, ...]:
    domains = tuple(_domain(item) for item in items)
    seen: set[str] = set()
    for index, domain in enumerate(domains):
        # The name is the series' only control-domain label: a repeat would publish one series twice.
        if domain.name in seen:
            raise AnswerError(f"controlDomainInsights item {index}: name {domain.name!r} repeats")
        seen.add(domain.name)
    return domains


def _domain(item: dict[str, Any]) -> ControlDomainInsights:
    evidence = item.get("evidenceInsights") or {}
    return ControlDomainInsights(
        name=reading.text(reading.field(item, "name")),
        **_counts(evidence, _EVIDENCE_FIELDS),
        **_counts(item, _DOMAIN_CONTROL_FIELDS),
        last_updated=_timestamp(item.get("lastUpdated")),
    )


def _described(response: dict[str, Any]) -> DescribedAssessment:
    assessment = reading.field(response, "assessment")
    metadata = reading.field(assessment, "metadata")
    framework = reading.field(assessment, "framework")
    account_id = reading.text(reading.field(reading.field(assessment, "awsAccount"), "id"))
    if not account_id:
        raise AnswerError("awsAccount.id is empty")
    return DescribedAssessment(
        assessment_id=reading.text(reading.field(metadata, "id")),
        name=reading.text(reading.field(metadata, "name")),
        status=reading.shared(reading.field(metadata, "status")),
        account_id=reading.shared(account_id),
        arn=reading.text(reading.field(assessment, "arn")),
        framework_id=reading.shared(reading.field(framework, "id")),
        framework_name=reading.shared(reading.field(reading.field(framework, "metadata"), "name")),
        tags=_tags(assessment),
    )


def _tags(source: dict[str, Any]) -> Mapping[str, str]:
    """The `tags` map of an answer (none when absent), as a read-only mapping of strings."""
    tags = source.get("tags") or {}
    if not isinstance(tags, dict):
        raise AnswerError("tags is not a mapping")
    return MappingProxyType({reading.shared(key): reading.shared(value) for key, value in tags.items()})


def _assessment_list(pages: Iterable[dict[str, Any]]) -> list[AssessmentMeta]:
    return [
        AssessmentMeta(
            assessment_id=reading.text(reading.field(item, "id")),
            name=reading.text(reading.field(item, "name")),
            status=reading.shared(reading.field(item, "status")),
        )
        for item in reading.items(pages, "assessmentMetadata")
    ]
