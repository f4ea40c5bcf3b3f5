from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator

import pytest

from exporter.collector import Exposition
from exporter.server import App, ListenAddressError, MetricsServer, accepts_gzip, bind, parse_listen_address
from exporter.snapshot import ApiCounters, AssessmentState, Insights, Snapshot, SnapshotStore
from tests.conftest import http_get, parse_metrics, uuid

STATE = AssessmentState("111122223333", "us-east-1", uuid(1), "SOC 2", Insights(1, 2, 3, 4, 5, 1.0e9), True, 2.0e9)


@pytest.fixture
def serve() -> Iterator:
    servers: list[MetricsServer] = []

    def start(store: SnapshotStore, telemetry_path: str = "/metrics", reload=None) -> str:
        server = MetricsServer(
            [bind("127.0.0.1:0")], App(Exposition(store, ApiCounters()), store, telemetry_path, reload)
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_readyz_is_503_until_the_first_cycle_then_200(serve):
    store = SnapshotStore()
    url = serve(store)
    assert http_get(url + "/readyz")[0] == 503
    assert http_get(url + "/healthz")[0] == 200
    store.publish(Snapshot((STATE,), completed_cycles=1))
    assert http_get(url + "/readyz")[0] == 200


def test_metrics_are_served_on_the_telemetry_path_only(serve):
    url = serve(SnapshotStore(Snapshot((STATE,), completed_cycles=1)), telemetry_path="/custom")
    status, body, headers = http_get(url + "/custom")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert (
        "auditmanager_assessment_controls",
        frozenset(
            {
                ("account_id", "111122223333"),
                ("region", "us-east-1"),
                ("assessment_id", uuid(1)),
                ("assessment_name", "SOC 2"),
            }
        ),
    ) in parse_metrics(body.decode())
    assert http_get(url + "/metrics")[0] == 404


def test_gzip_is_served_when_asked_for(serve):
    url = serve(SnapshotStore(Snapshot((STATE,), completed_cycles=1)))
    status, body, headers = http_get(url + "/metrics", {"Accept-Encoding": "gzip"})
    assert (status, headers.get("Content-Encoding")) == (200, "gzip")
    assert b"auditmanager_assessment_controls{" in gzip.decompress(body)
    _, plain, plain_headers = http_get(url + "/metrics")
    assert "Content-Encoding" not in plain_headers
    assert b"auditmanager_assessment_controls{" in plain


def test_landing_page_links_the_metrics(serve):
    status, body, headers = http_get(serve(SnapshotStore(), telemetry_path="/m") + "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert b'href="/m"' in body


def test_unknown_paths_are_404(serve):
    assert http_get(serve(SnapshotStore()) + "/nope")[0] == 404


@pytest.mark.parametrize(
    ("address", "expected"),
    [(":10118", ("", 10118)), ("127.0.0.1:9", ("127.0.0.1", 9)), ("[::1]:80", ("::1", 80)), ("host:0", ("host", 0))],
)
def test_listen_addresses_parse(address, expected):
    assert parse_listen_address(address) == expected


@pytest.mark.parametrize("address", ["10118", "localhost", ":http", ":70000", "::1:80", ""])
def test_bad_listen_addresses_are_rejected(address):
    with pytest.raises(ListenAddressError):
        parse_listen_address(address)


@pytest.mark.parametrize(
    ("accept_encoding", "gzip_wanted"),
    [
        ("gzip", True),
        ("gzip, deflate", True),
        ("deflate, gzip;q=0.5", True),
        ("GZIP", True),
        ("*", True),
        ("", False),
        ("identity", False),
        ("gzip;q=0", False),
        ("gzip; q=0.0, identity", False),
        ("*;q=0", False),
        ("*, gzip;q=0", False),
        ("gzip;q=nonsense", False),
    ],
)
def test_gzip_is_chosen_by_accept_encoding_weights(accept_encoding, gzip_wanted):
    assert accepts_gzip(accept_encoding) is gzip_wanted
