from __future__ import annotations

import gzip
import http.client
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from exporter import __version__
from exporter.exposition import Exposition
from exporter.server import (
    App,
    Limits,
    ListenAddressError,
    MetricsServer,
    accepts_gzip,
    accepts_openmetrics,
    bind,
    parse_listen_address,
)
from exporter.snapshot import ApiCounters, AssessmentState, Insights, Snapshot, SnapshotStore
from tests.conftest import ROOT, free_port, http_get, insights, parse_metrics, uuid

STATE = AssessmentState(
    account_id="111122223333",
    region="us-east-1",
    assessment_id=uuid(1),
    name="SOC 2",
    insights=Insights(1, 2, 3, 4, 5, 1.0e9),
    poll_success=True,
    last_success=2.0e9,
)


@pytest.fixture
def serve() -> Iterator:
    servers: list[MetricsServer] = []

    def start(store: SnapshotStore, telemetry_path: str = "/metrics", reload=None, limits: Limits | None = None) -> str:
        app = App(Exposition(store, ApiCounters()), store, telemetry_path, reload)
        server = MetricsServer([bind("127.0.0.1:0")], app, limits=limits)
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


def test_landing_page_names_the_exporter_and_links_metrics_health_and_status(serve):
    status, body, headers = http_get(serve(SnapshotStore(), telemetry_path="/m") + "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    for part in (b'href="/m"', b'href="/healthz"', b'href="/readyz"', b'href="/status"', b"auditmanager-exporter"):
        assert part in body
    assert f"Version: {__version__}".encode() in body
    assert b"Prometheus exporter for AWS Audit Manager" in body


def test_metrics_responses_vary_by_accept_and_accept_encoding_and_the_server_header_has_no_stray_space(serve):
    url = serve(SnapshotStore(Snapshot((STATE,), completed_cycles=1)))
    for accept in ("gzip", "identity"):
        _, _, headers = http_get(url + "/metrics", {"Accept-Encoding": accept})
        assert headers["Vary"] == "Accept, Accept-Encoding"
        assert headers["Server"] == f"auditmanager-exporter/{__version__}"
    _, _, headers = http_get(url + "/healthz")
    assert "Vary" not in headers
    assert headers["Server"] == headers["Server"].strip()


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


# ---- bounded connections


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes the connection (reads until end of stream, within the socket's timeout)."""
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


def test_a_request_whose_headers_never_finish_is_dropped_after_the_header_timeout(serve):
    url = serve(SnapshotStore(), limits=Limits(header_timeout=0.5))
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as slow:
        slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        assert closed_by_server(slow)


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(serve):
    url = serve(SnapshotStore(), limits=Limits(idle_timeout=0.5))
    connection = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=30)
    connection.request("GET", "/healthz")
    response = connection.getresponse()
    assert (response.status, response.read()) == (200, b"OK\n")
    assert response.getheader("Connection") != "close"
    assert connection.sock is not None
    assert closed_by_server(connection.sock)
    connection.close()


def process_threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


def test_a_thousand_unfinished_requests_keep_threads_within_the_cap_and_a_scrape_still_answered(
    simulator, run_exporter
):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    config = {
        "poll_interval": "1h",
        "targets": [{"region": "us-east-1", "endpoint_url": simulator.url, "assessments": [{"id": uuid(1)}]}],
    }
    exporter = run_exporter(config)
    pid, port = exporter.process.pid, int(exporter.url.rsplit(":", 1)[1])
    baseline = process_threads(pid)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    slow: list[socket.socket] = []
    most = [baseline]
    sampling = threading.Event()

    def sample_threads() -> None:
        while not sampling.is_set():
            most.append(process_threads(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample_threads)
    sampler.start()
    try:
        for _ in range(1000):
            sock = socket.create_connection(("127.0.0.1", port), timeout=60)
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            slow.append(sock)
        status, body, _ = http_get(exporter.url + "/metrics", timeout=60)
        assert status == 200
        assert b"auditmanager_assessment_controls{" in body
    finally:
        sampling.set()
        sampler.join()
        for sock in slow:
            sock.close()
    assert max(most) <= baseline + 64 + 4, (baseline, max(most))
    assert exporter.process.poll() is None


# ---- listening


def test_every_listen_address_serves(simulator, run_exporter, tmp_path):
    second = free_port()
    exporter = run_exporter(None, "--demo", "--web.listen-address", f"127.0.0.1:{second}")
    assert http_get(exporter.url + "/healthz")[0] == 200
    assert http_get(f"http://127.0.0.1:{second}/healthz")[0] == 200


def test_the_systemd_socket_is_served_when_passed_in(tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    fd = listener.fileno()
    # What systemd does: the socket as fd 3, LISTEN_PID set to the pid that then execs the exporter.
    launcher = (
        "import os, sys; os.dup2(int(sys.argv[1]), 3); "
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1'); "
        "os.execv(sys.executable, [sys.executable, '-m', 'exporter', *sys.argv[2:]])"
    )
    log = (tmp_path / "exporter.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", launcher, str(fd), "--demo", "--web.systemd-socket"],
        pass_fds=(fd,),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    listener.close()
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "exporter.log").read_text()
            try:
                if http_get(f"http://127.0.0.1:{port}/healthz", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "exporter.log").read_text()
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(30)
        log.close()


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        (["--web.systemd-socket"], {}, "--web.systemd-socket: no sockets from systemd"),
        (["--web.systemd-socket"], {"LISTEN_PID": "1", "LISTEN_FDS": "1"}, "LISTEN_PID is not this process"),
        (["--web.max-connections", "0"], {}, "--web.max-connections 0 must be from 1 to 100000"),
        (["--web.listen-address", "127.0.0.1:1", "--web.listen-address", "nope"], {}, "invalid listen address 'nope'"),
    ],
)
def test_bad_listening_flags_are_one_line_and_exit_2(flags, env, message):
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--demo", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("LISTEN_")} | env,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert message in lines[-1], result.stderr
    assert "Traceback" not in result.stderr
