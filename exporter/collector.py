"""Metric families read from the current Snapshot, and the /metrics body rendered from them. No AWS, no long locks.

What only changes when a poll publishes a new Snapshot is rendered (and gzipped) once per snapshot; what changes
between polls (insight ages, API counters, process metrics) is rendered at every scrape.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.snapshot import ApiCounters, AssessmentState, ReloadStatus, Snapshot, SnapshotStore

ASSESSMENT_LABELS = ["account_id", "region", "assessment_id", "assessment_name"]
_DAILY = (
    "AWS's daily count for the lastUpdated date, refreshed by AWS about once a day; "
    "cached by the exporter and refreshed every poll_interval."
)


def _labels(state: AssessmentState) -> list[str]:
    return [state.account_id, state.region, state.assessment_id, state.name]


def snapshot_families(snapshot: Snapshot) -> Iterator[Metric]:
    """Families that only change when a new snapshot is published."""
    evidence = GaugeMetricFamily(
        "auditmanager_assessment_evidence",
        f"Evidence of the assessment by compliance result. {_DAILY}",
        labels=[*ASSESSMENT_LABELS, "compliance"],
    )
    controls = GaugeMetricFamily(
        "auditmanager_assessment_controls",
        f"Controls in the assessment (totalAssessmentControlsCount). {_DAILY}",
        labels=ASSESSMENT_LABELS,
    )
    noncompliant_controls = GaugeMetricFamily(
        "auditmanager_assessment_noncompliant_controls",
        f"Controls with noncompliant evidence (assessmentControlsCountByNoncompliantEvidence). {_DAILY}",
        labels=ASSESSMENT_LABELS,
    )
    last_updated = GaugeMetricFamily(
        "auditmanager_assessment_insights_last_updated_timestamp_seconds",
        "When AWS last updated the assessment's insights (lastUpdated), as Unix time.",
        labels=ASSESSMENT_LABELS,
    )
    poll_success = GaugeMetricFamily(
        "auditmanager_assessment_poll_success",
        "1 if the exporter's latest poll of the assessment succeeded, else 0.",
        labels=ASSESSMENT_LABELS,
    )
    last_success = GaugeMetricFamily(
        "auditmanager_assessment_last_poll_success_timestamp_seconds",
        "When the exporter last polled the assessment successfully, as Unix time.",
        labels=ASSESSMENT_LABELS,
    )
    for state in snapshot.assessments:
        labels = _labels(state)
        poll_success.add_metric(labels, 1.0 if state.poll_success else 0.0)
        if state.last_success is not None:
            last_success.add_metric(labels, state.last_success)
        insights = state.insights
        if insights is None:
            continue
        for compliance, count in (
            ("noncompliant", insights.noncompliant_evidence),
            ("compliant", insights.compliant_evidence),
            ("inconclusive", insights.inconclusive_evidence),
        ):
            if count is not None:
                evidence.add_metric([*labels, compliance], count)
        if insights.total_controls is not None:
            controls.add_metric(labels, insights.total_controls)
        if insights.noncompliant_controls is not None:
            noncompliant_controls.add_metric(labels, insights.noncompliant_controls)
        if insights.last_updated is not None:
            last_updated.add_metric(labels, insights.last_updated)
    duration = GaugeMetricFamily(
        "auditmanager_poll_duration_seconds", "Wall time of the last poll cycle, by region.", labels=["region"]
    )
    for region, seconds in sorted(snapshot.poll_durations.items()):
        duration.add_metric([region], seconds)
    build_info = GaugeMetricFamily(
        "auditmanager_exporter_build_info", "The exporter's version; always 1.", labels=["version"]
    )
    build_info.add_metric([__version__], 1.0)
    yield from (evidence, controls, noncompliant_controls, last_updated, poll_success, last_success, duration)
    yield build_info


def live_families(snapshot: Snapshot, counters: ApiCounters, now: float) -> Iterator[Metric]:
    """Families whose values change between snapshots."""
    age = GaugeMetricFamily(
        "auditmanager_assessment_insights_age_seconds",
        "Seconds since AWS last updated the assessment's insights (now minus lastUpdated), computed at scrape time.",
        labels=ASSESSMENT_LABELS,
    )
    for state in snapshot.assessments:
        if state.insights is not None and state.insights.last_updated is not None:
            age.add_metric(_labels(state), now - state.insights.last_updated)
    requests = CounterMetricFamily(
        "auditmanager_api_requests",
        "HTTP requests sent to the Audit Manager API, retries included.",
        labels=["operation", "region"],
    )
    for (operation, region), count in sorted(counters.requests().items()):
        requests.add_metric([operation, region], count)
    errors = CounterMetricFamily(
        "auditmanager_api_errors",
        "Audit Manager calls that failed after retries, by AWS error code or transport error class.",
        labels=["operation", "region", "error_code"],
    )
    for (operation, region, code), count in sorted(counters.errors().items()):
        errors.add_metric([operation, region, code], count)
    yield from (age, requests, errors)


class SnapshotCollector(Collector):
    """A prometheus_client Collector over the current snapshot: every family above, read at collect time."""

    def __init__(self, store: SnapshotStore, counters: ApiCounters, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._counters = counters
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        snapshot = self._store.get()
        yield from snapshot_families(snapshot)
        yield from live_families(snapshot, self._counters, self._clock())


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


@dataclass(frozen=True)
class _Families:
    """Adapts an iterable of families to what `generate_latest` reads."""

    families: Iterable[Metric]

    def collect(self) -> Iterable[Metric]:
        return self.families


@dataclass(frozen=True)
class _Rendered:
    snapshot: Snapshot
    text: bytes
    gzipped: bytes


class Exposition:
    """Renders the /metrics body: the snapshot part once per snapshot, the live part at every scrape.

    A gzip body is two gzip members back to back (the cached snapshot part, then the live part), which every
    gzip reader, Prometheus's included, decodes as one stream.
    """

    def __init__(
        self,
        store: SnapshotStore,
        counters: ApiCounters,
        extra: Iterable[Collector] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._counters = counters
        self._extra = tuple(extra)
        self._clock = clock
        self._lock = threading.Lock()
        self._rendered: _Rendered | None = None
        store.subscribe(self._static)

    def render(self, gzipped: bool = False) -> bytes:
        snapshot = self._store.get()
        static = self._static(snapshot)
        families = [*live_families(snapshot, self._counters, self._clock())]
        for collector in self._extra:
            families.extend(collector.collect())
        live = generate_latest(_Families(families))  # type: ignore[arg-type]
        if gzipped:
            return static.gzipped + gzip.compress(live, compresslevel=1, mtime=0)
        return static.text + live

    def _static(self, snapshot: Snapshot) -> _Rendered:
        rendered = self._rendered
        if rendered is not None and rendered.snapshot is snapshot:
            return rendered
        with self._lock:
            rendered = self._rendered
            if rendered is None or rendered.snapshot is not snapshot:
                text = generate_latest(_Families(snapshot_families(snapshot)))  # type: ignore[arg-type]
                rendered = _Rendered(snapshot, text, gzip.compress(text, compresslevel=6, mtime=0))
                self._rendered = rendered
            return rendered
