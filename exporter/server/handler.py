"""The routes: /metrics, /healthz, /readyz, /status, `/-/reload` and a landing page, each behind the web config's
rate limit and basic auth, and the `App` that holds what they serve.

A known path asked with a method it does not take gets 405 with an `Allow` header; an unknown path gets 404.
"""

from __future__ import annotations

import html
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs

from exporter import __version__
from exporter.exposition import Body, Exposition
from exporter.server.connections import ConnectionServer, Limits, TimedRequestHandler
from exporter.server.negotiation import negotiate
from exporter.snapshot import SnapshotStore
from exporter.status import Query, StatusProvider, render_html, render_json
from exporter.webconfig import WebConfigSource

log = logging.getLogger(__name__)

NAME = "auditmanager-exporter"
DESCRIPTION = "Prometheus exporter for AWS Audit Manager assessment insights"
# /status has no scripts and loads nothing: the browser is told to allow neither, only its inline style and form.
STATUS_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
    "Cache-Control": "no-store",
}
READ_METHODS = ("GET", "HEAD")
# As Prometheus's own /-/reload.
RELOAD_METHODS = ("POST", "PUT")
RELOAD_PATH = "/-/reload"
NO_CONFIG_FILE = "web config reloaded; --demo has no config file to re-read, its built-in config stays in use\n"


@dataclass(frozen=True)
class ReloadOutcome:
    """What a config reload did: no problems when the new config took; else why not, one line per problem, as
    `--config.check` prints them (`config.yml: targets[0].region: required`)."""

    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class App:
    """What the HTTP layer serves, passed in whole so tests can build it from real parts.

    `reload` re-reads the config for `/-/reload`; None when there is no config file to re-read (`--demo`), where
    `/-/reload` re-reads only the web config, as SIGHUP does.
    """

    exposition: Exposition
    store: SnapshotStore
    telemetry_path: str = "/metrics"
    reload: Callable[[], ReloadOutcome] | None = None
    status: StatusProvider | None = None


class Handler(TimedRequestHandler):
    server: MetricsServer  # type: ignore[assignment]
    server_version = f"{NAME}/{__version__}"

    def _dispatch(self) -> None:
        self._discard_body()
        if not self._admitted():
            return
        path, _, query = self.path.partition("?")
        allowed = self._allowed_methods(path)
        if not allowed:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n")
        elif self.command not in allowed:
            self._send(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{path} takes {' or '.join(allowed)}\n".encode(),
                headers={"Allow": ", ".join(allowed)},
            )
        elif path == RELOAD_PATH:
            self._reload()
        else:
            self._read(path, query)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    def _allowed_methods(self, path: str) -> tuple[str, ...]:
        app = self.server.app
        if path == RELOAD_PATH:
            return RELOAD_METHODS
        if path in (app.telemetry_path, "/healthz", "/readyz", "/") or (path == "/status" and app.status is not None):
            return READ_METHODS
        return ()

    def _read(self, path: str, query: str) -> None:
        app = self.server.app
        if path == app.telemetry_path:
            self._metrics()
        elif path == "/healthz":
            self._send(HTTPStatus.OK, b"OK\n")
        elif path == "/readyz":
            if app.store.get().completed_cycles > 0:
                self._send(HTTPStatus.OK, b"OK\n")
            else:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"waiting for the first poll cycle\n")
        elif path == "/":
            self._send(HTTPStatus.OK, _landing_page(app.telemetry_path), "text/html; charset=utf-8")
        elif app.status is not None:
            # Browsers percent-encode the query; a raw UTF-8 one arrives here decoded as Latin-1.
            self._status(app.status, parse_qs(query.encode("latin-1", "replace").decode("utf-8", "replace")))

    def _metrics(self) -> None:
        wanted = negotiate(self.headers.get("Accept", ""), self.headers.get("Accept-Encoding", ""))
        try:
            body = self.server.app.exposition.body(openmetrics=wanted.openmetrics, gzipped=wanted.gzipped)
        except Exception as error:
            # A scraper should see a failed scrape, not a connection closed without an answer.
            log.error("cannot render the metrics", extra={"error": f"{type(error).__name__}: {error}"})
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"cannot render the metrics\n")
            return
        self._send_metrics(body)

    def _send_metrics(self, body: Body) -> None:
        """Write the prepared parts one after the other: never joined, so a scrape copies none of them."""
        headers = {"Vary": "Accept, Accept-Encoding"} | ({"Content-Encoding": "gzip"} if body.gzipped else {})
        self._write(HTTPStatus.OK, body.content_type, body.parts, headers)

    def _status(self, provider: StatusProvider, params: dict[str, list[str]]) -> None:
        output = (params.get("format") or ["html"])[0]
        if output not in ("html", "json"):
            self._send(HTTPStatus.BAD_REQUEST, b"format must be html or json\n")
            return
        try:
            report, query = provider(), Query.parse(params)
            if output == "json":
                body, content_type = render_json(report, query), "application/json"
            else:
                body, content_type = render_html(report, query), "text/html; charset=utf-8"
        except Exception as error:
            log.error("cannot render the status page", extra={"error": f"{type(error).__name__}: {error}"})
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"cannot render the status page\n")
            return
        self._send(HTTPStatus.OK, body, content_type, STATUS_HEADERS)

    def _reload(self) -> None:
        app = self.server.app
        # Both always run: a broken config does not stop the web config from being re-read, nor the other way.
        config = app.reload() if app.reload is not None else None
        web_ok = self.server.reload_web_config()
        lines: list[str] = []
        if config is not None and not config.ok:
            lines += ["config reload failed; the previous config stays in use:", *config.problems]
        if not web_ok:
            lines.append("web config reload failed; the previous web config stays in use")
        if lines:
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, "".join(f"{line}\n" for line in lines).encode())
        elif config is None:
            self._send(HTTPStatus.OK, NO_CONFIG_FILE.encode())
        else:
            self._send(HTTPStatus.OK, b"config reloaded\n")


def _landing_page(telemetry_path: str) -> bytes:
    links = (
        (telemetry_path, "Metrics", "the exporter's metrics"),
        ("/healthz", "Health", "whether the exporter serves"),
        ("/readyz", "Readiness", "whether the first poll cycle has ended"),
        ("/status", "Status", "the state of every poll target"),
    )
    items = "".join(
        f'<li><a href="{html.escape(address)}">{html.escape(text)}</a>: {html.escape(about)}</li>'
        for address, text, about in links
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>AWS Audit Manager exporter</title>"
        "<style>body{font-family:sans-serif;margin:0}header{background:#e6522c;color:#fff;padding:1em}"
        "main{padding:1em}</style></head>"
        f"<body><header><h1>{NAME}</h1></header><main><p>{html.escape(DESCRIPTION)}</p>"
        f"<p>Version: {html.escape(__version__)}</p><ul>{items}</ul></main></body></html>\n"
    ).encode()


class MetricsServer(ConnectionServer):
    """Serves `app` on the given listening sockets, at most `limits.max_connections` connections at a time."""

    def __init__(
        self,
        sockets: Sequence[socket.socket],
        app: App,
        web: WebConfigSource | None = None,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(sockets, Handler, web, limits)
        self.app = app
