"""The HTTP side: /metrics, /healthz, /readyz, POST /-/reload and a landing page, on a threading server."""

from __future__ import annotations

import html
import logging
import socket
import socketserver
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from exporter import __version__
from exporter.collector import Exposition
from exporter.snapshot import SnapshotStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class App:
    """What the HTTP layer serves, passed in whole so tests can build it from real parts."""

    exposition: Exposition
    store: SnapshotStore
    telemetry_path: str = "/metrics"
    reload: Callable[[], bool] | None = None


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


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer
    protocol_version = "HTTP/1.1"
    server_version = f"auditmanager-exporter/{__version__}"
    sys_version = ""
    # Slow or silent clients lose their connection instead of holding a thread forever.
    timeout = 30

    def do_GET(self) -> None:
        app = self.server.app
        path = self.path.split("?", 1)[0]
        if path == app.telemetry_path:
            gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
            body = app.exposition.render(gzipped=gzipped)
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
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n")

    def do_POST(self) -> None:
        app = self.server.app
        if self.path.split("?", 1)[0] != "/-/reload" or app.reload is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n")
        elif app.reload():
            self._send(HTTPStatus.OK, b"config reloaded\n")
        else:
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"config reload failed; the previous config stays in use\n")

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
        '<li><a href="/readyz">Readiness</a></li></ul></body></html>\n'
    ).encode()


class MetricsServer(ThreadingHTTPServer):
    """A threading HTTP server bound to the listen address; every connection gets its own daemon thread."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App) -> None:
        host, port = address
        self.app = app
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
