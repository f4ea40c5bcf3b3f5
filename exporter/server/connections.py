"""Connections: the accept loop with its cap, each connection's plain or TLS stream, and the deadlines on them.

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
from http.server import BaseHTTPRequestHandler

from OpenSSL import SSL

from exporter.webconfig import WebConfig, WebConfigSource

log = logging.getLogger(__name__)

# While the connection cap is reached and connections wait in the backlog, a connection that has waited this long
# for its request headers (or its next request) gives its place up.
EVICT_AFTER_SECONDS = 0.25
_PRESSURE_CHECK_SECONDS = 0.05
_TLS_CHUNK = 16384


@dataclass(frozen=True)
class Limits:
    """How long and how many: Go's ReadHeaderTimeout and IdleTimeout, a response deadline, and the connection cap."""

    max_connections: int = 64
    header_timeout: float = 10.0
    idle_timeout: float = 60.0
    response_timeout: float = 30.0


class Connection:
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

    def __init__(self, connection: Connection) -> None:
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


class TimedRequestHandler(BaseHTTPRequestHandler):
    """Reads requests from a `Connection` under its deadlines: headers, then the response, then the idle wait."""

    server: ConnectionServer  # type: ignore[assignment]
    request: Connection
    protocol_version = "HTTP/1.1"

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
