"""The HTTP side: /metrics, /healthz, /readyz, POST /-/reload and a landing page, with the web config's TLS, basic
auth, rate limit and headers on every endpoint.

Connections are bounded: at most `max_connections` are served at once, each by a pool thread; the rest wait in the
kernel's listen backlog. Request headers have a deadline, idle keep-alive connections are closed, and when the cap
is reached while more connections wait, those that have not yet sent their request headers are dropped first.
"""

from __future__ import annotations

import contextlib
import html
import io
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs

from OpenSSL import SSL

from exporter import __version__
from exporter.exposition import Body, Exposition
from exporter.snapshot import SnapshotStore
from exporter.status import Query, StatusProvider, render_html, render_json
from exporter.webconfig import WebConfig, WebConfigSource

log = logging.getLogger(__name__)

NAME = "auditmanager-exporter"
DESCRIPTION = "Prometheus exporter for AWS Audit Manager assessment insights"
# POST bodies are never used; up to this much is read and dropped to keep the connection usable.
MAX_DISCARDED_BODY = 65536
# While the connection cap is reached and connections wait in the backlog, a connection that has waited this long
# for its request headers (or its next request) gives its place up.
EVICT_AFTER_SECONDS = 0.25
_PRESSURE_CHECK_SECONDS = 0.05
_TLS_CHUNK = 16384
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


@dataclass(frozen=True)
class Limits:
    """How long and how many: Go's ReadHeaderTimeout and IdleTimeout, a response deadline, and the connection cap."""

    max_connections: int = 64
    header_timeout: float = 10.0
    idle_timeout: float = 60.0
    response_timeout: float = 30.0


class ListenAddressError(ValueError):
    """A --web.listen-address value, or the systemd sockets, cannot be used."""


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


def bind(address: str) -> socket.socket:
    """A listening socket for a --web.listen-address; an empty host listens on IPv6 and IPv4 where it can."""
    host, port = parse_listen_address(address)
    if host == "" and socket.has_dualstack_ipv6():
        return socket.create_server(("::", port), family=socket.AF_INET6, backlog=socket.SOMAXCONN, dualstack_ipv6=True)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=socket.SOMAXCONN)


SD_LISTEN_FDS_START = 3


def systemd_sockets(environ: MutableMapping[str, str] = os.environ) -> list[socket.socket]:
    """The listening sockets systemd passed in (socket activation: LISTEN_PID, LISTEN_FDS), from fd 3 on."""
    if environ.get("LISTEN_PID") != str(os.getpid()):
        raise ListenAddressError("--web.systemd-socket: no sockets from systemd (LISTEN_PID is not this process)")
    count = environ.get("LISTEN_FDS", "")
    if not count.isdigit() or int(count) < 1:
        raise ListenAddressError("--web.systemd-socket: no sockets from systemd (LISTEN_FDS is not a count above 0)")
    sockets = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)):
        try:
            sock = socket.socket(fileno=fd)
        except OSError as error:
            raise ListenAddressError(f"--web.systemd-socket: fd {fd} is not a socket: {error.strerror}") from None
        if sock.type != socket.SOCK_STREAM:
            raise ListenAddressError(f"--web.systemd-socket: fd {fd} is not a stream socket")
        sockets.append(sock)
    # Children must not take the sockets for theirs.
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        environ.pop(name, None)
    return sockets


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


class _Connection:
    """One accepted connection, plain or TLS, non-blocking underneath, with a deadline on every read and write."""

    def __init__(self, sock: socket.socket, web: WebConfig, deadline: float) -> None:
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # Headers and body go out in separate writes; with Nagle's algorithm the end of the body would wait for
            # the client's delayed ACK of the headers (~40 ms on Linux).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.web = web
        self.deadline = deadline
        # Since when it has waited for a request (None while one is being answered): who gives way under pressure.
        self.waiting_since: float | None = time.monotonic()
        self.tls: SSL.Connection | None = None
        if web.tls is not None:
            self.tls = SSL.Connection(web.tls, sock)
            self.tls.set_accept_state()

    def handshake(self) -> None:
        while self.tls is not None:
            try:
                self.tls.do_handshake()
                return
            except SSL.WantReadError:
                self._wait(select.POLLIN)
            except SSL.WantWriteError:
                self._wait(select.POLLOUT)

    def recv_into(self, buffer: memoryview | bytearray) -> int:
        while True:
            try:
                if self.tls is None:
                    return self.sock.recv_into(buffer)
                return self.tls.recv_into(buffer)
            except (SSL.WantReadError, BlockingIOError):
                self._wait(select.POLLIN)
            except SSL.WantWriteError:
                self._wait(select.POLLOUT)
            except SSL.ZeroReturnError:
                return 0
            except SSL.Error as error:
                raise ConnectionError(f"TLS: {error}") from None

    def sendall(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        while view:
            chunk = view[:_TLS_CHUNK]
            try:
                sent = self.sock.send(chunk) if self.tls is None else self.tls.send(chunk)
            except (SSL.WantWriteError, BlockingIOError):
                self._wait(select.POLLOUT)
                continue
            except SSL.WantReadError:
                self._wait(select.POLLIN)
                continue
            except SSL.Error as error:
                raise ConnectionError(f"TLS: {error}") from None
            view = view[sent:]

    def _wait(self, events: int) -> None:
        remaining = self.deadline - time.monotonic()
        poller = select.poll()
        poller.register(self.sock, events)
        if remaining <= 0 or not poller.poll(remaining * 1000):
            raise TimeoutError("deadline passed")

    def abort(self) -> None:
        """Cut the connection from another thread; its own thread's next wait ends at once."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self.tls is not None:
            with contextlib.suppress(SSL.Error, OSError):
                self.tls.shutdown()
        self.sock.close()


class _Stream(io.RawIOBase):
    """A connection as a file, for the request handler's rfile and wfile."""

    def __init__(self, connection: _Connection) -> None:
        super().__init__()
        self._connection = connection

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        return self._connection.recv_into(buffer)

    def write(self, data: bytes | memoryview) -> int:  # type: ignore[override]
        self._connection.sendall(data)
        return len(data)


OPENMETRICS = "application/openmetrics-text"


def accepts_openmetrics(accept: str) -> bool:
    """Whether an Accept value prefers OpenMetrics 1.x to the text format, as Prometheus's default does.

    OpenMetrics counts when listed without a version or with a 1.x one and a weight above 0, at least as high as
    the best of `text/plain`, `text/*` and `*/*`; without an Accept header, the answer is the text format.
    """
    openmetrics = text = 0.0
    for part in accept.split(","):
        media_type, *params = (item.strip() for item in part.split(";"))
        weight, version = 1.0, ""
        for param in params:
            name, _, value = param.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
            elif name == "version":
                version = value
        media_type = media_type.lower()
        if media_type == OPENMETRICS and (not version or version.split(".")[0] == "1"):
            openmetrics = max(openmetrics, weight)
        elif media_type in ("text/plain", "text/*", "*/*"):
            text = max(text, weight)
    return openmetrics > 0 and openmetrics >= text


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer  # type: ignore[assignment]
    request: _Connection
    protocol_version = "HTTP/1.1"
    server_version = f"{NAME}/{__version__}"

    def setup(self) -> None:
        self.connection = self.request  # type: ignore[assignment]
        stream = _Stream(self.request)
        self._reader = io.BufferedReader(stream, 65536)
        self.rfile = self._reader
        self.wfile = stream  # type: ignore[assignment]
        self._answered = False

    def finish(self) -> None:
        """The server closes the connection."""

    def handle_one_request(self) -> None:
        connection, limits = self.request, self.server.limits
        if self._answered:
            # Keep-alive: wait up to the idle timeout for the next request, then give it the header timeout.
            connection.waiting_since = time.monotonic()
            connection.deadline = time.monotonic() + limits.idle_timeout
            try:
                if not self._reader.peek(1):
                    self.close_connection = True
                    return
            except (TimeoutError, ConnectionError):
                self.close_connection = True
                return
            connection.deadline = time.monotonic() + limits.header_timeout
        self._answered = True
        super().handle_one_request()

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        self.request.waiting_since = None
        self.request.deadline = time.monotonic() + self.server.limits.response_timeout
        return parsed

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        if not self._admitted():
            return
        app = self.server.app
        path, _, query = self.path.partition("?")
        if path == app.telemetry_path:
            openmetrics = accepts_openmetrics(self.headers.get("Accept", ""))
            gzipped = accepts_gzip(self.headers.get("Accept-Encoding", ""))
            try:
                body = app.exposition.body(openmetrics=openmetrics, gzipped=gzipped)
            except Exception as error:
                # A scraper should see a failed scrape, not a connection closed without an answer.
                log.error("cannot render the metrics", extra={"error": f"{type(error).__name__}: {error}"})
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"cannot render the metrics\n")
                return
            self._send_metrics(body)
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
        if not self._admitted():
            return
        app = self.server.app
        if self.path.split("?", 1)[0] != "/-/reload" or app.reload is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n")
            return
        # Both always run: a broken config does not stop the web config from being re-read, nor the other way.
        config_ok = app.reload()
        web_ok = self.server.reload_web_config()
        if config_ok and web_ok:
            self._send(HTTPStatus.OK, b"config reloaded\n")
        else:
            failed = [name for name, ok in (("config", config_ok), ("web config", web_ok)) if not ok]
            body = "".join(f"{name} reload failed; the previous {name} stays in use\n" for name in failed)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, body.encode())

    def _admitted(self) -> bool:
        web = self.request.web
        if web.rate_limit is not None and not web.rate_limit.allow():
            self._send(HTTPStatus.TOO_MANY_REQUESTS, b"Too Many Requests\n")
            return False
        if web.auth is None or web.auth.check(self.headers.get("Authorization")):
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
        self._write(status, content_type, (body,), headers or {})

    def _send_metrics(self, body: Body) -> None:
        """Write the prepared parts one after the other: never joined, so a scrape copies none of them."""
        headers = {"Vary": "Accept, Accept-Encoding"} | ({"Content-Encoding": "gzip"} if body.gzipped else {})
        self._write(HTTPStatus.OK, body.content_type, body.parts, headers)

    def _write(self, status: HTTPStatus, content_type: str, parts: Sequence[bytes], headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(sum(len(part) for part in parts)))
        for name, value in (*self.request.web.headers, *headers.items()):
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            for part in parts:
                self.wfile.write(part)

    do_HEAD = do_GET

    def address_string(self) -> str:
        return _host(self.client_address)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http request", extra={"client": _host(self.client_address), "request": format % args})


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


class MetricsServer:
    """Serves `app` on the given listening sockets, at most `limits.max_connections` connections at a time."""

    def __init__(
        self,
        sockets: Sequence[socket.socket],
        app: App,
        web: WebConfigSource | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.sockets = list(sockets)
        self.app = app
        self.web = web or WebConfigSource()
        self.limits = limits or Limits()
        self._slots = threading.BoundedSemaphore(self.limits.max_connections)
        self._pool = ThreadPoolExecutor(self.limits.max_connections, thread_name_prefix="http")
        self._active: set[_Connection] = set()
        self._active_lock = threading.Lock()
        self._stopping = threading.Event()
        self._serving = False
        self._stopped = threading.Event()
        self._wake_read, self._wake_write = os.pipe()
        for sock in self.sockets:
            sock.setblocking(False)

    @property
    def port(self) -> int:
        """The port of the first socket."""
        return int(self.sockets[0].getsockname()[1])

    @property
    def addresses(self) -> list[str]:
        """Where the server listens: `127.0.0.1:10118`, `[::]:10118`, or the path of a unix socket from systemd."""
        addresses = []
        for sock in self.sockets:
            name = sock.getsockname()
            if isinstance(name, tuple):
                host = f"[{name[0]}]" if sock.family == socket.AF_INET6 else name[0]
                name = f"{host}:{name[1]}"
            addresses.append(str(name))
        return addresses

    def reload_web_config(self) -> bool:
        """Re-read the web config (SIGHUP, /-/reload); a broken one leaves the old one serving."""
        return self.web.reload()

    def serve_forever(self) -> None:
        listeners = {sock.fileno(): sock for sock in self.sockets}
        poller = select.poll()
        for fd in (*listeners, self._wake_read):
            poller.register(fd, select.POLLIN)
        self._serving = True
        try:
            while not self._stopping.is_set():
                if not self._slots.acquire(timeout=_PRESSURE_CHECK_SECONDS):
                    self._give_way_if_pressed(listeners)
                    continue
                if not self._accept_one(poller, listeners):
                    self._slots.release()
        finally:
            self._stopped.set()

    def _accept_one(self, poller: select.poll, listeners: dict[int, socket.socket]) -> bool:
        for fd, _ in poller.poll():
            if fd == self._wake_read:
                return False
            try:
                sock, address = listeners[fd].accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue
            except OSError as error:
                # Out of file descriptors, most likely: wait a little rather than spin.
                log.warning("cannot accept a connection", extra={"error": error.strerror or str(error)})
                time.sleep(0.1)
                return False
            self._pool.submit(self._serve, sock, address)
            return True
        return False

    def _give_way_if_pressed(self, listeners: dict[int, socket.socket]) -> None:
        waiting = select.poll()
        for fd in listeners:
            waiting.register(fd, select.POLLIN)
        if not waiting.poll(0):
            return
        cutoff = time.monotonic() - EVICT_AFTER_SECONDS
        with self._active_lock:
            idle = [c for c in self._active if c.waiting_since is not None and c.waiting_since <= cutoff]
        for connection in idle:
            connection.abort()

    def _serve(self, sock: socket.socket, address: object) -> None:
        connection = None
        try:
            connection = _Connection(sock, self.web.current(), time.monotonic() + self.limits.header_timeout)
            with self._active_lock:
                self._active.add(connection)
            if self._stopping.is_set():
                return
            connection.handshake()
            _Handler(connection, address, self)  # type: ignore[arg-type]
        except (OSError, SSL.Error) as error:
            # Clients that hang up, time out or speak garbage are routine for a server on a network.
            log.debug("HTTP connection ended", extra={"client": _host(address), "error": f"{error!r}"})
        except Exception as error:
            log.error("HTTP connection failed", extra={"client": _host(address), "error": f"{error!r}"}, exc_info=True)
        finally:
            if connection is not None:
                with self._active_lock:
                    self._active.discard(connection)
                connection.close()
            else:
                sock.close()
            self._slots.release()

    def shutdown(self) -> None:
        """Stop accepting and wait for the accept loop to end; open connections are cut."""
        self._stopping.set()
        os.write(self._wake_write, b"x")
        with self._active_lock:
            active = list(self._active)
        for connection in active:
            connection.abort()
        if self._serving:
            self._stopped.wait()

    def server_close(self) -> None:
        self._stopping.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for sock in self.sockets:
            sock.close()
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)


def _host(client_address: object) -> str:
    return str(client_address[0]) if isinstance(client_address, tuple) and client_address else str(client_address)
