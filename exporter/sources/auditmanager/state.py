"""Audit Manager's part of the snapshot: the published state of each assessment and account, what the exporter keeps
of an assessment's GetAssessment, and the series cap on control domains."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from exporter.failures import Failure


@dataclass(frozen=True, slots=True)
class Insights:
    """One assessment's daily counts for the `last_updated` date. Any count may be None: AWS's are nullable."""

    noncompliant_evidence: int | None
    compliant_evidence: int | None
    inconclusive_evidence: int | None
    noncompliant_controls: int | None
    total_controls: int | None
    last_updated: float | None


@dataclass(frozen=True, slots=True)
class ControlDomainInsights:
    """One control domain's daily counts within an assessment (ListControlDomainInsightsByAssessment)."""

    name: str
    noncompliant_evidence: int | None
    compliant_evidence: int | None
    inconclusive_evidence: int | None
    noncompliant_controls: int | None
    total_controls: int | None
    last_updated: float | None

    @property
    def series(self) -> int:
        """How many series it publishes: one per evidence count and the noncompliant controls, when not null."""
        counts = (self.noncompliant_evidence, self.compliant_evidence, self.inconclusive_evidence)
        return sum(count is not None for count in (*counts, self.noncompliant_controls))


@dataclass(frozen=True, slots=True)
class AccountInsights:
    """GetInsights's daily counts over the ACTIVE assessments of one account and region."""

    active_assessments: int | None
    noncompliant_evidence: int | None
    compliant_evidence: int | None
    inconclusive_evidence: int | None
    noncompliant_controls: int | None
    total_controls: int | None
    last_updated: float | None


AssessmentKey = tuple[str, str, str]
"""(account_id, region, assessment_id)"""


@dataclass(frozen=True, slots=True, kw_only=True)
class AssessmentState:
    """The published state of one assessment: its last good insights and how its latest poll went."""

    account_id: str
    region: str
    assessment_id: str
    name: str
    insights: Insights | None
    poll_success: bool
    last_success: float | None
    control_domains: tuple[ControlDomainInsights, ...] = ()
    # None when the target does not poll control domains; else how the latest ListControlDomainInsightsByAssessment
    # went (False also when it was not tried because the insights call failed), and when it last succeeded.
    control_domains_success: bool | None = None
    control_domains_last_success: float | None = None
    # The AWS error of the latest failed poll; None once a poll succeeds.
    error_code: str | None = None
    error_message: str | None = None

    @property
    def key(self) -> AssessmentKey:
        return (self.account_id, self.region, self.assessment_id)

    def failed(self, failure: Failure) -> AssessmentState:
        """After a failed poll: the last values stay, the success timestamps do not move."""
        domains = None if self.control_domains_success is None else False
        return dataclasses.replace(
            self,
            poll_success=False,
            control_domains_success=domains,
            error_code=failure.code,
            error_message=failure.message,
        )


@dataclass(frozen=True, slots=True)
class AssessmentDetails:
    """What AWS says about an assessment beyond its insights, for `auditmanager_assessment_info` and
    `auditmanager_assessment_tags`; `tags` holds only the allow-listed ones (config `tag_labels`)."""

    framework: str
    status: str
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class AccountState:
    """The last good account-level insights of one account and region (None until a GetInsights succeeds), and
    how the latest GetInsights went."""

    account_id: str
    region: str
    insights: AccountInsights | None
    poll_success: bool = True
    last_success: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.account_id, self.region)


@dataclass(frozen=True, kw_only=True)
class Lookup:
    """What the exporter keeps of an assessment's GetAssessment, asked once: its name, framework and ARN, its status
    until a listing gives one, and its allow-listed tags, refreshed with ListTagsForResource."""

    framework: str
    status: str
    arn: str
    tags: Mapping[str, str]
    name: str = ""


@dataclass(frozen=True, kw_only=True)
class AuditManagerPart:
    """The source's part of the snapshot, typed: assessments and accounts in key order, the details of the
    assessments whose framework is known, the tag keys published as labels (none: no tags metric), and how many
    control-domain series the cap left out (cumulative over the exporter's life)."""

    assessments: tuple[AssessmentState, ...] = ()
    accounts: tuple[AccountState, ...] = ()
    details: Mapping[AssessmentKey, AssessmentDetails] = field(default_factory=lambda: MappingProxyType({}))
    tag_labels: tuple[str, ...] = ()
    control_domain_series_dropped: int = 0


def allowed(tags: Mapping[str, str], tag_labels: Sequence[str]) -> Mapping[str, str]:
    """The tags of the allow-listed keys only: the others are never kept."""
    return MappingProxyType({key: tags[key] for key in tag_labels if key in tags})


def limit_control_domains(states: Sequence[AssessmentState], limit: int) -> tuple[list[AssessmentState], int]:
    """Keep control domains, in snapshot order, while their series fit in `limit`; return how many series did not."""
    remaining, dropped, limited = limit, 0, []
    for state in states:
        kept = []
        for domain in state.control_domains:
            if domain.series <= remaining:
                kept.append(domain)
                remaining -= domain.series
            else:
                dropped += domain.series
        limited.append(
            state
            if len(kept) == len(state.control_domains)
            else dataclasses.replace(state, control_domains=tuple(kept))
        )
    return limited, dropped
