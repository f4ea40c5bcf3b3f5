"""Command line: flags → config → wire the service (exporter.service) and the HTTP server → serve until SIGTERM;
SIGHUP reloads."""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import botocore.exceptions
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from exporter import __version__, healthcheck, logs, webconfig
from exporter.aws import default_session
from exporter.aws.session import unknown_profiles
from exporter.config import Config, ConfigError, load
from exporter.demo import demo
from exporter.exposition import Exposition
from exporter.polling import Shard
from exporter.server import App, Limits, ListenAddressError, MetricsServer, bind, parse_listen_address, systemd_sockets
from exporter.service import Service, one_line, release_freed_memory, status_provider

log = logging.getLogger("exporter")

DEFAULT_PORT = 10118
USAGE_ERROR = 2
# How long a stopping exporter waits for in-flight AWS calls before it exits anyway.
STOP_GRACE_SECONDS = 3.0


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


def _check_lines(path: Path, problems: Sequence[str]) -> list[str]:
    """Config problems as `--config.check` prints them, and `POST /-/reload` answers them: one line each."""
    return [one_line(f"{path}: {problem}") for problem in problems]


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
            print(one_line(f"auditmanager-exporter: web config {args.web_config_file}: {problem}"), file=sys.stderr)
        return USAGE_ERROR
    if not args.demo and not args.config_file_given and not config_path.exists():
        print(
            f"auditmanager-exporter: no {config_path} in the current directory (the default --config.file); "
            "pass --config.file PATH, or try --demo, which needs no AWS account",
            file=sys.stderr,
        )
        return USAGE_ERROR
    try:
        config, session_factory = demo() if args.demo else (load(config_path), default_session)
    except ConfigError as error:
        for line in _check_lines(config_path, error.problems):
            print(line, file=sys.stderr)
        return USAGE_ERROR
    if args.config_check:
        print("config OK")
        return 0

    try:
        profiles = [] if args.demo else unknown_profiles(config.expanded_targets())
    except botocore.exceptions.BotoCoreError as error:
        print(f"auditmanager-exporter: cannot set up the AWS client: {error}", file=sys.stderr)
        return USAGE_ERROR
    for profile in profiles:
        print(
            f"auditmanager-exporter: cannot set up the AWS client: no profile {profile!r} in the AWS config or "
            "credentials files",
            file=sys.stderr,
        )
    if profiles:
        return USAGE_ERROR
    shard = Shard(args.shard_index, args.shard_count)
    service = Service(config, lambda: _load_for_reload(config_path), session_factory, shard)
    runtime = CollectorRegistry(auto_describe=False)
    for standard in (ProcessCollector, PlatformCollector, GCCollector):
        standard(registry=runtime)
    exposition = Exposition(
        service.store,
        service.counters,
        service.reload_status,
        runtime=[webconfig.WebConfigCollector(web), service.sessions, runtime],
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
