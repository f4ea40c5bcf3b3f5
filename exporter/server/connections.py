"""Connections: the accept loop with its cap, the deadlines on each connection, and the web config's rate limit,
basic auth and headers on each request.

At most `max_connections` are served at once, each by a pool thread; the rest wait in the kernel's listen backlog.
Request headers have a deadline, idle keep-alive connections are closed, and when the cap is reached while more
connections wait, those that have not yet sent their request headers are dropped first.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler

from OpenSSL import SSL

from exporter.server.stream import Connection, Stream
from exporter.webconfig import WebConfigSource

log = logging.getLogger(__name__)

# Request bodies are never used; up to this much is read and dropped to keep the connection usable.
MAX_DISCARDED_BODY = 65536
# While the connection cap is reached and connections wait in the backlog, a connection that has waited this long
# for its request headers (or its next request) gives its place up.
EVICT_AFTER_SECONDS = 0.25
_PRESSURE_CHECK_SECONDS = 0.05


@dataclass(frozen=True)
class Limits:
    """How long and how many: Go's ReadHeaderTimeout and IdleTimeout, a response deadline, and the connection cap."""

    max_connections: int = 64
    header_timeout: float = 10.0
    idle_timeout: float = 60.0
    response_timeout: float = 30.0


class TimedRequestHandler(BaseHTTPRequestHandler):
    """Reads requests from a `Connection` under its deadlines (headers, then the response, then the idle wait),
    admits them through the web config's rate limit and basic auth, and writes answers with its headers."""

    server: ConnectionServer  # type: ignore[assignment]
    request: Connection
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.connection = self.request  # type: ignore[assignment]
        stream = Stream(self.request)
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
        if self.headers.get("Transfer-Encoding"):
            # A chunked body is never read: the connection cannot carry another request after it.
            self.close_connection = True
            return
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

    def version_string(self) -> str:
        return self.server_version

    def address_string(self) -> str:
        return host_of(self.client_address)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http request", extra={"client": host_of(self.client_address), "request": format % args})


class ConnectionServer:
    """Serves `handler` on the given listening sockets, at most `limits.max_connections` connections at a time."""

    def __init__(
        self,
        sockets: Sequence[socket.socket],
        handler: type[TimedRequestHandler],
        web: WebConfigSource | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.sockets = list(sockets)
        self.handler = handler
        self.web = web or WebConfigSource()
        self.limits = limits or Limits()
        self._slots = threading.BoundedSemaphore(self.limits.max_connections)
        self._pool = ThreadPoolExecutor(self.limits.max_connections, thread_name_prefix="http")
        self._active: set[Connection] = set()
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
        """Where it listens, as `host:port` with IPv6 hosts in brackets (`[::]:10118`, `127.0.0.1:10119`)."""
        return [_address_text(sock.getsockname()) for sock in self.sockets]

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
            connection = Connection(sock, self.web.current(), time.monotonic() + self.limits.header_timeout)
            with self._active_lock:
                self._active.add(connection)
            if self._stopping.is_set():
                return
            connection.handshake()
            self.handler(connection, address, self)  # type: ignore[arg-type]
        except (OSError, SSL.Error) as error:
            # Clients that hang up, time out or speak garbage are routine for a server on a network.
            log.debug("HTTP connection ended", extra={"client": host_of(address), "error": f"{error!r}"})
        except Exception as error:
            log.error(
                "HTTP connection failed", extra={"client": host_of(address), "error": f"{error!r}"}, exc_info=True
            )
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


def host_of(client_address: object) -> str:
    """The host part of a socket address (the whole value when it is not a tuple, as for a Unix socket)."""
    return str(client_address[0]) if isinstance(client_address, tuple) and client_address else str(client_address)


def _address_text(sockname: object) -> str:
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        host, port = str(sockname[0]), sockname[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(sockname)
