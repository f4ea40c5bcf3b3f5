"""A poller: the poll cycles of every registered source of one config through the pipeline, the listings between
cycles and each source's chores between cycles, publishing as one generation."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, wait
from typing import Any

from exporter.config import Config, Target
from exporter.polling.pipeline import SourceCycle, SourceRun, refresh_listing
from exporter.polling.publisher import Publisher
from exporter.polling.state import CycleResult, PollState
from exporter.polling.workers import Workers
from exporter.sharding import UNSHARDED, Shard
from exporter.snapshot import ApiCounters, Snapshot, TargetCycle
from exporter.sources.base import Chores, Context, Memory, Source, SourceClient
from exporter.sources.registry import sources

log = logging.getLogger("exporter.polling")


class Poller:
    """Polls the targets of one config: `poll()` runs one cycle of every source and publishes its Snapshot,
    `refresh_listings()` lists the targets whose listing is due, `refresh_background()` runs the sources' chores
    between cycles (Audit Manager's framework look-ups and tags).

    Building one claims a new generation of the publisher, so the poller it replaces can no longer publish.
    `clock` gives the published timestamps (wall time); `monotonic` every interval.
    """

    def __init__(
        self,
        config: Config,
        source_clients: Mapping[str, Sequence[SourceClient | None]],
        publisher: Publisher,
        workers: Workers,
        counters: ApiCounters,
        *,
        shard: Shard = UNSHARDED,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        targets = config.expanded_targets()
        runs = [
            (source, _runs(targets, source_clients.get(name, [None] * len(targets))))
            for name, source in sources().items()
        ]
        self._generation, entries = publisher.claim(
            config,
            {
                source.name: [(t, source.initial_memory(t), source.discovers(t)) for t, _ in pairs]
                for source, pairs in runs
            },
        )
        self._source_runs = [
            (
                source,
                [
                    SourceRun(target=target, client=client, listing_gate=entry.listing_gate)
                    for (target, client), entry in zip(pairs, entries[source.name], strict=True)
                ],
            )
            for source, pairs in runs
        ]
        self._config = config
        self._publisher = publisher
        self._workers = workers
        self._shard = shard
        self._counters = counters
        self._clock = clock
        self._monotonic = monotonic
        self._stop = threading.Event()

    def stop(self) -> None:
        """Make a running cycle or chores skip the requests they have not started yet, and publish nothing."""
        self._stop.set()

    def _context(self, source: Source[Any, Any], state: PollState) -> Context[Any]:
        return Context(
            shard=self._shard,
            config=self._config,
            known=state.known_units(source.name),
            wall_clock=self._clock,
            monotonic=self._monotonic,
            counters=self._counters,
            stopped=self._stop.is_set,
        )

    def poll(self) -> Snapshot | None:
        """Run one cycle over every target and publish the resulting Snapshot; None if this poller was stopped or
        replaced meanwhile (then nothing is published)."""
        started = time.monotonic()
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
        durations: dict[str, float] = {}
        targets: list[TargetCycle] = []
        parts, memories = {}, {}
        for source, cycle, previous in cycles:
            outcome = cycle.result()
            parts[source.name] = source.part(outcome.states, previous, self._config)
            memories[source.name] = outcome.memories
            targets += outcome.cycles
            for region, seconds in cycle.durations().items():
                durations[region] = max(durations.get(region, 0.0), seconds)
        result = CycleResult(durations=durations, targets=targets, parts=parts, memories=memories)
        if self._stop.is_set():
            return None
        snapshot = self._publisher.commit(self._generation, lambda state: state.record_cycle(result))
        if snapshot is None:
            return None
        self._log_cycle(result, snapshot, time.monotonic() - started)
        return snapshot

    def _log_cycle(self, result: CycleResult, snapshot: Snapshot, seconds: float) -> None:
        registered = sources()
        units = [
            state
            for name, part in result.parts.items()
            for state in part.states
            if name not in registered or registered[name].counted(state)
        ]
        failed_listings = sum(not ok for part in snapshot.parts.values() for *_, ok in part.discovery)
        log.info(
            "poll cycle finished",
            extra={
                "units": len(units),
                "failed": sum(not state.poll_success for state in units) + failed_listings,
                "duration_seconds": round(seconds, 3),
            },
        )

    def close_idle_connections(self) -> None:
        """Close the pooled connections of every client not in use: with minutes between cycles, keeping them
        alive gains nothing."""
        for _, runs in self._source_runs:
            for source_run in runs:
                source_run.client.close_idle_connections()

    def refresh_listings(self) -> float:
        """List the targets whose listing is due and publish what it gives, between cycles: a status change or a
        new unit shows within one discovery interval however long poll_interval is (a cycle still lists a target
        that is due when it starts). Return the seconds until the next listing is due; a target whose listing just
        failed is tried again one discovery interval later."""
        every = self._config.discovery_interval
        waits = [every]
        for source, runs in self._source_runs:
            if self._stop.is_set():
                return every
            context, memories = self._publisher.read(
                lambda state, source=source: (self._context(source, state), state.source_memories(source.name))  # type: ignore[misc]
            )
            listed = {}
            for i, (run, memory) in enumerate(zip(runs, memories, strict=True)):
                try:
                    after = refresh_listing(source, run, memory, context, blocking=True, retry_after_failure=False)
                finally:
                    run.client.close_idle_connections()
                if after is not memory:
                    listed[i] = after
                if source.lists(run.target, after):
                    waits.append(_until_due(after, self._monotonic(), every))
            if listed and not self._stop.is_set():
                self._publisher.commit(
                    self._generation,
                    lambda state, s=source, m=listed: state.record_listings(s.name, m),  # type: ignore[misc]
                )
        return min(waits)

    def background_due(self) -> bool:
        """Whether `refresh_background` has work: a source's chores due for one of its targets."""
        now = self._monotonic()
        for source, _ in self._source_runs:
            held = self._publisher.read(lambda state, source=source: state.held(source.name))  # type: ignore[misc]
            if any(source.background_due(h.target, h.memory, h.background, now, self._config) for h in held):
                return True
        return False

    def refresh_background(self) -> Snapshot | None:
        """Run every source's chores that are due, each target's in its background lane, then publish what they
        learned; None if this poller was stopped or replaced meanwhile."""
        now = self._monotonic()
        jobs: list[tuple[str, int, Chores, list[Future[Any]]]] = []
        for source, runs in self._source_runs:
            context, held = self._publisher.read(
                lambda state, source=source: (self._context(source, state), state.held(source.name))  # type: ignore[misc]
            )
            for i, (run, h) in enumerate(zip(runs, held, strict=True)):
                if not source.background_due(h.target, h.memory, h.background, now, self._config):
                    continue
                chores = source.background(h.target, run.client, h.memory, h.background, context)
                if chores is None:
                    continue
                lane = self._workers.background_lane(chores.at_once)
                futures = [lane.submit(call) for call in chores.calls]
                _release_when_done(run.client, futures)
                jobs.append((source.name, i, chores, futures))
        wait([future for *_, futures in jobs for future in futures])
        if self._stop.is_set():
            return None
        applied: dict[str, dict[int, Callable[[Any], Any]]] = {}
        for name, i, chores, futures in jobs:
            results = [_result(future) for future in futures]
            applied.setdefault(name, {})[i] = functools.partial(_apply, chores, results)
        return self._publisher.commit(self._generation, functools.partial(_record_background, applied))


def _release_when_done(client: SourceClient, futures: Sequence[Future[Any]]) -> None:
    """Give the target's client back once its last chore has ended, so that a round over many targets holds the
    clients of the few it is working on, not of all it has served."""
    left = len(futures)
    lock = threading.Lock()

    def done(_: Future[Any]) -> None:
        nonlocal left
        with lock:
            left -= 1
            last = left == 0
        if last:
            client.close_idle_connections()

    for future in futures:
        future.add_done_callback(done)


def _apply(chores: Chores, results: Sequence[Any], stored: Any) -> Any:
    return chores.apply(stored, results)


def _record_background(applied: Mapping[str, Mapping[int, Callable[[Any], Any]]], state: PollState) -> None:
    for name, changes in applied.items():
        state.record_background(name, changes)


def _result(future: Future[Any]) -> Any:
    """A chore's answer; None if it failed or never ran (a closed pool cancels the queued ones)."""
    return None if future.cancelled() or future.exception() is not None else future.result()


def _runs(targets: Sequence[Target], clients: Sequence[SourceClient | None]) -> list[tuple[Target, SourceClient]]:
    """The (target, client) pairs of the targets that poll a source (those with a client)."""
    return [(target, client) for target, client in zip(targets, clients, strict=True) if client is not None]


def _until_due(memory: Memory, now: float, every: float) -> float:
    """Seconds until the target's next listing is due for the listings job (at least a moment, at most `every`)."""
    last = max(memory.listing.at if memory.listing is not None else -every, memory.listing_tried_at or -every)
    wait = every - (now - last)
    return wait if wait > 0 else every
