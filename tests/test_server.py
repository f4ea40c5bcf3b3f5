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
    ReloadOutcome,
    accepts_gzip,
    accepts_openmetrics,
    bind,
    parse_listen_address,
)
from exporter.snapshot import ApiCounters, SnapshotStore
from exporter.sources.auditmanager.state import AssessmentState, Insights
from tests.conftest import ROOT, audit_manager_snapshot, eventually, free_port, http_get, insights, parse_metrics, uuid

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

    def start(
        store: SnapshotStore, telemetry_path: str = "/metrics", reload=None, limits: Limits | None = None, status=None
    ) -> str:
        app = App(Exposition(store, ApiCounters()), store, telemetry_path, reload, status)
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
    store.publish(audit_manager_snapshot(assessments=(STATE,), completed_cycles=1))
    assert http_get(url + "/readyz")[0] == 200


def test_metrics_are_served_on_the_telemetry_path_only(serve):
    url = serve(
        SnapshotStore(audit_manager_snapshot(assessments=(STATE,), completed_cycles=1)), telemetry_path="/custom"
    )
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
    url = serve(SnapshotStore(audit_manager_snapshot(assessments=(STATE,), completed_cycles=1)))
    status, body, headers = http_get(url + "/metrics", {"Accept-Encoding": "gzip"})
    assert (status, headers.get("Content-Encoding")) == (200, "gzip")
    assert b"auditmanager_assessment_controls{" in gzip.decompress(body)
    _, plain, plain_headers = http_get(url + "/metrics")
    assert "Content-Encoding" not in plain_headers
    assert b"auditmanager_assessment_controls{" in plain


# What Prometheus 2.x before scrape_protocols (2.49) sends by default.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.mark.parametrize("accept_encoding", ["", "gzip"])
def test_openmetrics_is_served_to_a_scraper_that_asks_for_it_like_prometheus(serve, accept_encoding):
    url = serve(SnapshotStore(audit_manager_snapshot(assessments=(STATE,), completed_cycles=1)))
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
    url = serve(SnapshotStore(audit_manager_snapshot(assessments=(STATE,), completed_cycles=1)))
    body = http_get(url + "/metrics")[1]
    request = urllib.request.Request(url + "/metrics", method="HEAD")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.read() == b""
        assert int(response.headers["Content-Length"]) == len(body) > 0


# The Accept headers Prometheus sends (scrape/scrape.go acceptHeader, config/config.go ScrapeProtocolsHeaders): each
# scrape protocol in order with q=0.<n> counting down from 0.6, then */*; 3.x adds escaping= to the 1.0.0 formats.
PROMETHEUS_SCRAPES = {
    "2.x before scrape_protocols": PROMETHEUS_ACCEPT,
    "2.49+ default scrape_protocols": "application/openmetrics-text;version=1.0.0;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
    "2.49+ native histograms (protobuf first)": "application/vnd.google.protobuf;"
    "proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,"
    "application/openmetrics-text;version=0.0.1;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
    "3.0 default, UTF-8 names": "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;escaping=allow-utf-8;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;escaping=allow-utf-8;q=0.3,*/*;q=0.2",
    "3.x default": "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
    "3.x legacy names": "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=underscores;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
    "3.x protobuf first": "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;"
    "q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
    "text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
}
# scrape_protocols that leave OpenMetrics 1.0.0 out: the text format, as prometheus_client answers them.
PROMETHEUS_TEXT_SCRAPES = {
    "scrape_protocols [PrometheusText0.0.4]": "text/plain;version=0.0.4;q=0.6,*/*;q=0.5",
    "scrape_protocols [PrometheusText1.0.0, PrometheusText0.0.4]": "text/plain;version=1.0.0;escaping=allow-utf-8;"
    "q=0.6,text/plain;version=0.0.4;q=0.5,*/*;q=0.4",
    "scrape_protocols [OpenMetricsText0.0.1, PrometheusText0.0.4]": "application/openmetrics-text;version=0.0.1;q=0.6,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.4",
    "scrape_protocols [PrometheusText0.0.4, OpenMetricsText1.0.0]": "text/plain;version=0.0.4;q=0.6,"
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,*/*;q=0.4",
}
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        *((pytest.param(accept, OPENMETRICS_TYPE, id=name) for name, accept in PROMETHEUS_SCRAPES.items())),
        *((pytest.param(accept, TEXT_TYPE, id=name) for name, accept in PROMETHEUS_TEXT_SCRAPES.items())),
    ],
)
def test_prometheus_2_and_3_scrapes_get_openmetrics_unless_their_scrape_protocols_leave_it_out(
    serve, accept, content_type
):
    url = serve(SnapshotStore(audit_manager_snapshot(assessments=(STATE,), completed_cycles=1)))
    status, body, headers = http_get(url + "/metrics", {"Accept": accept, "Accept-Encoding": "gzip"})
    assert (status, headers["Content-Type"], headers["Content-Encoding"]) == (200, content_type, "gzip")
    assert gzip.decompress(body).endswith(b"# EOF\n") is (content_type == OPENMETRICS_TYPE)


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        (PROMETHEUS_ACCEPT, True),
        ("application/openmetrics-text", True),
        ("Application/OpenMetrics-Text; version=1.0.0", True),
        ('application/openmetrics-text; version="1.0.0"', True),
        ("application/openmetrics-text;version=1", True),
        ("application/openmetrics-text;version=2.0.0", True),
        ("application/openmetrics-text;version=1.0.0;escaping=values", True),
        ("application/openmetrics-text;escaping=allow-utf-8;version=1.0.0;q=0.9, text/plain;q=0.9", True),
        ("text/plain;q=0.5, application/openmetrics-text;q=0.5", True),
        ("application/openmetrics-text;version=0.0.1", False),
        ("application/openmetrics-text; version=0.0.1; charset=utf-8", False),
        ("application/openmetrics-text;version=0.9.9;q=1, text/plain;q=0.1", False),
        ("application/openmetrics-text;version=next", False),
        ("", False),
        ("*/*", False),
        ("text/plain", False),
        ("text/plain;version=0.0.4", False),
        ("text/plain;version=1.0.0;escaping=allow-utf-8", False),
        ("application/json", False),
        ("application/openmetrics-text;q=0", False),
        ("application/openmetrics-text;version=1.0.0;q=0, text/plain;q=0", False),
        ("application/openmetrics-text;q=0.4, */*", False),
        ("application/openmetrics-text;q=nonsense", False),
    ],
)
def test_openmetrics_is_chosen_by_accept_weights_and_prometheus_clients_version_rule(accept, openmetrics):
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
    url = serve(SnapshotStore(audit_manager_snapshot(assessments=(STATE,), completed_cycles=1)))
    for accept in ("gzip", "identity"):
        _, _, headers = http_get(url + "/metrics", {"Accept-Encoding": accept})
        assert headers["Vary"] == "Accept, Accept-Encoding"
        assert headers["Server"] == f"auditmanager-exporter/{__version__}"
    _, _, headers = http_get(url + "/healthz")
    assert "Vary" not in headers
    assert headers["Server"] == headers["Server"].strip()


def test_unknown_paths_are_404(serve):
    url = serve(SnapshotStore())
    assert http_get(url + "/nope")[0] == 404
    assert request(url + "/nope", "POST")[0] == 404


def request(url: str, method: str) -> tuple[int, bytes, dict[str, str]]:
    """Any method, with an empty body for those that carry one; the answer whatever its status."""
    data = b"" if method in ("POST", "PUT", "PATCH") else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, method=method), timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/-/reload", "POST, PUT"),
        ("HEAD", "/-/reload", "POST, PUT"),
        ("DELETE", "/-/reload", "POST, PUT"),
        ("POST", "/metrics", "GET, HEAD"),
        ("PUT", "/metrics", "GET, HEAD"),
        ("POST", "/status", "GET, HEAD"),
        ("POST", "/healthz", "GET, HEAD"),
        ("PATCH", "/readyz", "GET, HEAD"),
        ("POST", "/", "GET, HEAD"),
    ],
)
def test_a_known_path_asked_with_a_method_it_does_not_take_is_405_with_allow(serve, method, path, allow):
    url = serve(SnapshotStore(audit_manager_snapshot(assessments=(STATE,), completed_cycles=1)), status=lambda: None)
    status, body, headers = request(url + path, method)
    assert (status, headers["Allow"]) == (405, allow)
    assert method == "HEAD" or body == f"{path} takes {allow.replace(', ', ' or ')}\n".encode()


def test_a_chunked_request_body_is_answered_and_the_connection_then_closed(serve):
    url = serve(SnapshotStore(), reload=ReloadOutcome)
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=10) as sock:
        sock.sendall(b"POST /-/reload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"config reloaded\n")


def test_the_server_names_its_addresses_as_host_port_with_ipv6_in_brackets():
    sockets = [bind("127.0.0.1:0"), bind(":0")]
    server = MetricsServer(sockets, App(Exposition(SnapshotStore(), ApiCounters()), SnapshotStore()))
    try:
        ports = [sock.getsockname()[1] for sock in sockets]
        every = "[::]" if socket.has_dualstack_ipv6() else "0.0.0.0"
        assert server.addresses == [f"127.0.0.1:{ports[0]}", f"{every}:{ports[1]}"]
    finally:
        server.server_close()


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_reload_is_taken_by_post_and_put_as_prometheus_does(serve, method):
    reloads: list[str] = []
    url = serve(SnapshotStore(), reload=lambda: reloads.append(method) or ReloadOutcome())
    assert request(url + "/-/reload", method)[:2] == (200, b"config reloaded\n")
    assert reloads == [method]


def test_a_failed_reload_answers_500_with_each_problem_on_its_own_line(serve):
    problems = ("config.yml: poll_interval: must be a duration", "config.yml: targets[0].bogus: unknown key")
    url = serve(SnapshotStore(), reload=lambda: ReloadOutcome(problems=problems))
    status, body, _ = request(url + "/-/reload", "POST")
    assert status == 500
    assert body.decode().splitlines() == ["config reload failed; the previous config stays in use:", *problems]


def test_without_a_config_file_reload_re_reads_the_web_config_and_says_so(serve):
    status, body, _ = request(serve(SnapshotStore(), reload=None) + "/-/reload", "POST")
    assert status == 200
    assert b"--demo has no config file" in body and b"web config reloaded" in body


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
    """Waits until the server closes the connection (reads to the end of the stream); False if it never does."""
    sock.settimeout(60)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


def still_open(sock: socket.socket) -> bool:
    """Whether the server has not closed the connection, without waiting."""
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except ConnectionError:
        return False
    finally:
        sock.setblocking(True)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


# Each test opens its connection to a server whose limit is an hour first, then to one whose limit is half a second,
# and waits for the second to be closed: the first being still open then shows the configured limit closed it, with no
# assertion on how long anything took.


def test_a_request_whose_headers_never_finish_is_dropped_after_the_header_timeout(serve):
    patient = serve(SnapshotStore(), limits=Limits(header_timeout=3600))
    strict = serve(SnapshotStore(), limits=Limits(header_timeout=0.5))
    unfinished = b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
    with (
        socket.create_connection(("127.0.0.1", port_of(patient))) as waited_for,
        socket.create_connection(("127.0.0.1", port_of(strict))) as slow,
    ):
        waited_for.sendall(unfinished)
        slow.sendall(unfinished)
        assert closed_by_server(slow)
        assert still_open(waited_for)
        # The patient server still answers once the headers end.
        waited_for.sendall(b"\r\n")
        waited_for.settimeout(10)
        assert waited_for.recv(65536).startswith(b"HTTP/1.1 200 OK")


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(serve):
    patient = serve(SnapshotStore(), limits=Limits(idle_timeout=3600))
    strict = serve(SnapshotStore(), limits=Limits(idle_timeout=0.5))
    connections = [http.client.HTTPConnection("127.0.0.1", port_of(url), timeout=10) for url in (patient, strict)]
    for connection in connections:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"OK\n")
        assert response.getheader("Connection") != "close"
    kept, idle = connections
    assert idle.sock is not None and kept.sock is not None
    assert closed_by_server(idle.sock)
    assert still_open(kept.sock)
    # The kept connection still serves its next request.
    kept.request("GET", "/healthz")
    assert kept.getresponse().status == 200
    for connection in connections:
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

        def healthy() -> bool:
            assert process.poll() is None, (tmp_path / "exporter.log").read_text()
            return http_get(f"http://127.0.0.1:{port}/healthz", timeout=5)[0] == 200

        eventually(
            healthy,
            what="/healthz on the socket from systemd",
            timeout=60,
            ignoring=(OSError,),
            detail=(tmp_path / "exporter.log").read_text,
        )
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
