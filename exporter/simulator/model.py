"""The simulator's data: the insights an assessment answers with, and the record of each request it served."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Insights:
    """GetInsightsByAssessment's counts for one assessment; None counts are omitted from the response."""

    noncompliant_evidence: int | None
    compliant_evidence: int | None
    inconclusive_evidence: int | None
    noncompliant_controls: int | None
    total_controls: int | None
    last_updated: datetime


@dataclass(frozen=True)
class AccountInsights:
    """GetInsights's counts for one region of the account."""

    active_assessments: int | None
    noncompliant_evidence: int | None
    compliant_evidence: int | None
    inconclusive_evidence: int | None
    noncompliant_controls: int | None
    total_controls: int | None
    last_updated: datetime


@dataclass(frozen=True)
class ControlDomain:
    """One entry of ListControlDomainInsightsByAssessment."""

    id: str
    name: str
    noncompliant_evidence: int | None
    compliant_evidence: int | None
    inconclusive_evidence: int | None
    noncompliant_controls: int | None
    total_controls: int | None
    last_updated: datetime


@dataclass(frozen=True)
class RequestRecord:
    """One request the simulator answered; `at` is `time.monotonic()` when its request line was read,
    `access_key` the access key id it was signed with, and `conformance_pack` the pack an AWS Config request
    names."""

    at: float
    region: str
    operation: str
    assessment_id: str | None
    status: int
    access_key: str = ""
    conformance_pack: str | None = None
