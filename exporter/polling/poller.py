"""A poller: the poll cycles and framework look-ups of one config, publishing as one generation."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from exporter.aws import AuditManagerClient
from exporter.config import Config
from exporter.polling.cycle import Cycle, CycleSettings, TargetRun
from exporter.polling.details import details_work, fetch_details
from exporter.polling.inventory import UNSHARDED, Shard
from exporter.polling.publisher import Publisher
from exporter.polling.workers import Workers
from exporter.snapshot import ApiCounters, Snapshot

log = logging.getLogger("exporter.polling")


class Poller:
    """Polls the targets of one config: `poll()` runs one cycle and publishes its Snapshot, `refresh_details()`
    fetches the frameworks for `auditmanager_assessment_info` between cycles.

    Building one claims a new generation of the publisher, so the poller it replaces can no longer publish.
    `clock` gives the published timestamps (wall time); `monotonic` every interval.
    """

    def __init__(
        self,
        config: Config,
        clients: Sequence[AuditManagerClient],
        publisher: Publisher,
        workers: Workers,
        counters: ApiCounters,
        *,
        shard: Shard = UNSHARDED,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        targets = config.expanded_targets()
        self._generation, memories = publisher.claim(targets)
        self._runs = [TargetRun(t, c, m) for t, c, m in zip(targets, clients, memories, strict=True)]
        self._publisher = publisher
        self._workers = workers
        self._settings = CycleSettings(
            shard, config.discovery_interval, config.max_control_domain_series, counters, clock, monotonic
        )
        self._stop = threading.Event()

    def stop(self) -> None:
        """Make a running cycle or details refresh skip the requests it has not started yet, and publish nothing."""
        self._stop.set()

    def poll(self) -> Snapshot | None:
        """Run one cycle over every target and publish the resulting Snapshot; None if this poller was stopped or
        replaced meanwhile (then nothing is published)."""
        started = time.monotonic()
        known = self._publisher.read(lambda state: state.known_assessments())
        known_accounts = self._publisher.read(lambda state: state.known_accounts())
        result = Cycle(self._runs, self._settings, self._workers, self._stop, known, known_accounts).run()
        if self._stop.is_set():
            return None
        snapshot = self._publisher.commit(self._generation, lambda state: state.record_cycle(result))
        if snapshot is None:
            return None
        if result.control_domain_series_dropped:
            log.warning(
                "control-domain series over max_control_domain_series left out",
                extra={
                    "dropped": result.control_domain_series_dropped,
                    "limit": self._settings.max_domain_series,
                },
            )
        log.info(
            "poll cycle finished",
            extra={
                "assessments": len(snapshot.assessments),
                "failed": sum(not s.poll_success for s in snapshot.assessments),
                "duration_seconds": round(time.monotonic() - started, 3),
            },
        )
        return snapshot

    def close_idle_connections(self) -> None:
        """Close the pooled connections of every client not in use: with minutes between cycles, keeping them
        alive gains nothing."""
        for run in self._runs:
            run.client.close_idle_connections()

    def details_due(self) -> bool:
        """Whether `refresh_details` has work: a polled assessment whose details were never asked for, or a
        target whose details are older than discovery_interval."""
        now = self._settings.monotonic()
        return any(details_work(run.memory, now, self._settings.discovery_interval) for run in self._runs)

    def refresh_details(self) -> Snapshot | None:
        """GetAssessment for each polled assessment whose framework and status are unknown or due, then publish
        them; None if this poller was stopped or replaced meanwhile."""
        details = fetch_details(
            self._runs,
            self._workers,
            self._settings.monotonic(),
            self._settings.discovery_interval,
            self._stop.is_set,
            self._settings.counters,
        )
        if self._stop.is_set():
            return None
        return self._publisher.commit(self._generation, lambda state: state.record_details(details))
