"""The HTTP side: listening sockets, bounded connections with TLS and deadlines, content negotiation for /metrics,
and the routes, with the web config's TLS, basic auth, rate limit and headers on every endpoint."""

from exporter.server.connections import Limits
from exporter.server.handler import DESCRIPTION, NAME, App, MetricsServer, ReloadOutcome
from exporter.server.listening import ListenAddressError, bind, parse_listen_address, systemd_sockets
from exporter.server.negotiation import accepts_gzip, accepts_openmetrics

__all__ = [
    "DESCRIPTION",
    "NAME",
    "App",
    "Limits",
    "ListenAddressError",
    "MetricsServer",
    "ReloadOutcome",
    "accepts_gzip",
    "accepts_openmetrics",
    "bind",
    "parse_listen_address",
    "systemd_sockets",
]
