"""The running exporter: one poller on a schedule (cycles, listings and chores between them), replaced by
`reload`, stopped by `stop`; and the /status data it provides."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from exporter import __version__
from exporter.aws import SessionCache, SessionFactory, default_session
from exporter.config import Config, ConfigError, Target
from exporter.polling import UNSHARDED, Poller, PollState, Publisher, Shard, Workers
from exporter.polling.clients import AllClients, Clients, ServiceClient
from exporter.server import ReloadOutcome
from exporter.snapshot import ApiCounters, ReloadStatus, SnapshotStore
from exporter.sources.base import Source, SourceClient
from exporter.sources.registry import sources
from exporter.status import CachedAssessmentRows, StatusProvider, StatusReport, report_from_snapshot

log = logging.getLogger("exporter")


# Control characters and line separators (what str.splitlines and terminals break lines at), escaped so that a
# problem naming a key such as "\v" stays one line.
_LINE_BREAKING = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(problem: str) -> str:
    """A problem as one line of a log, a terminal or a reload's answer: line breaks escaped."""
    return _LINE_BREAKING.sub(lambda match: match.group().encode("unicode_escape").decode(), problem)


def _malloc_trim() -> Callable[[int], int] | None:
    library = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(library), "malloc_trim", None) if library else None


_MALLOC_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Hand the heap pages a poll's garbage freed back to the OS.

    A poll allocates and frees a few megabytes of parsed responses across its worker threads, and a render the samples
    of each family; glibc keeps the freed pages, so without this the resident memory of a steady exporter sits that
    much higher. A no-op off glibc.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def all_clients(counters: ApiCounters, session_factory: SessionFactory) -> AllClients:
    """The clients of every registered source, built as a reload needs them."""
    return AllClients(
        {
            name: Clients(name, functools.partial(_source_client, source, counters, session_factory))
            for name, source in sources().items()
        },
    )


def _source_client(
    source: Source[Any, Any], counters: ApiCounters, session_factory: SessionFactory, target: Target, config: Config
) -> SourceClient:
    return source.client(target, config, counters, session_factory)


class Service:
    """The running exporter: one poller on a schedule, replaced by `reload`.

    The service owns what outlives a poller: the poll state and its publisher, the clients (kept for targets a
    reload does not change) and the shared workers. A reload closes the clients and workers it replaces once the
    old poller's work has ended.
    """

    def __init__(
        self,
        config: Config,
        load_config: Callable[[], Config],
        session_factory: SessionFactory = default_session,
        shard: Shard = UNSHARDED,
    ) -> None:
        self.store = SnapshotStore()
        self.counters = ApiCounters()
        self.reload_status = ReloadStatus(time.time())
        self._load_config = load_config
        self._shard = shard
        self._cycle_lock = threading.Lock()
        self._background_lock = threading.Lock()
        self._listings_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._publisher = Publisher(PollState(), self.store)
        # One session per credential source and one botocore client per service, Region and endpoint for the life of
        # the process, handed to every client as its session factory; a client is built by the first call that needs
        # it, so building the service builds none and the server listens at once.
        self.sessions = SessionCache(session_factory)
        self._clients = all_clients(self.counters, self.sessions)
        self._retired: list[ServiceClient | Workers] = []
        self._reload_poll_pending = False
        self._config = config
        self._workers = Workers(config.max_workers)
        self._poller = self._new_poller(config, self._clients.build(config)[0])
        self.scheduler = BackgroundScheduler(timezone=UTC)

    @property
    def config(self) -> Config:
        """The config in use: the latest that loaded."""
        return self._config

    def next_poll(self) -> float | None:
        """When the next poll cycle is scheduled (Unix time), if one is."""
        job = self.scheduler.get_job("poll")
        run_time = job.next_run_time if job is not None else None
        return run_time.timestamp() if run_time is not None else None

    def _new_poller(self, config: Config, source_clients: Mapping[str, Sequence[Any]]) -> Poller:
        return Poller(config, source_clients, self._publisher, self._workers, self.counters, shard=self._shard)

    def _schedule_background(self) -> None:
        # Chores such as Audit Manager's framework look-ups (one GetAssessment each) run after a cycle, not within
        # it, so a cycle takes as long as its polls alone.
        if self._poller.background_due() and not self._background_lock.locked():
            with contextlib.suppress(SchedulerNotRunningError):
                self.scheduler.add_job(self._refresh_background, id="background", replace_existing=True)

    def _refresh_background(self) -> None:
        if not self._background_lock.acquire(blocking=False):
            return
        try:
            poller = self._poller
            poller.refresh_background()
            poller.close_idle_connections()
        finally:
            self._background_lock.release()
        release_freed_memory()

    def _schedule_listings(self, seconds: float) -> None:
        # A job of its own each time (as for the poll after a reload): replacing by id a one-off job the scheduler
        # is about to remove would lose it.
        with contextlib.suppress(SchedulerNotRunningError):
            self.scheduler.add_job(
                self._refresh_listings, "date", run_date=datetime.now(UTC) + timedelta(seconds=seconds)
            )

    def _refresh_listings(self) -> None:
        # Each target's listing (statuses, discovery) when it is due, between cycles and never holding one up, so
        # a status change shows within one discovery interval whatever poll_interval is.
        seconds = self._config.discovery_interval
        try:
            with self._listings_lock:
                seconds = self._poller.refresh_listings()
        finally:
            self._schedule_listings(seconds)

    def start(self) -> None:
        """Poll at once, then every poll_interval (with a little jitter), never overlapping; list each target
        again whenever its listing is due, between cycles too."""
        self.scheduler.add_job(
            self._scheduled_cycle,
            self._trigger(self._config),
            id="poll",
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        self.scheduler.start()
        self._schedule_listings(self._config.discovery_interval)

    @staticmethod
    def _trigger(config: Config) -> IntervalTrigger:
        return IntervalTrigger(seconds=config.poll_interval, jitter=min(config.poll_interval * 0.05, 30.0))

    def _locked_cycle(self, *, wait: bool, close_retired: bool = False) -> None:
        """One poll cycle under the cycle lock (waiting for a running one, or not: then it is skipped), closing
        what reloads retired first if asked; then the look-ups, if due."""
        if not self._cycle_lock.acquire(blocking=wait):
            log.warning("previous poll cycle still running; skipping this one")
            return
        try:
            if close_retired:
                self.close_retired()
            poller = self._poller
            poller.poll()
            # With minutes between cycles, a kept-alive connection gains nothing and holds a file descriptor.
            poller.close_idle_connections()
        finally:
            self._cycle_lock.release()
        release_freed_memory()
        self._schedule_background()

    def _scheduled_cycle(self) -> None:
        self._locked_cycle(wait=False)

    def run_cycle(self) -> None:
        """Run one poll cycle now, after the running one (if any) has ended."""
        self._locked_cycle(wait=True)

    def reload(self) -> ReloadOutcome:
        """Re-read the config; on success poll with it at once, on failure keep the old one running and say why."""
        with self._reload_lock:
            try:
                config = self._load_config()
                source_clients, replaced = self._clients.build(config)
            except ConfigError as error:
                log.error("config reload failed; keeping the previous config", extra={"problems": error.problems})
                refused = ReloadOutcome(problems=tuple(error.problems))
                self.reload_status.record(False, time.time(), refused.problems)
                return refused
            except Exception as error:
                log.error("config reload failed; keeping the previous config", extra={"error": str(error)})
                refused = ReloadOutcome(problems=(one_line(str(error)),))
                self.reload_status.record(False, time.time(), refused.problems)
                return refused
            self._poller.stop()
            self._retired += replaced
            if config.max_workers != self._workers.max_workers:
                self._retired.append(self._workers)
                self._workers = Workers(config.max_workers)
            self._poller, self._config = self._new_poller(config, source_clients), config
            self.scheduler.reschedule_job("poll", trigger=self._trigger(config))
            if not self._reload_poll_pending:
                # A job of its own each time, never one replaced by id: replacing a one-off job the scheduler is
                # about to remove raises JobLookupError in the scheduler's thread, which then stops scheduling.
                self._reload_poll_pending = True
                self.scheduler.add_job(self._poll_after_reload)
            log.info("config reloaded", extra={"targets": len(config.targets)})
            self.reload_status.record(True, time.time())
            return ReloadOutcome()

    def _poll_after_reload(self) -> None:
        with self._reload_lock:
            # Reloads from here on schedule a poll of their own; this one polls with the poller current once the
            # cycle lock is free.
            self._reload_poll_pending = False
        self._locked_cycle(wait=True, close_retired=True)

    def close_retired(self) -> None:
        """Close the clients and workers reloads replaced, once the old pollers' cycles and look-ups have ended
        (the caller holds the cycle lock; this waits for the chores and listings locks)."""
        with self._background_lock, self._listings_lock, self._reload_lock:
            retired, self._retired = self._retired, []
        for item in retired:
            item.close()

    def stop(self) -> None:
        """Stop scheduling and let the running cycle skip what it has not started; publish nothing more."""
        self._poller.stop()
        self._publisher.end()
        self.scheduler.shutdown(wait=False)

    def close(self) -> None:
        """Close every client and worker (after `stop`, once `wait_idle` says the work has ended)."""
        self._clients.close()
        self._workers.close()
        for item in self._retired:
            item.close()

    def wait_idle(self, seconds: float) -> bool:
        """Wait up to `seconds` for a running cycle, chores and listing to end; True if none is running."""
        deadline = time.monotonic() + seconds
        for lock in (self._cycle_lock, self._background_lock, self._listings_lock):
            if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                return False
            lock.release()
        return True


def status_provider(service: Service, config_file: str | None, started: float) -> StatusProvider:
    """The /status page's data, from the service's latest snapshot and config."""
    rows = CachedAssessmentRows()

    def report() -> StatusReport:
        return report_from_snapshot(
            service.store.get(),
            service.config.expanded_targets(),
            service.reload_status,
            version=__version__,
            started=started,
            config_file=config_file,
            next_poll=service.next_poll(),
            rows=rows,
        )

    return report
