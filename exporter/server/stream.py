"""One accepted connection as a stream: plain or TLS (pyOpenSSL), non-blocking underneath, with a deadline on every
read and write, and a file view of it for the request handler."""

from __future__ import annotations

import contextlib
import io
import select
import socket
import time

from OpenSSL import SSL

from exporter.webconfig import WebConfig

_TLS_CHUNK = 16384


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


class Stream(io.RawIOBase):
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
