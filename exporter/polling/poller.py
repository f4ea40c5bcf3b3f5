"""A poller: the poll cycles (Audit Manager's and AWS Config's) and framework look-ups of one config, publishing as
one generation."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence

from exporter.aws import AuditManagerClient
from exporter.awsconfig import ConformancePackClient
from exporter.config import Config
from exporter.conformance import limit_rule_series
from exporter.polling.cycle import Cycle, CycleSettings, TargetRun
from exporter.polling.details import fetch_lookups, lookup_work, tags_due
from exporter.polling.errors import report_unexpected
from exporter.polling.inventory import refresh_listing
from exporter.polling.packs import PackCycle, PackRun
from exporter.polling.publisher import Publisher
from exporter.polling.workers import Workers
from exporter.sharding import UNSHARDED, Shard
from exporter.snapshot import ApiCounters, Snapshot

log = logging.getLogger("exporter.polling")


class Poller:
    """Polls the targets of one config: `poll()` runs one cycle and publishes its Snapshot, `refresh_details()`
    runs the look-ups between cycles (each assessment's framework, once, and the tags of `tag_labels`).

    Building one claims a new generation of the publisher, so the poller it replaces can no longer publish.
    `clock` gives the published timestamps (wall time); `monotonic` every interval.
    """

    def __init__(
        self,
        config: Config,
        clients: Sequence[AuditManagerClient | None],
        publisher: Publisher,
        workers: Workers,
        counters: ApiCounters,
        *,
        pack_clients: Sequence[ConformancePackClient | None] | None = None,
        shard: Shard = UNSHARDED,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        targets = config.expanded_targets()
        self._generation, memories = publisher.claim(targets, config.tag_labels)
        packs = pack_clients if pack_clients is not None else [None] * len(targets)
        self._runs = [TargetRun(t, c, m) for t, c, m in zip(targets, clients, memories, strict=True) if c is not None]
        self._pack_runs = [PackRun(t, p, m) for t, p, m in zip(targets, packs, memories, strict=True) if p is not None]
        self._publisher = publisher
        self._workers = workers
        self._settings = CycleSettings(
            shard,
            config.discovery_interval,
            config.max_control_domain_series,
            counters,
            clock,
            monotonic,
            config.max_conformance_pack_rule_series,
            config.tag_labels,
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
        known_packs = self._publisher.read(lambda state: state.known_packs())
        known_aggregators = self._publisher.read(lambda state: state.known_aggregators())
        packs = PackCycle(self._pack_runs, self._settings, self._workers, self._stop, known_packs, known_aggregators)
        packs.start()
        result = Cycle(self._runs, self._settings, self._workers, self._stop, known, known_accounts).run()
        pack_states, aggregators = packs.result()
        # Two targets may reach the same pack (one naming it, one discovering): publish it once.
        polled = sorted({p.key: p for p in reversed(pack_states)}.values(), key=lambda p: p.key)
        limited, rules_dropped = limit_rule_series(polled, self._settings.max_rule_series)
        result = dataclasses.replace(
            result,
            conformance_packs=limited,
            conformance_pack_rule_series_dropped=rules_dropped,
            aggregators=sorted({a.key: a for a in aggregators}.values(), key=lambda a: a.key),
        )
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
        if rules_dropped:
            log.warning(
                "conformance-pack rule series over max_conformance_pack_rule_series left out",
                extra={"dropped": rules_dropped, "limit": self._settings.max_rule_series},
            )
        log.info(
            "poll cycle finished",
            extra={
                "assessments": len(snapshot.assessments),
                "failed": sum(not s.poll_success for s in snapshot.assessments),
                "conformance_packs": len(snapshot.conformance_packs),
                "failed_conformance_packs": sum(not p.poll_success for p in snapshot.conformance_packs),
                "duration_seconds": round(time.monotonic() - started, 3),
            },
        )
        return snapshot

    def close_idle_connections(self) -> None:
        """Close the pooled connections of every client not in use: with minutes between cycles, keeping them
        alive gains nothing."""
        for run in self._runs:
            run.client.close_idle_connections()
        for pack_run in self._pack_runs:
            pack_run.client.close_idle_connections()

    def refresh_listings(self) -> float:
        """List the targets whose listing is due and publish the statuses it gives, between cycles: a status change
        shows within one discovery interval however long poll_interval is (a cycle still lists a target that is
        due when it starts). Return the seconds until the next listing is due; a target whose listing just failed
        is tried again one discovery interval later."""
        every = self._settings.discovery_interval
        listed = False
        for run in self._runs:
            if self._stop.is_set():
                return every
            region, before = run.target.region, run.memory.listed_at
            try:
                refresh_listing(run.target, run.client, run.memory, self._settings.monotonic(), every)
            except Exception as error:
                report_unexpected(self._settings.counters, "ListAssessments", error, region=region)
                continue
            listed = listed or run.memory.listed_at != before
        if listed and not self._stop.is_set():
            self._publisher.commit(self._generation, lambda state: state.record_listings())
        now = self._settings.monotonic()
        waits = [
            every - (now - run.memory.listed_at) if run.memory.listed_at is not None else every for run in self._runs
        ]
        return min((w if w > 0 else every for w in waits), default=every)

    def details_due(self) -> bool:
        """Whether `refresh_details` has work: a polled assessment never looked up (or whose look-up failed a
        discovery_interval ago), or, with `tag_labels`, a target whose tags are older than discovery_interval."""
        now, every = self._settings.monotonic(), self._settings.discovery_interval
        known = self._publisher.read(lambda state: state.looked_up())
        tagging = bool(self._settings.tag_labels)
        for run in self._runs:
            account_id, region = run.memory.account_id, run.target.region
            mine = {key[2] for key in known if key[:2] == (account_id, region)}
            if lookup_work(run.memory, mine, now, every) or (tagging and tags_due(run.memory, now, every)):
                return True
        return False

    def refresh_details(self) -> Snapshot | None:
        """Run the look-ups that are due, then publish what they learned; None if this poller was stopped or
        replaced meanwhile."""
        results = fetch_lookups(
            self._runs,
            self._workers,
            self._publisher.read(lambda state: state.looked_up()),
            self._settings.tag_labels,
            (self._settings.monotonic(), self._settings.discovery_interval),
            self._stop.is_set,
            self._settings.counters,
        )
        if self._stop.is_set():
            return None
        return self._publisher.commit(
            self._generation, lambda state: state.record_lookups(results.lookups, results.tags)
        )
