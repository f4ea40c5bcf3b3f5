"""Where the HTTP server listens: `--web.listen-address` values parsed and bound, or the sockets systemd passed in."""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping

SD_LISTEN_FDS_START = 3


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
