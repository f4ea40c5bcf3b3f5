from __future__ import annotations

import gzip
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from exporter.exposition import Exposition
from exporter.server import (
    App,
    ListenAddressError,
    MetricsServer,
    accepts_gzip,
    accepts_openmetrics,
    parse_listen_address,
)
from exporter.snapshot import ApiCounters, AssessmentState, Insights, Snapshot, SnapshotStore
from tests.conftest import http_get, parse_metrics, uuid

STATE = AssessmentState("111122223333", "us-east-1", uuid(1), "SOC 2", Insights(1, 2, 3, 4, 5, 1.0e9), True, 2.0e9)


@pytest.fixture
def serve() -> Iterator:
    servers: list[MetricsServer] = []

    def start(store: SnapshotStore, telemetry_path: str = "/metrics", reload=None) -> str:
        server = MetricsServer(("127.0.0.1", 0), App(Exposition(store, ApiCounters()), store, telemetry_path, reload))
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


# What Prometheus 2.x sends by default (scrape_protocols of 3.x add text/plain;version=1.0.0 in between).
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.mark.parametrize("accept_encoding", ["", "gzip"])
def test_openmetrics_is_served_to_a_scraper_that_asks_for_it_like_prometheus(serve, accept_encoding):
    url = serve(SnapshotStore(Snapshot((STATE,), completed_cycles=1)))
    status, body, headers = http_get(
        url + "/metrics", {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": accept_encoding}
    )
    assert status == 200
    assert headers["Content-Type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert headers.get("Content-Encoding") == (accept_encoding or None)
    text = (gzip.decompress(body) if accept_encoding else body).decode()
    assert text.endswith("# EOF\n")
    families = {family.name: family for family in parse_openmetrics(text)}
    assert families["auditmanager_api_requests"].type == "counter"
    assert families["auditmanager_assessment_controls"].samples[0].value == 5


def test_head_of_the_metrics_announces_the_length_of_the_body_it_would_send(serve):
    url = serve(SnapshotStore(Snapshot((STATE,), completed_cycles=1)))
    body = http_get(url + "/metrics")[1]
    request = urllib.request.Request(url + "/metrics", method="HEAD")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.read() == b""
        assert int(response.headers["Content-Length"]) == len(body) > 0


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        (PROMETHEUS_ACCEPT, True),
        ("application/openmetrics-text", True),
        ("Application/OpenMetrics-Text; version=1.0.0", True),
        ("text/plain;q=0.5, application/openmetrics-text;q=0.5", True),
        ("", False),
        ("*/*", False),
        ("text/plain", False),
        ("text/plain;version=0.0.4", False),
        ("application/openmetrics-text;q=0", False),
        ("application/openmetrics-text;version=2.0.0", False),
        ("application/openmetrics-text;q=0.4, */*", False),
        ("application/openmetrics-text;q=nonsense", False),
    ],
)
def test_openmetrics_is_chosen_by_accept_weights_and_version(accept, openmetrics):
    assert accepts_openmetrics(accept) is openmetrics


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
