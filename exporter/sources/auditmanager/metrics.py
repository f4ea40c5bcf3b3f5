"""Audit Manager's metric families and /status rows, read from its part of the snapshot: per assessment (insights,
poll status, framework and status, tags, control domains) and per account (GetInsights)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.sources.auditmanager.state import AssessmentState, AuditManagerPart
from exporter.sources.base import StatusRow
from exporter.tags import label_name

ASSESSMENT_LABELS = ["account_id", "region", "assessment_id", "assessment_name"]
ACCOUNT_LABELS = ["account_id", "region"]
_DAILY = (
    "AWS's daily count for the lastUpdated date, refreshed by AWS about once a day; "
    "cached by the exporter and refreshed every poll_interval."
)


class _EvidenceCounts(Protocol):
    @property
    def noncompliant_evidence(self) -> int | None: ...
    @property
    def compliant_evidence(self) -> int | None: ...
    @property
    def inconclusive_evidence(self) -> int | None: ...


def _add_evidence(family: GaugeMetricFamily, labels: list[str], counts: _EvidenceCounts) -> None:
    """One sample per compliance result whose count AWS reported (a null count publishes nothing)."""
    for compliance, count in (
        ("noncompliant", counts.noncompliant_evidence),
        ("compliant", counts.compliant_evidence),
        ("inconclusive", counts.inconclusive_evidence),
    ):
        if count is not None:
            family.add_metric([*labels, compliance], count)


def _labels(state: AssessmentState) -> list[str]:
    return [state.account_id, state.region, state.assessment_id, state.name]


def _assessment_gauge(
    part: AuditManagerPart, name: str, documentation: str, value: Callable[[AssessmentState], float | None]
) -> GaugeMetricFamily:
    """One sample per assessment whose `value` is not None."""
    family = GaugeMetricFamily(name, documentation, labels=ASSESSMENT_LABELS)
    for state in part.assessments:
        number = value(state)
        if number is not None:
            family.add_metric(_labels(state), number)
    return family


def families(part: AuditManagerPart) -> Iterator[Metric]:
    yield from _assessment_families(part)
    yield from _detail_families(part)
    yield from _poll_status_families(part)


def status_rows(part: AuditManagerPart) -> Iterator[StatusRow]:
    """A row per assessment, with its framework and status once known."""
    for state in part.assessments:
        details = part.details.get(state.key)
        yield StatusRow.of(
            state,
            source="auditmanager",
            kind="assessment",
            name=state.name,
            id=state.assessment_id,
            details=(("framework", details.framework), ("status", details.status)) if details else (),
            updated=state.insights.last_updated if state.insights else None,
        )


def _assessment_families(part: AuditManagerPart) -> Iterator[Metric]:
    """Each assessment's insights and how its latest poll went.

    Each family is built only when the previous one has been taken, so that a render that drops each family once
    rendered holds the samples of one family at a time, not of all of them.
    """
    evidence = GaugeMetricFamily(
        "auditmanager_assessment_evidence",
        f"Evidence of the assessment by compliance result. {_DAILY}",
        labels=[*ASSESSMENT_LABELS, "compliance"],
    )
    for state in part.assessments:
        if state.insights is not None:
            _add_evidence(evidence, _labels(state), state.insights)
    yield evidence
    del evidence
    yield _assessment_gauge(
        part,
        "auditmanager_assessment_controls",
        f"Controls in the assessment (totalAssessmentControlsCount). {_DAILY}",
        lambda state: state.insights.total_controls if state.insights else None,
    )
    yield _assessment_gauge(
        part,
        "auditmanager_assessment_noncompliant_controls",
        f"Controls with noncompliant evidence (assessmentControlsCountByNoncompliantEvidence). {_DAILY}",
        lambda state: state.insights.noncompliant_controls if state.insights else None,
    )
    yield _assessment_gauge(
        part,
        "auditmanager_assessment_insights_last_updated_timestamp_seconds",
        "When AWS last updated the assessment's insights (lastUpdated), as Unix time.",
        lambda state: state.insights.last_updated if state.insights else None,
    )
    yield _assessment_gauge(
        part,
        "auditmanager_assessment_poll_success",
        "1 if the exporter's latest poll of the assessment succeeded, else 0.",
        lambda state: 1.0 if state.poll_success else 0.0,
    )
    yield _assessment_gauge(
        part,
        "auditmanager_assessment_last_poll_success_timestamp_seconds",
        "When the exporter last polled the assessment successfully, as Unix time.",
        lambda state: state.last_success,
    )


def _detail_families(part: AuditManagerPart) -> Iterator[Metric]:
    """Framework and status, tags, control domains, and the account-level insights."""
    yield from _info_families(part)
    yield from _control_domain_families(part)
    yield from _account_families(part)


def _info_families(part: AuditManagerPart) -> Iterator[Metric]:
    info = GaugeMetricFamily(
        "auditmanager_assessment_info",
        "The assessment's framework (from its one GetAssessment) and status (from the target's latest "
        "ListAssessments, every discovery_interval; GetAssessment's until a listing names it); always 1. Published "
        "once the framework is known.",
        labels=[*ASSESSMENT_LABELS, "framework", "status"],
    )
    for state in part.assessments:
        details = part.details.get(state.key)
        if details is not None:
            info.add_metric([*_labels(state), details.framework, details.status], 1.0)
    yield info
    if part.tag_labels:
        yield _tags_family(part)


def _tags_family(part: AuditManagerPart) -> Metric:
    """One series per assessment whose details are known, a label per allow-listed tag key (empty if untagged)."""
    tags = GaugeMetricFamily(
        "auditmanager_assessment_tags",
        "The assessment's tags named in the config's tag_labels, each as a label tag_<key> (characters outside "
        "[a-zA-Z0-9_] as _), empty when the assessment lacks it; always 1. Join on account_id, region, assessment_id.",
        labels=[*ASSESSMENT_LABELS, *(label_name(key) for key in part.tag_labels)],
    )
    for state in part.assessments:
        details = part.details.get(state.key)
        if details is not None:
            tags.add_metric([*_labels(state), *(details.tags.get(key, "") for key in part.tag_labels)], 1.0)
    return tags


def _control_domain_families(part: AuditManagerPart) -> Iterator[Metric]:
    evidence = GaugeMetricFamily(
        "auditmanager_assessment_control_domain_evidence",
        f"Evidence of the assessment's control domain by compliance result. {_DAILY}",
        labels=[*ASSESSMENT_LABELS, "control_domain", "compliance"],
    )
    noncompliant_controls = GaugeMetricFamily(
        "auditmanager_assessment_control_domain_noncompliant_controls",
        f"Controls of the assessment's control domain with noncompliant evidence. {_DAILY}",
        labels=[*ASSESSMENT_LABELS, "control_domain"],
    )
    for state in part.assessments:
        for domain in state.control_domains:
            _add_evidence(evidence, [*_labels(state), domain.name], domain)
    yield evidence
    del evidence
    for state in part.assessments:
        for domain in state.control_domains:
            if domain.noncompliant_controls is not None:
                noncompliant_controls.add_metric([*_labels(state), domain.name], domain.noncompliant_controls)
    yield noncompliant_controls
    dropped = CounterMetricFamily(
        "auditmanager_control_domain_series_dropped",
        "Control-domain series left out because max_control_domain_series was reached, added up over every poll "
        "cycle that left them out. Above 0: raise the limit or turn control_domains off for some targets.",
    )
    dropped.add_metric([], part.control_domain_series_dropped)
    yield dropped


def _account_families(part: AuditManagerPart) -> Iterator[Metric]:
    scope = "over the account's ACTIVE assessments in the region (GetInsights)"
    active = GaugeMetricFamily(
        "auditmanager_account_active_assessments",
        f"ACTIVE assessments of the account in the region (GetInsights). {_DAILY}",
        labels=ACCOUNT_LABELS,
    )
    evidence = GaugeMetricFamily(
        "auditmanager_account_evidence",
        f"Evidence by compliance result {scope}. {_DAILY}",
        labels=[*ACCOUNT_LABELS, "compliance"],
    )
    controls = GaugeMetricFamily("auditmanager_account_controls", f"Controls {scope}. {_DAILY}", labels=ACCOUNT_LABELS)
    noncompliant_controls = GaugeMetricFamily(
        "auditmanager_account_noncompliant_controls",
        f"Controls with noncompliant evidence {scope}. {_DAILY}",
        labels=ACCOUNT_LABELS,
    )
    last_updated = GaugeMetricFamily(
        "auditmanager_account_insights_last_updated_timestamp_seconds",
        "When AWS last updated the account's insights in the region (lastUpdated), as Unix time.",
        labels=ACCOUNT_LABELS,
    )
    for account in part.accounts:
        labels = [account.account_id, account.region]
        insights = account.insights
        if insights is None:
            continue
        for family, value in (
            (active, insights.active_assessments),
            (controls, insights.total_controls),
            (noncompliant_controls, insights.noncompliant_controls),
            (last_updated, insights.last_updated),
        ):
            if value is not None:
                family.add_metric(labels, value)
        _add_evidence(evidence, labels, insights)
    yield from (active, evidence, controls, noncompliant_controls, last_updated)


def _poll_status_families(part: AuditManagerPart) -> Iterator[Metric]:
    """Whether the latest account-level and control-domain polls succeeded, and when they last did: a failed poll
    keeps the last good values published, and these say how old they are."""
    account_success = GaugeMetricFamily(
        "auditmanager_account_poll_success",
        "1 if the exporter's latest GetInsights for the account and region succeeded, else 0.",
        labels=ACCOUNT_LABELS,
    )
    account_last_success = GaugeMetricFamily(
        "auditmanager_account_last_poll_success_timestamp_seconds",
        "When the exporter last polled the account's insights in the region successfully, as Unix time.",
        labels=ACCOUNT_LABELS,
    )
    for account in part.accounts:
        labels = [account.account_id, account.region]
        account_success.add_metric(labels, 1.0 if account.poll_success else 0.0)
        if account.last_success is not None:
            account_last_success.add_metric(labels, account.last_success)
    domains_success = GaugeMetricFamily(
        "auditmanager_assessment_control_domains_poll_success",
        "1 if the exporter's latest poll of the assessment's control domains succeeded, else 0 (also when it was "
        "not tried because the assessment's poll failed). Only for targets with control_domains.",
        labels=ASSESSMENT_LABELS,
    )
    domains_last_success = GaugeMetricFamily(
        "auditmanager_assessment_control_domains_last_poll_success_timestamp_seconds",
        "When the exporter last polled the assessment's control domains successfully, as Unix time.",
        labels=ASSESSMENT_LABELS,
    )
    for state in part.assessments:
        if state.control_domains_success is None:
            continue
        domains_success.add_metric(_labels(state), 1.0 if state.control_domains_success else 0.0)
        if state.control_domains_last_success is not None:
            domains_last_success.add_metric(_labels(state), state.control_domains_last_success)
    yield from (account_success, account_last_success, domains_success, domains_last_success)
