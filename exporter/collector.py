"""Metric families read from the current Snapshot and the exporter's own counters. No AWS, no long locks.

`exporter.exposition` renders them into the bytes /metrics serves: the snapshot's families once per snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.snapshot import ApiCounters, ReloadStatus, Snapshot, SnapshotStore
from exporter.sources.base import SourcePart
from exporter.sources.registry import sources

ACCOUNT_LABELS = ["account_id", "region"]


def snapshot_families(snapshot: Snapshot) -> Iterator[Metric]:
    """Families that only change when a new snapshot is published."""
    duration = GaugeMetricFamily(
        "auditmanager_poll_duration_seconds", "Wall time of the last poll cycle, by region.", labels=["region"]
    )
    for region, seconds in sorted(snapshot.poll_durations.items()):
        duration.add_metric([region], seconds)
    yield duration
    yield from _source_families(snapshot)
    build_info = GaugeMetricFamily(
        "auditmanager_exporter_build_info", "The exporter's version; always 1.", labels=["version"]
    )
    build_info.add_metric([__version__], 1.0)
    yield build_info


def _source_families(snapshot: Snapshot) -> Iterator[Metric]:
    """Every registered source's families of its part, then how the latest listing of each of its targets that
    discovers went."""
    for name, source in sources().items():
        part = snapshot.parts.get(name) or SourcePart()
        yield from source.families(part)
        discovery = GaugeMetricFamily(
            f"{source.metric_prefix}_discovery_success",
            "1 if the latest listing of a target that discovers (its units, and the account they belong to) "
            "succeeded, else 0; account_id is empty while the account is unknown.",
            labels=ACCOUNT_LABELS,
        )
        for account_id, region, success in part.discovery:
            discovery.add_metric([account_id, region], 1.0 if success else 0.0)
        yield discovery


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
