"""The loopback HTTP server the simulator answers on; it records nothing and decides nothing itself."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from exporter.simulator.securityhub import signed_for_securityhub
from exporter.simulator.wire import encode

if TYPE_CHECKING:
    from exporter.simulator.auditmanager import Simulator


class SimulatorServer(ThreadingHTTPServer):
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall for seconds without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (timeouts, resets, refuse_connections) are routine here, not worth a traceback.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def drop_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm the body would wait for the client's
    # delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: SimulatorServer
    arrived = 0.0

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        self.server.untrack(self.connection)
        super().finish()

    def parse_request(self) -> bool:
        self.arrived = time.monotonic()
        return super().parse_request()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = self.rfile.read(length) if length else b""
        simulator = self.server.simulator
        authorization = self.headers.get("Authorization", "")
        account = simulator._account_for(authorization)
        # AWS Config's JSON 1.1 protocol names the operation in X-Amz-Target; Audit Manager's and Security Hub's
        # REST-JSON in the path, told apart by the service the request is signed for.
        amz_target = self.headers.get("X-Amz-Target")
        if amz_target is not None:
            answer, delay = account.awsconfig._answer(amz_target, request, authorization, self.arrived)
        elif signed_for_securityhub(authorization):
            answer, delay = account.securityhub._answer(self.command, self.path, request, authorization, self.arrived)
        else:
            answer, delay = account._answer(self.command, self.path, authorization, self.arrived)
        delay += simulator.latency
        if delay > 0:
            time.sleep(delay)
        body = answer.body if isinstance(answer.body, bytes) else encode(answer.body)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if answer.error_code:
            self.send_header("x-amzn-ErrorType", answer.error_code)
        self.end_headers()
        if answer.reset:
            self.wfile.write(body[: len(body) // 2])
            self._reset()
        else:
            self.wfile.write(body)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _reset(self) -> None:
        # Closing with a zero linger timeout sends RST instead of FIN; the makefile must go first or the
        # socket's file descriptor stays open.
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()
