"""Command line: flags → config → wire poller, scheduler and HTTP server → serve until SIGTERM; SIGHUP reloads."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import logging
import os
import queue
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

import boto3
import botocore.exceptions
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from exporter import __version__, healthcheck, logs, webconfig
from exporter.aws import AuditManagerClient, SessionFactory, default_session, new_session
from exporter.awsconfig import ConformancePackClient
from exporter.config import AUDIT_MANAGER, AWS_CONFIG, Config, ConfigError, Target, load, parse
from exporter.exposition import Exposition
from exporter.polling import UNSHARDED, Poller, PollState, Publisher, Shard, Workers
from exporter.polling.clients import Clients
from exporter.server import (
    App,
    Limits,
    ListenAddressError,
    MetricsServer,
    ReloadOutcome,
    bind,
    parse_listen_address,
    systemd_sockets,
)
from exporter.snapshot import ApiCounters, ReloadStatus, SnapshotStore
from exporter.status import CachedAssessmentRows, StatusProvider, StatusReport, report_from_snapshot

log = logging.getLogger("exporter")

DEFAULT_PORT = 10118
USAGE_ERROR = 2
# How long a stopping exporter waits for in-flight AWS calls before it exits anyway.
STOP_GRACE_SECONDS = 3.0
DEMO_POLL_INTERVAL = "10s"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see --help)\n")


DESCRIPTION = """\
Prometheus exporter for AWS Audit Manager assessments, AWS Config conformance packs and
Security Hub CSPM standards: polls them on a timer and serves the latest results over HTTP."""
EPILOG = """\
Try it without an AWS account: auditmanager-exporter --demo, then open http://localhost:10118/status.
Config keys, metrics, alerts and deployment: docs/*.md and config.example.yaml in the source tree."""
DEFAULT_CONFIG_FILE = "config.yml"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Prometheus-style flags; each help line ends with the flag's default."""
    # No abbreviations: a mistyped flag (`--web.listen`) must be an error, not silently another flag.
    parser = _Parser(
        prog="auditmanager-exporter",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    # No argparse default: whether the flag was given decides the messages for a missing file and for --demo.
    parser.add_argument(
        "--config.file", dest="config_file", metavar="PATH", help=f"YAML config file (default: {DEFAULT_CONFIG_FILE})"
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_addresses",
        metavar="HOST:PORT",
        action="append",
        help=f"HOST:PORT to serve on, repeat for more (default: :{DEFAULT_PORT})",
    )
    parser.add_argument(
        "--web.systemd-socket",
        dest="systemd_socket",
        action="store_true",
        help="serve on the sockets systemd passes in (socket activation) instead of --web.listen-address",
    )
    parser.add_argument(
        "--web.max-connections",
        dest="max_connections",
        metavar="N",
        type=int,
        default=Limits.max_connections,
        help="connections served at once; more wait in the listen backlog (default: %(default)s)",
    )
    parser.add_argument(
        "--healthcheck",
        action="store_true",
        help="probe /healthz of the instance at the first --web.listen-address through --web.config.file; exit 0 or 1",
    )
    parser.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        metavar="PATH",
        default="/metrics",
        help="path of the metrics (default: %(default)s)",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        default=os.environ.get("AUDITMANAGER_EXPORTER_WEB_CONFIG_FILE") or None,
        help="exporter-toolkit web config (TLS, basic auth) for every endpoint "
        "(default: $AUDITMANAGER_EXPORTER_WEB_CONFIG_FILE)",
    )
    parser.add_argument(
        "--config.check", dest="config_check", action="store_true", help="validate the config file and exit"
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        choices=list(logs.LEVELS),
        default="info",
        help="lowest level logged, one of %(choices)s (default: %(default)s)",
    )
    parser.add_argument(
        "--log.format",
        dest="log_format",
        choices=["logfmt", "json"],
        default="logfmt",
        help="logfmt (key=value) or json lines on stderr (default: %(default)s)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="poll a built-in Audit Manager and AWS Config simulator; needs no AWS account",
    )
    parser.add_argument(
        "--shard.index",
        dest="shard_index",
        metavar="N",
        type=int,
        default=0,
        help="this replica's shard, 0 to --shard.count - 1 (default: %(default)s)",
    )
    parser.add_argument(
        "--shard.count",
        dest="shard_count",
        metavar="N",
        type=int,
        default=1,
        help="replicas sharing the assessments (default: %(default)s)",
    )
    parser.add_argument("--version", action="version", version=f"auditmanager-exporter {__version__}")
    args = parser.parse_args(argv)
    args.listen_addresses = args.listen_addresses or [f":{DEFAULT_PORT}"]
    args.config_file_given = args.config_file is not None
    args.config_file = args.config_file or DEFAULT_CONFIG_FILE
    if args.demo and args.config_check and args.config_file_given:
        parser.error("--demo --config.check checks the built-in demo config, not --config.file; drop one of them")
    if not 1 <= args.max_connections <= 100_000:
        parser.error(f"--web.max-connections {args.max_connections} must be from 1 to 100000")
    path = args.telemetry_path
    if (
        not path.startswith("/")
        or "?" in path
        or "#" in path
        or path in ("/", "/healthz", "/readyz", "/status", "/-/reload")
    ):
        parser.error(f"--web.telemetry-path {path!r} must be a path starting with /, without ? or #, and not taken")
    if args.shard_count < 1:
        parser.error(f"--shard.count {args.shard_count} must be at least 1")
    if not 0 <= args.shard_index < args.shard_count:
        parser.error(f"--shard.index {args.shard_index} must be at least 0 and below --shard.count {args.shard_count}")
    return args


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
        self._details_lock = threading.Lock()
        self._listings_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._publisher = Publisher(PollState(), self.store)
        self._clients = Clients(
            AUDIT_MANAGER, lambda target, cfg: AuditManagerClient(target, cfg, self.counters, session_factory)
        )
        self._pack_clients = Clients(
            AWS_CONFIG, lambda target, cfg: ConformancePackClient(target, cfg, self.counters, session_factory)
        )
        self._retired: list[AuditManagerClient | ConformancePackClient | Workers] = []
        self._reload_poll_pending = False
        self._config = config
        self._workers = Workers(config.max_workers)
        clients, _ = self._clients.build(config)
        pack_clients, _ = self._pack_clients.build(config)
        self._poller = self._new_poller(config, clients, pack_clients)
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

    def _new_poller(
        self,
        config: Config,
        clients: Sequence[AuditManagerClient | None],
        pack_clients: Sequence[ConformancePackClient | None],
    ) -> Poller:
        return Poller(
            config, clients, self._publisher, self._workers, self.counters, pack_clients=pack_clients, shard=self._shard
        )

    def _schedule_details(self) -> None:
        # The framework of every assessment costs one GetAssessment each: fetched after a cycle, not within it,
        # so a cycle takes as long as its insights calls alone.
        if self._poller.details_due() and not self._details_lock.locked():
            with contextlib.suppress(SchedulerNotRunningError):
                self.scheduler.add_job(self._refresh_details, id="details", replace_existing=True)

    def _refresh_details(self) -> None:
        if not self._details_lock.acquire(blocking=False):
            return
        try:
            poller = self._poller
            poller.refresh_details()
            poller.close_idle_connections()
        finally:
            self._details_lock.release()
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

    def _scheduled_cycle(self) -> None:
        if not self._cycle_lock.acquire(blocking=False):
            log.warning("previous poll cycle still running; skipping this one")
            return
        try:
            self._cycle()
        finally:
            self._cycle_lock.release()
        release_freed_memory()
        self._schedule_details()

    def _cycle(self) -> None:
        poller = self._poller
        poller.poll()
        # With minutes between cycles, a kept-alive connection gains nothing and holds a file descriptor.
        poller.close_idle_connections()

    def run_cycle(self) -> None:
        """Run one poll cycle now, after the running one (if any) has ended."""
        with self._cycle_lock:
            self._cycle()
        release_freed_memory()
        self._schedule_details()

    def reload(self) -> ReloadOutcome:
        """Re-read the config; on success poll with it at once, on failure keep the old one running and say why."""
        with self._reload_lock:
            try:
                config = self._load_config()
                clients, replaced = self._clients.build(config)
                pack_clients, replaced_packs = self._pack_clients.build(config)
            except ConfigError as error:
                log.error("config reload failed; keeping the previous config", extra={"problems": error.problems})
                self.reload_status.record(False, time.time())
                return ReloadOutcome(problems=tuple(error.problems))
            except Exception as error:
                log.error("config reload failed; keeping the previous config", extra={"error": str(error)})
                self.reload_status.record(False, time.time())
                return ReloadOutcome(problems=(_one_line(str(error)),))
            self._poller.stop()
            self._retired += [*replaced, *replaced_packs]
            if config.max_workers != self._workers.max_workers:
                self._retired.append(self._workers)
                self._workers = Workers(config.max_workers)
            self._poller, self._config = self._new_poller(config, clients, pack_clients), config
            self.scheduler.reschedule_job("poll", trigger=self._trigger(config))
            if not self._reload_poll_pending:
                # A job of its own each time, never one replaced by id: replacing a one-off job the scheduler is
                # about to remove raises JobLookupError in the scheduler's thread, which then stops scheduling.
                self._reload_poll_pending = True
                self.scheduler.add_job(self._poll_after_reload)
            self.reload_status.record(True, time.time())
            log.info("config reloaded", extra={"targets": len(config.targets)})
            return ReloadOutcome()

    def _poll_after_reload(self) -> None:
        with self._reload_lock:
            # Reloads from here on schedule a poll of their own; this one polls with the poller current once the
            # cycle lock is free.
            self._reload_poll_pending = False
        with self._cycle_lock:
            self.close_retired()
            self._cycle()
        release_freed_memory()
        self._schedule_details()

    def close_retired(self) -> None:
        """Close the clients and workers reloads replaced, once the old pollers' cycles and look-ups have ended
        (the caller holds the cycle lock; this waits for the details and listings locks)."""
        with self._details_lock, self._listings_lock, self._reload_lock:
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
        self._pack_clients.close()
        self._workers.close()
        for item in self._retired:
            item.close()

    def wait_idle(self, seconds: float) -> bool:
        """Wait up to `seconds` for a running cycle, details refresh and listing to end; True if none is running."""
        deadline = time.monotonic() + seconds
        for lock in (self._cycle_lock, self._details_lock, self._listings_lock):
            if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                return False
            lock.release()
        return True


def _demo() -> tuple[Config, SessionFactory]:
    from exporter.simulator import demo_simulator

    simulator = demo_simulator().start()
    config = parse(
        {
            "poll_interval": DEMO_POLL_INTERVAL,
            "tag_labels": ["team", "cost-center"],
            "targets": [
                {
                    "regions": ["us-east-1", "eu-west-1"],
                    "endpoint_url": simulator.url,
                    "sources": [AUDIT_MANAGER, AWS_CONFIG],
                    "discover": True,
                    "control_domains": True,
                    "conformance_packs": {"discover": True},
                }
            ],
        }
    )

    def session(target: Target) -> boto3.Session:
        return new_session(aws_access_key_id="demo", aws_secret_access_key="demo", region_name=target.region)

    log.info(
        "demo mode: polling the built-in Audit Manager and AWS Config simulator", extra={"simulator": simulator.url}
    )
    return config, session


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


# Control characters and line separators (what str.splitlines and terminals break lines at), escaped so that a
# problem naming a key such as "\v" stays one line.
_LINE_BREAKING = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def _one_line(problem: str) -> str:
    return _LINE_BREAKING.sub(lambda match: match.group().encode("unicode_escape").decode(), problem)


def _check_lines(path: Path, problems: Sequence[str]) -> list[str]:
    """Config problems as `--config.check` prints them, and `POST /-/reload` answers them: one line each."""
    return [_one_line(f"{path}: {problem}") for problem in problems]


def _load_for_reload(path: Path) -> Config:
    try:
        return load(path)
    except ConfigError as error:
        raise ConfigError(_check_lines(path, error.problems)) from None


def _exit_at_once(*_: object) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    started = time.time()
    # Until the service runs there is nothing to wind down: a stop signal ends start-up at once, with exit 0.
    signal.signal(signal.SIGTERM, _exit_at_once)
    signal.signal(signal.SIGINT, _exit_at_once)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    args = parse_args(argv)
    logs.setup(args.log_level, args.log_format)
    config_path = Path(args.config_file)
    try:
        for address in args.listen_addresses:
            parse_listen_address(address)
    except ListenAddressError as error:
        print(f"auditmanager-exporter: {error}", file=sys.stderr)
        return USAGE_ERROR
    try:
        if args.healthcheck:
            return _healthcheck(args)
        web = webconfig.WebConfigSource(args.web_config_file)
    except webconfig.WebConfigError as error:
        for problem in error.problems:
            print(_one_line(f"auditmanager-exporter: web config {args.web_config_file}: {problem}"), file=sys.stderr)
        return USAGE_ERROR
    if not args.demo and not args.config_file_given and not config_path.exists():
        print(
            f"auditmanager-exporter: no {config_path} in the current directory (the default --config.file); "
            "pass --config.file PATH, or try --demo, which needs no AWS account",
            file=sys.stderr,
        )
        return USAGE_ERROR
    try:
        config, session_factory = _demo() if args.demo else (load(config_path), default_session)
    except ConfigError as error:
        for line in _check_lines(config_path, error.problems):
            print(line, file=sys.stderr)
        return USAGE_ERROR
    if args.config_check:
        print("config OK")
        return 0

    try:
        shard = Shard(args.shard_index, args.shard_count)
        service = Service(config, lambda: _load_for_reload(config_path), session_factory, shard)
    except botocore.exceptions.BotoCoreError as error:
        print(f"auditmanager-exporter: cannot set up the AWS client: {error}", file=sys.stderr)
        return USAGE_ERROR
    runtime = CollectorRegistry(auto_describe=False)
    for standard in (ProcessCollector, PlatformCollector, GCCollector):
        standard(registry=runtime)
    exposition = Exposition(
        service.store,
        service.counters,
        service.reload_status,
        runtime=[webconfig.WebConfigCollector(web), runtime],
        after_render=release_freed_memory,
    )
    status = status_provider(service, None if args.demo else str(config_path), started)
    app = App(exposition, service.store, args.telemetry_path, None if args.demo else service.reload, status)
    try:
        sockets = _listen(args)
    except ListenAddressError as error:
        print(f"auditmanager-exporter: {error}", file=sys.stderr)
        return USAGE_ERROR
    server = MetricsServer(sockets, app, web, Limits(max_connections=args.max_connections))
    return _serve(service, server, reload_enabled=not args.demo)


def _healthcheck(args: argparse.Namespace) -> int:
    problem = healthcheck.probe(args.listen_addresses[0], args.web_config_file, os.environ)
    print(f"auditmanager-exporter: healthcheck: {problem or 'OK'}", file=sys.stderr if problem else sys.stdout)
    return 1 if problem else 0


def _listen(args: argparse.Namespace) -> list[socket.socket]:
    if args.systemd_socket:
        return systemd_sockets()
    sockets: list[socket.socket] = []
    for address in args.listen_addresses:
        try:
            sockets.append(bind(address))
        except OSError as error:
            for sock in sockets:
                sock.close()
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise ListenAddressError(f"cannot listen on {address}: {reason}") from None
    return sockets


def _serve(service: Service, server: MetricsServer, *, reload_enabled: bool) -> int:
    commands: queue.Queue[str] = queue.Queue()
    signal.signal(signal.SIGTERM, lambda *_: commands.put("stop"))
    signal.signal(signal.SIGINT, lambda *_: commands.put("stop"))
    signal.signal(signal.SIGHUP, lambda *_: commands.put("reload"))
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    service.start()
    log.info(
        "listening",
        extra={
            "addresses": " ".join(server.addresses),
            "version": __version__,
            "tls": server.web.current().tls is not None,
            "basic_auth": server.web.current().auth is not None,
        },
    )
    while True:
        try:
            command = commands.get(timeout=1.0)
        except queue.Empty:
            continue
        if command == "reload":
            if reload_enabled:
                service.reload()
            server.reload_web_config()
        elif command == "stop":
            break
    log.info("shutting down")
    service.stop()
    server.shutdown()
    server.server_close()
    finished = service.wait_idle(STOP_GRACE_SECONDS)
    if finished:
        service.close()
    logging.shutdown()
    if not finished:
        # Worker threads of an abandoned poll would hold the interpreter open until their AWS calls time out.
        os._exit(0)
    return 0
