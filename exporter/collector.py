"""Metric families read from the current Snapshot, and the /metrics body rendered from them. No AWS, no long locks.

What only changes when a poll publishes a new Snapshot is rendered (and gzipped) once per snapshot; what changes
between polls (insight ages, API counters, process metrics) is rendered at every scrape.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from exporter import __version__
from exporter.snapshot import ApiCounters, AssessmentState, ReloadStatus, Snapshot, SnapshotStore

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
        _add_evidence(evidence, labels, insights)
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
    yield from _info_families(snapshot)
    yield from _control_domain_families(snapshot)
    yield from _account_families(snapshot)
    yield from _poll_status_families(snapshot)
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
            labels = [*_labels(state), domain.name]
            _add_evidence(evidence, labels, domain)
            if domain.noncompliant_controls is not None:
                noncompliant_controls.add_metric(labels, domain.noncompliant_controls)
    dropped = CounterMetricFamily(
        "auditmanager_control_domain_series_dropped",
        "Control-domain series left out because max_control_domain_series was reached, added up over every poll "
        "cycle that left them out. Above 0: raise the limit or turn control_domains off for some targets.",
    )
    dropped.add_metric([], snapshot.control_domain_series_dropped)
    yield from (evidence, noncompliant_controls, dropped)


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
class _AgeLines:
    """A family whose every sample is `now - constant`, ready to render at any `now` without building Samples.

    `template` is the family's sample lines with `%s` in place of each value, and `offsets` its values at now = 0
    (minus each last_updated, exactly), so `now + offset` is bit for bit the `now - last_updated` the family
    computes, and `floatToGoString` formats it as prometheus_client does.
    """

    template: str
    offsets: tuple[float, ...]

    def render(self, header: bytes, now: float) -> bytes:
        values = [now + o for o in self.offsets]
        # Below 1e6, floatToGoString's answer is repr's (Go's notation only differs above), at a third of the cost.
        text = map(repr if not values or max(values) < 1e6 else floatToGoString, values)
        return header + (self.template % tuple(text)).encode()


@dataclass(frozen=True)
class _Rendered:
    """What a scrape reuses of one snapshot: its pre-rendered part, and how to render its live part quickly.

    The part is kept gzipped only (Prometheus asks for gzip); the plain text, 20 times larger, is decompressed
    from it the first time a client asks for plain text, and kept from then on.
    """

    snapshot: Snapshot
    gzipped: bytes
    # The snapshot the live families are read from at scrape time: without its assessments when `ages` covers
    # every live sample that depends on them, so that a scrape never builds one Sample per assessment.
    live_source: Snapshot
    ages: Mapping[str, _AgeLines]

    @functools.cached_property
    def text(self) -> bytes:
        return gzip.decompress(self.gzipped)


class _Body:
    """One render's /metrics body, joined and compressed only for the encodings asked for, once each."""

    def __init__(self, static: _Rendered, live: bytes) -> None:
        self._static = static
        self._live = live
        self._lock = threading.Lock()
        self._plain: bytes | None = None
        self._gzipped: bytes | None = None

    def plain(self) -> bytes:
        with self._lock:
            if self._plain is None:
                self._plain = self._static.text + self._live
            return self._plain

    def gzipped(self) -> bytes:
        with self._lock:
            if self._gzipped is None:
                self._gzipped = self._static.gzipped + gzip.compress(self._live, compresslevel=1, mtime=0)
            return self._gzipped


class Exposition:
    """Renders the /metrics body: the snapshot part once per snapshot, the live part at every scrape.

    In the live part, families of ages (one sample per assessment, `now - last_updated`) are rendered from lines
    prepared once per snapshot, since going through prometheus_client for them would cost most of a scrape; the
    other live families go through prometheus_client as usual. The body is byte for byte what prometheus_client
    renders for the same families (see `_prepare_ages`).

    A gzip body is two gzip members back to back (the cached snapshot part, then the live part), which every
    gzip reader, Prometheus's included, decodes as one stream.

    Concurrent scrapes share renders: a scrape gets the first render that starts after it arrived, so its ages
    are never older than its request, and N scrapers at once cost about one render, not N of them competing for
    the GIL.
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
        self._turns = threading.Condition()
        self._started = 0
        self._finished = 0
        self._latest: _Body | BaseException | None = None
        store.subscribe(self._static)

    def render(self, gzipped: bool = False) -> bytes:
        with self._turns:
            wanted = self._started + 1
            while self._finished < wanted and self._started > self._finished:
                self._turns.wait()
            mine = self._finished < wanted
            if mine:
                self._started = wanted
        if mine:
            self._publish(wanted)
        latest = self._latest
        if isinstance(latest, BaseException):
            raise latest
        assert latest is not None
        return latest.gzipped() if gzipped else latest.plain()

    def _publish(self, turn: int) -> None:
        try:
            latest: _Body | BaseException = self._render()
        except Exception as error:
            latest = error
        with self._turns:
            self._latest, self._finished = latest, turn
            self._turns.notify_all()

    def _render(self) -> _Body:
        snapshot = self._store.get()
        static = self._static(snapshot)
        now = self._clock()
        families = [*live_families(static.live_source, self._counters, now)]
        for collector in self._extra:
            families.extend(collector.collect())
        parts = []
        for family in families:
            text = generate_latest(_Families((family,)))  # type: ignore[arg-type]
            ages = static.ages.get(family.name)
            parts.append(text if ages is None else ages.render(text, now))
        return _Body(static, b"".join(parts))

    def _static(self, snapshot: Snapshot) -> _Rendered:
        rendered = self._rendered
        if rendered is not None and rendered.snapshot is snapshot:
            return rendered
        with self._lock:
            rendered = self._rendered
            if rendered is None or rendered.snapshot is not snapshot:
                text = generate_latest(_Families(snapshot_families(snapshot)))  # type: ignore[arg-type]
                rendered = _Rendered(snapshot, gzip.compress(text, compresslevel=6, mtime=0), *_prepare_ages(snapshot))
                self._rendered = rendered
            return rendered


def _prepare_ages(snapshot: Snapshot) -> tuple[Snapshot, Mapping[str, _AgeLines]]:
    """The snapshot to read the live families from at scrape time, and the age families to render fast.

    Every live family with samples that come from the snapshot's assessments must be an age family: one whose
    every sample grows exactly one for one with the clock (checked at now = 0 and now = 1). Then the scrape reads
    the live families from the snapshot without its assessments and adds the ages' lines itself. If any of them
    is not an age, every live family goes through prometheus_client with the whole snapshot: slower, never wrong.
    """
    bare = dataclasses.replace(snapshot, assessments=())
    no_counters = ApiCounters()
    at_zero = list(live_families(snapshot, no_counters, 0.0))
    at_one = list(live_families(snapshot, no_counters, 1.0))
    without = list(live_families(bare, no_counters, 0.0))
    if not len(at_zero) == len(at_one) == len(without):
        return snapshot, {}
    ages = {}
    for zero, one, empty in zip(at_zero, at_one, without, strict=True):
        if zero == empty:
            continue
        linear = (
            not empty.samples
            and len(zero.samples) == len(one.samples)
            and all(
                a.labels == b.labels and a.timestamp is b.timestamp is None and b.value == a.value + 1.0
                for a, b in zip(zero.samples, one.samples, strict=True)
            )
        )
        if not linear:
            return snapshot, {}
        # Only "\n" ends a line: label values keep "\r" and other line breaks of str.splitlines unescaped.
        lines = generate_latest(_Families((zero,))).decode().split("\n")[:-1]  # type: ignore[arg-type]
        # A value never holds a space, so the last space of a sample line separates it from the name and labels.
        template = "".join(line.rpartition(" ")[0].replace("%", "%%") + " %s\n" for line in lines if line[0] != "#")
        ages[zero.name] = _AgeLines(template, tuple(s.value for s in zero.samples))
    return bare, MappingProxyType(ages)
