"""Metric families read from the current Snapshot and the exporter's own counters. No AWS, no long locks.

`exporter.exposition` renders them into the bytes /metrics serves: the snapshot's families once per snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.snapshot import ApiCounters, AssessmentState, ReloadStatus, Snapshot, SnapshotStore
from exporter.sources.registry import sources
from exporter.tags import label_name

ASSESSMENT_LABELS = ["account_id", "region", "assessment_id", "assessment_name"]
ACCOUNT_LABELS = ["account_id", "region"]
PACK_LABELS = ["account_id", "region", "conformance_pack"]
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
    snapshot: Snapshot, name: str, documentation: str, value: Callable[[AssessmentState], float | None]
) -> GaugeMetricFamily:
    """One sample per assessment whose `value` is not None."""
    family = GaugeMetricFamily(name, documentation, labels=ASSESSMENT_LABELS)
    for state in snapshot.assessments:
        number = value(state)
        if number is not None:
            family.add_metric(_labels(state), number)
    return family


def snapshot_families(snapshot: Snapshot) -> Iterator[Metric]:
    """Families that only change when a new snapshot is published.

    Each family is built only when the previous one has been taken, so that a render that drops each family once
    rendered holds the samples of one family at a time, not of all of them.
    """
    evidence = GaugeMetricFamily(
        "auditmanager_assessment_evidence",
        f"Evidence of the assessment by compliance result. {_DAILY}",
        labels=[*ASSESSMENT_LABELS, "compliance"],
    )
    for state in snapshot.assessments:
        if state.insights is not None:
            _add_evidence(evidence, _labels(state), state.insights)
    yield evidence
    del evidence
    yield _assessment_gauge(
        snapshot,
        "auditmanager_assessment_controls",
        f"Controls in the assessment (totalAssessmentControlsCount). {_DAILY}",
        lambda state: state.insights.total_controls if state.insights else None,
    )
    yield _assessment_gauge(
        snapshot,
        "auditmanager_assessment_noncompliant_controls",
        f"Controls with noncompliant evidence (assessmentControlsCountByNoncompliantEvidence). {_DAILY}",
        lambda state: state.insights.noncompliant_controls if state.insights else None,
    )
    yield _assessment_gauge(
        snapshot,
        "auditmanager_assessment_insights_last_updated_timestamp_seconds",
        "When AWS last updated the assessment's insights (lastUpdated), as Unix time.",
        lambda state: state.insights.last_updated if state.insights else None,
    )
    yield _assessment_gauge(
        snapshot,
        "auditmanager_assessment_poll_success",
        "1 if the exporter's latest poll of the assessment succeeded, else 0.",
        lambda state: 1.0 if state.poll_success else 0.0,
    )
    yield _assessment_gauge(
        snapshot,
        "auditmanager_assessment_last_poll_success_timestamp_seconds",
        "When the exporter last polled the assessment successfully, as Unix time.",
        lambda state: state.last_success,
    )
    duration = GaugeMetricFamily(
        "auditmanager_poll_duration_seconds", "Wall time of the last poll cycle, by region.", labels=["region"]
    )
    for region, seconds in sorted(snapshot.poll_durations.items()):
        duration.add_metric([region], seconds)
    yield duration
    yield from _info_families(snapshot)
    yield from _control_domain_families(snapshot)
    yield from _account_families(snapshot)
    yield from _source_families(snapshot)
    yield from _poll_status_families(snapshot)
    build_info = GaugeMetricFamily(
        "auditmanager_exporter_build_info", "The exporter's version; always 1.", labels=["version"]
    )
    build_info.add_metric([__version__], 1.0)
    yield build_info


def _info_families(snapshot: Snapshot) -> Iterator[Metric]:
    info = GaugeMetricFamily(
        "auditmanager_assessment_info",
        "The assessment's framework and status as AWS reports them (GetAssessment, refreshed every "
        "discovery_interval); always 1. Published once the framework is known.",
        labels=[*ASSESSMENT_LABELS, "framework", "status"],
    )
    for state in snapshot.assessments:
        details = snapshot.details.get(state.key)
        if details is not None:
            info.add_metric([*_labels(state), details.framework, details.status], 1.0)
    yield info
    if snapshot.tag_labels:
        yield _tags_family(snapshot)


def _tags_family(snapshot: Snapshot) -> Metric:
    """One series per assessment whose details are known, a label per allow-listed tag key (empty if untagged)."""
    tags = GaugeMetricFamily(
        "auditmanager_assessment_tags",
        "The assessment's tags named in the config's tag_labels, each as a label tag_<key> (characters outside "
        "[a-zA-Z0-9_] as _), empty when the assessment lacks it; always 1. Join on account_id, region, assessment_id.",
        labels=[*ASSESSMENT_LABELS, *(label_name(key) for key in snapshot.tag_labels)],
    )
    for state in snapshot.assessments:
        details = snapshot.details.get(state.key)
        if details is not None:
            tags.add_metric([*_labels(state), *(details.tags.get(key, "") for key in snapshot.tag_labels)], 1.0)
    return tags


def _control_domain_families(snapshot: Snapshot) -> Iterator[Metric]:
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
    for state in snapshot.assessments:
        for domain in state.control_domains:
            _add_evidence(evidence, [*_labels(state), domain.name], domain)
    yield evidence
    del evidence
    for state in snapshot.assessments:
        for domain in state.control_domains:
            if domain.noncompliant_controls is not None:
                noncompliant_controls.add_metric([*_labels(state), domain.name], domain.noncompliant_controls)
    yield noncompliant_controls
    dropped = CounterMetricFamily(
        "auditmanager_control_domain_series_dropped",
        "Control-domain series left out because max_control_domain_series was reached, added up over every poll "
        "cycle that left them out. Above 0: raise the limit or turn control_domains off for some targets.",
    )
    dropped.add_metric([], snapshot.control_domain_series_dropped)
    yield dropped


def _account_families(snapshot: Snapshot) -> Iterator[Metric]:
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
    for account in snapshot.accounts:
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


def _source_families(snapshot: Snapshot) -> Iterator[Metric]:
    """Every source's part: its own families, then how the latest listing of each target that discovers went."""
    registered = sources()
    for name, part in snapshot.parts.items():
        source = registered.get(name)
        if source is not None:
            yield from source.families(part)
        prefix = source.metric_prefix if source is not None else name
        discovery = GaugeMetricFamily(
            f"{prefix}_discovery_success",
            "1 if the latest listing of a target that discovers (its units, and the account they belong to) "
            "succeeded, else 0; account_id is empty while the account is unknown.",
            labels=ACCOUNT_LABELS,
        )
        for account_id, region, success in part.discovery:
            discovery.add_metric([account_id, region], 1.0 if success else 0.0)
        yield discovery


def _poll_status_families(snapshot: Snapshot) -> Iterator[Metric]:
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
    for account in snapshot.accounts:
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
    for state in snapshot.assessments:
        if state.control_domains_success is None:
            continue
        domains_success.add_metric(_labels(state), 1.0 if state.control_domains_success else 0.0)
        if state.control_domains_last_success is not None:
            domains_last_success.add_metric(_labels(state), state.control_domains_last_success)
    yield from (account_success, account_last_success, domains_success, domains_last_success)


def live_families(counters: ApiCounters) -> Iterator[Metric]:
    """Families whose values change between snapshots: the exporter's own counts of its AWS calls."""
    requests = CounterMetricFamily(
        "auditmanager_api_requests",
        "HTTP requests sent to the Audit Manager and AWS Config APIs, retries included.",
        labels=["operation", "region"],
    )
    for (operation, region), count in sorted(counters.requests().items()):
        requests.add_metric([operation, region], count)
    errors = CounterMetricFamily(
        "auditmanager_api_errors",
        "Audit Manager and AWS Config calls that failed after retries, by AWS error code or transport error class.",
        labels=["operation", "region", "error_code"],
    )
    for (operation, region, code), count in sorted(counters.errors().items()):
        errors.add_metric([operation, region, code], count)
    yield from (requests, errors)


class SnapshotCollector(Collector):
    """A prometheus_client Collector over the current snapshot: every family above, read at collect time."""

    def __init__(self, store: SnapshotStore, counters: ApiCounters) -> None:
        self._store = store
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        yield from snapshot_families(self._store.get())
        yield from live_families(self._counters)


class ReloadCollector(Collector):
    """The outcome of the latest config reload."""

    def __init__(self, status: ReloadStatus) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "auditmanager_exporter_config_last_reload_successful",
            "1 if the latest config reload succeeded, else 0.",
            value=1.0 if self._status.successful else 0.0,
        )
        yield GaugeMetricFamily(
            "auditmanager_exporter_config_last_reload_success_timestamp_seconds",
            "When the config was last loaded successfully, as Unix time.",
            value=self._status.last_success,
        )
