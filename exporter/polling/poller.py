"""A poller: the poll cycles of every source of one config (Audit Manager's and every registered source's through the
pipeline), the listings between cycles and the framework look-ups, publishing as one generation."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from exporter.aws import AuditManagerClient
from exporter.config import Config, Target
from exporter.failures import report_unexpected
from exporter.polling.cycle import Cycle, CycleSettings, TargetRun
from exporter.polling.details import fetch_lookups, lookup_work, tags_due
from exporter.polling.inventory import refresh_listing
from exporter.polling.pipeline import SourceCycle, SourceRun
from exporter.polling.pipeline import refresh_listing as refresh_source_listing
from exporter.polling.publisher import Publisher
from exporter.polling.state import CycleResult, PollState, TargetMemory
from exporter.polling.workers import Workers
from exporter.sharding import UNSHARDED, Shard
from exporter.snapshot import ApiCounters, Snapshot
from exporter.sources.base import Context, Memory, Source, SourceClient
from exporter.sources.registry import sources

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
        source_clients: Mapping[str, Sequence[SourceClient | None]] | None = None,
        shard: Shard = UNSHARDED,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        targets = config.expanded_targets()
        self._sources = [
            (source, _runs(targets, (source_clients or {}).get(name, [None] * len(targets))))
            for name, source in sources().items()
        ]
        self._generation, entries = publisher.claim(
            targets,
            config.tag_labels,
            {
                source.name: [(t, source.initial_memory(t), source.discovers(t)) for t, _ in runs]
                for source, runs in self._sources
            },
        )
        self._source_runs = [
            (
                source,
                [
                    SourceRun(target=target, client=client, listing_gate=entry.listing_gate)
                    for (target, client), entry in zip(runs, entries[source.name], strict=True)
                ],
            )
            for source, runs in self._sources
        ]
        # Audit Manager's memories are read as copies at each use (`_audit_runs`).
        self._audit = [(i, t, c) for i, (t, c) in enumerate(zip(targets, clients, strict=True)) if c is not None]
        self._config = config
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

    def _context(self, source: Source[Any, Any], state: PollState) -> Context[Any]:
        return Context(
            shard=self._settings.shard,
            config=self._config,
            known=state.known_units(source.name),
            wall_clock=self._settings.wall_clock,
            monotonic=self._settings.monotonic,
            counters=self._settings.counters,
            stopped=self._stop.is_set,
        )

    def poll(self) -> Snapshot | None:
        """Run one cycle over every target and publish the resulting Snapshot; None if this poller was stopped or
        replaced meanwhile (then nothing is published)."""
        started = time.monotonic()
        known = self._publisher.read(lambda state: state.known_assessments())
        known_accounts = self._publisher.read(lambda state: state.known_accounts())
        cycles = []
        for source, source_runs in self._source_runs:
            context, memories, previous = self._publisher.read(
                lambda state, source=source: (  # type: ignore[misc]
                    self._context(source, state),
                    state.source_memories(source.name),
                    state.part(source.name),
                )
            )
            cycle = SourceCycle(source, source_runs, memories, context, self._workers)
            cycle.start()
            cycles.append((source, cycle, previous))
        runs, changes = self._audit_runs()
        result = Cycle(runs, self._settings, self._workers, self._stop, known, known_accounts).run()
        durations, targets = dict(result.durations), list(result.targets)
        parts, memories = {}, {}
        for source, cycle, previous in cycles:
            outcome = cycle.result()
            parts[source.name] = source.part(outcome.states, previous, self._config)
            memories[source.name] = outcome.memories
            targets += outcome.cycles
            for region, seconds in cycle.durations().items():
                durations[region] = max(durations.get(region, 0.0), seconds)
        result = dataclasses.replace(
            result, durations=durations, targets=targets, parts=parts, memories=memories, audit_memories=changes
        )
        if self._stop.is_set():
            return None
        snapshot = self._publisher.commit(self._generation, lambda state: state.record_cycle(result))
        if snapshot is None:
            return None
        self._log_cycle(result, snapshot, time.monotonic() - started)
        return snapshot

    def _log_cycle(self, result: CycleResult, snapshot: Snapshot, seconds: float) -> None:
        if result.control_domain_series_dropped:
            log.warning(
                "control-domain series over max_control_domain_series left out",
                extra={
                    "dropped": result.control_domain_series_dropped,
                    "limit": self._settings.max_domain_series,
                },
            )
        units = [state for part in result.parts.values() for state in part.states]
        failed_units = sum(not state.poll_success for state in units)
        failed_listings = sum(not ok for part in snapshot.parts.values() for *_, ok in part.discovery)
        log.info(
            "poll cycle finished",
            extra={
                "assessments": len(snapshot.assessments),
                "units": len(units),
                "failed": sum(not s.poll_success for s in snapshot.assessments) + failed_units + failed_listings,
                "duration_seconds": round(seconds, 3),
            },
        )

    def close_idle_connections(self) -> None:
        """Close the pooled connections of every client not in use: with minutes between cycles, keeping them
        alive gains nothing."""
        for _, _, client in self._audit:
            client.close_idle_connections()
        for _, runs in self._source_runs:
            for source_run in runs:
                source_run.client.close_idle_connections()

    def refresh_listings(self) -> float:
        """List the targets whose listing is due and publish what it gives, between cycles: a status change or a
        new unit shows within one discovery interval however long poll_interval is (a cycle still lists a target
        that is due when it starts). Return the seconds until the next listing is due; a target whose listing just
        failed is tried again one discovery interval later."""
        every = self._settings.discovery_interval
        waits = [self._refresh_audit_manager_listings()]
        for source, runs in self._source_runs:
            if self._stop.is_set():
                return every
            context, memories = self._publisher.read(
                lambda state, source=source: (self._context(source, state), state.source_memories(source.name))  # type: ignore[misc]
            )
            listed = {}
            for i, (run, memory) in enumerate(zip(runs, memories, strict=True)):
                try:
                    after = refresh_source_listing(
                        source, run, memory, context, blocking=True, retry_after_failure=False
                    )
                finally:
                    run.client.close_idle_connections()
                if after is not memory:
                    listed[i] = after
                if source.lists(run.target, after):
                    waits.append(_until_due(after, self._settings.monotonic(), every))
            if listed and not self._stop.is_set():
                self._publisher.commit(
                    self._generation,
                    lambda state, s=source, m=listed: state.record_memories(s.name, m),  # type: ignore[misc]
                )
        return min(waits)

    def _audit_runs(self) -> tuple[list[TargetRun], list[tuple[int, TargetMemory, TargetMemory]]]:
        """The Audit Manager targets with a copy of their memory each, and (index, the copy as taken, the copy) for
        the commit that merges what the work changed."""
        indexes = [i for i, _, _ in self._audit]
        bases, copies = self._publisher.read(lambda state: (state.memory_copies(indexes), state.memory_copies(indexes)))
        runs = [TargetRun(t, c, m) for (_, t, c), m in zip(self._audit, copies, strict=True)]
        return runs, list(zip(indexes, bases, copies, strict=True))

    def _refresh_audit_manager_listings(self) -> float:
        every = self._settings.discovery_interval
        listed = False
        runs, changes = self._audit_runs()
        for run in runs:
            if self._stop.is_set():
                return every
            region, before = run.target.region, run.memory.listed_at
            try:
                refresh_listing(run.target, run.client, run.memory, self._settings.monotonic(), every)
            except Exception as error:
                report_unexpected(self._settings.counters, "ListAssessments", error, region=region)
                continue
            finally:
                run.client.close_idle_connections()
            listed = listed or run.memory.listed_at != before
        if listed and not self._stop.is_set():
            self._publisher.commit(self._generation, lambda state: state.record_listings(changes))
        now = self._settings.monotonic()
        waits = [every - (now - run.memory.listed_at) if run.memory.listed_at is not None else every for run in runs]
        return min((w if w > 0 else every for w in waits), default=every)

    def details_due(self) -> bool:
        """Whether `refresh_details` has work: a polled assessment never looked up (or whose look-up failed a
        discovery_interval ago), or, with `tag_labels`, a target whose tags are older than discovery_interval."""
        now, every = self._settings.monotonic(), self._settings.discovery_interval
        known = self._publisher.read(lambda state: state.looked_up())
        tagging = bool(self._settings.tag_labels)
        for run in self._audit_runs()[0]:
            account_id, region = run.memory.account_id, run.target.region
            mine = {key[2] for key in known if key[:2] == (account_id, region)}
            if lookup_work(run.memory, mine, now, every) or (tagging and tags_due(run.memory, now, every)):
                return True
        return False

    def refresh_details(self) -> Snapshot | None:
        """Run the look-ups that are due, then publish what they learned; None if this poller was stopped or
        replaced meanwhile."""
        runs, changes = self._audit_runs()
        results = fetch_lookups(
            runs,
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
            self._generation, lambda state: state.record_lookups(results.lookups, results.tags, changes)
        )


def _runs(targets: Sequence[Target], clients: Sequence[SourceClient | None]) -> list[tuple[Target, SourceClient]]:
    """The (target, client) pairs of the targets that poll a source (those with a client)."""
    return [(target, client) for target, client in zip(targets, clients, strict=True) if client is not None]


def _until_due(memory: Memory, now: float, every: float) -> float:
    """Seconds until the target's next listing is due for the listings job (at least a moment, at most `every`)."""
    last = max(memory.listing.at if memory.listing is not None else -every, memory.listing_tried_at or -every)
    wait = every - (now - last)
    return wait if wait > 0 else every
