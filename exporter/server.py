"""The HTTP side: /metrics, /healthz, /readyz, POST /-/reload and a landing page, on a threading server.

TLS and basic auth come from the web config; both apply to every endpoint.
"""

from __future__ import annotations

import contextlib
import html
import logging
import socket
import socketserver
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from exporter import __version__
from exporter.collector import Exposition
from exporter.snapshot import SnapshotStore
from exporter.status import Query, StatusProvider, render_html, render_json
from exporter.webconfig import WebConfig

log = logging.getLogger(__name__)

# A client gets this long to complete its TLS handshake, in its own thread, before it is dropped.
HANDSHAKE_TIMEOUT_SECONDS = 10.0
# POST bodies are never used; up to this much is read and dropped to keep the connection usable.
MAX_DISCARDED_BODY = 65536
# /status has no scripts and loads nothing: the browser is told to allow neither, only its inline style and form.
STATUS_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class App:
    """What the HTTP layer serves, passed in whole so tests can build it from real parts."""

    exposition: Exposition
    store: SnapshotStore
    telemetry_path: str = "/metrics"
    reload: Callable[[], bool] | None = None
    status: StatusProvider | None = None


class ListenAddressError(ValueError):
    """The --web.listen-address value cannot be used."""


def parse_listen_address(address: str) -> tuple[str, int]:
    """Split `HOST:PORT`, `:PORT` or `[IPv6]:PORT`; an empty host means every interface."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ListenAddressError(f"invalid listen address {address!r}: want HOST:PORT, like :10118 or 127.0.0.1:10118")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ListenAddressError(f"invalid listen address {address!r}: put IPv6 hosts in brackets, like [::1]:10118")
    return host, int(port_text)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding value allows gzip: listed (or covered by `*`) with a weight above 0."""
    weights: dict[str, float] = {}
    for part in accept_encoding.split(","):
        coding, _, params = part.partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[coding.strip().lower()] = weight
    return weights.get("gzip", weights.get("*", 0.0)) > 0


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer
    protocol_version = "HTTP/1.1"
    server_version = f"auditmanager-exporter/{__version__}"
    sys_version = ""
    # Slow or silent clients lose their connection instead of holding a thread forever.
    timeout = 30
    # Headers and body go out in separate writes; with Nagle's algorithm the end of the body waits for the
    # client's delayed ACK of the headers (~40 ms on Linux) on every keep-alive request.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        if not self._authorized():
            return
        app = self.server.app
        path, _, query = self.path.partition("?")
        if path == app.telemetry_path:
            gzipped = accepts_gzip(self.headers.get("Accept-Encoding", ""))
            try:
                body = app.exposition.render(gzipped=gzipped)
            except Exception as error:
                # A scraper should see a failed scrape, not a connection closed without an answer.
                log.error("cannot render the metrics", extra={"error": f"{type(error).__name__}: {error}"})
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"cannot render the metrics\n")
                return
            self._send(HTTPStatus.OK, body, CONTENT_TYPE_PLAIN_0_0_4, {"Content-Encoding": "gzip"} if gzipped else {})
        elif path == "/healthz":
            self._send(HTTPStatus.OK, b"OK\n")
        elif path == "/readyz":
            if app.store.get().completed_cycles > 0:
                self._send(HTTPStatus.OK, b"OK\n")
            else:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"waiting for the first poll cycle\n")
        elif path == "/":
            self._send(HTTPStatus.OK, _landing_page(app.telemetry_path), "text/html; charset=utf-8")
        elif path == "/status" and app.status is not None:
            # Browsers percent-encode the query; a raw UTF-8 one arrives here decoded as Latin-1.
            self._status(app.status, parse_qs(query.encode("latin-1", "replace").decode("utf-8", "replace")))
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n")

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

    def do_POST(self) -> None:
        self._discard_body()
        if not self._authorized():
            return
        app = self.server.app
        if self.path.split("?", 1)[0] != "/-/reload" or app.reload is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n")
        elif app.reload():
            self._send(HTTPStatus.OK, b"config reloaded\n")
        else:
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"config reload failed; the previous config stays in use\n")

    def _authorized(self) -> bool:
        auth = self.server.web.auth
        if auth is None or auth.check(self.headers.get("Authorization")):
            return True
        self._send(
            HTTPStatus.UNAUTHORIZED,
            b"unauthorized\n",
            headers={"WWW-Authenticate": 'Basic realm="auditmanager-exporter", charset="UTF-8"'},
        )
        return False

    def _discard_body(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if 0 <= length <= MAX_DISCARDED_BODY:
            self.rfile.read(length)
        else:
            self.close_connection = True

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http request", extra={"client": self.client_address[0], "request": format % args})


def _landing_page(telemetry_path: str) -> bytes:
    path = html.escape(telemetry_path)
    return (
        "<!doctype html><html><head><title>AWS Audit Manager exporter</title></head><body>"
        f"<h1>AWS Audit Manager exporter</h1><p>Version {__version__}</p>"
        f'<ul><li><a href="{path}">Metrics</a></li><li><a href="/healthz">Health</a></li>'
        '<li><a href="/readyz">Readiness</a></li><li><a href="/status">Status</a></li></ul></body></html>\n'
    ).encode()


class MetricsServer(ThreadingHTTPServer):
    """A threading HTTP server bound to the listen address; every connection gets its own daemon thread."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App, web: WebConfig | None = None) -> None:
        host, port = address
        self.app = app
        self.web = web or WebConfig()
        if host == "" and socket.has_dualstack_ipv6():
            self.address_family = socket.AF_INET6
            super().__init__(("::", port), _Handler, bind_and_activate=False)
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        else:
            if ":" in host:
                self.address_family = socket.AF_INET6
            super().__init__((host, port), _Handler, bind_and_activate=False)
        try:
            self.server_bind()
            self.server_activate()
        except OSError:
            self.server_close()
            raise

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a DNS lookup that can stall start-up; we never use it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def finish_request(self, request: socket.socket | tuple[bytes, socket.socket], client_address: object) -> None:
        # Runs in the connection's own thread, so a slow or garbage TLS handshake only ever holds up itself.
        tls = self.web.tls
        if tls is None or not isinstance(request, socket.socket):
            super().finish_request(request, client_address)
            return
        request.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
        connection = tls.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        try:
            connection.do_handshake()
        except (OSError, ValueError) as error:
            log.debug("TLS handshake failed", extra={"client": _host(client_address), "error": str(error)})
            connection.close()
            return
        try:
            super().finish_request(connection, client_address)
        finally:
            with contextlib.suppress(OSError):
                connection.close()

    def handle_error(self, request: object, client_address: object) -> None:
        error = sys.exc_info()[1]
        # Clients that hang up, time out or speak garbage are routine for a server on a network.
        level = logging.DEBUG if isinstance(error, (OSError, ssl.SSLError)) else logging.ERROR
        log.log(
            level,
            "HTTP connection failed",
            extra={"client": _host(client_address), "error": f"{type(error).__name__}: {error}"},
            exc_info=log.isEnabledFor(logging.DEBUG),
        )


def _host(client_address: object) -> str:
    return str(client_address[0]) if isinstance(client_address, tuple) and client_address else str(client_address)
