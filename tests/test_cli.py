"""End to end: the real `auditmanager-exporter` process against the simulator, over real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from exporter.simulator import Fault, Simulator
from tests.conftest import ROOT, eventually, free_port, http_get, insights, sample, series, uuid

ODD_NAME = 'Prod "PCI", Zürich'
ACCOUNT = "123456789012"


def config_for(sim: Simulator, assessments: list[dict], **settings: object) -> dict:
    return {
        "poll_interval": "1h",
        **settings,
        "targets": [{"region": "us-east-1", "endpoint_url": sim.url, "assessments": assessments}],
    }


def labels(n: int, name: str) -> dict[str, str]:
    return {"account_id": ACCOUNT, "region": "us-east-1", "assessment_id": uuid(n), "assessment_name": name}


def test_every_value_and_label_of_several_assessments_is_published(simulator, run_exporter):
    simulator.add_assessment("us-east-1", uuid(1), ODD_NAME, insights=insights(7, 70, 3, 2, 40))
    simulator.add_assessment("us-east-1", uuid(2), "AWS name", insights=insights(0, 12, 1, 0, 9))
    simulator.add_assessment("us-east-1", uuid(3), "Partial", insights=insights(None, 5, None, None, 6))
    exporter = run_exporter(
        config_for(simulator, [{"id": uuid(1)}, {"id": uuid(2), "name": "Configured"}, {"id": uuid(3)}])
    )
    samples = exporter.scrape()
    last_updated = insights().last_updated.timestamp()
    for n, name, (noncompliant, compliant, inconclusive, noncompliant_controls, controls) in (
        (1, ODD_NAME, (7, 70, 3, 2, 40)),
        (2, "Configured", (0, 12, 1, 0, 9)),
    ):
        these = labels(n, name)
        assert sample(samples, "auditmanager_assessment_evidence", **these, compliance="noncompliant") == noncompliant
        assert sample(samples, "auditmanager_assessment_evidence", **these, compliance="compliant") == compliant
        assert sample(samples, "auditmanager_assessment_evidence", **these, compliance="inconclusive") == inconclusive
        assert sample(samples, "auditmanager_assessment_noncompliant_controls", **these) == noncompliant_controls
        assert sample(samples, "auditmanager_assessment_controls", **these) == controls
        assert (
            sample(samples, "auditmanager_assessment_insights_last_updated_timestamp_seconds", **these) == last_updated
        )
        assert sample(samples, "auditmanager_assessment_poll_success", **these) == 1
        assert sample(samples, "auditmanager_assessment_last_poll_success_timestamp_seconds", **these) == pytest.approx(
            time.time(), abs=60
        )
    partial = labels(3, "Partial")
    assert sample(samples, "auditmanager_assessment_evidence", **partial, compliance="compliant") == 5
    assert sample(samples, "auditmanager_assessment_evidence", **partial, compliance="noncompliant") is None
    assert sample(samples, "auditmanager_assessment_noncompliant_controls", **partial) is None
    assert (
        sample(samples, "auditmanager_api_requests_total", operation="GetInsightsByAssessment", region="us-east-1") == 3
    )
    assert series(samples, "auditmanager_api_errors_total") == []
    assert sample(samples, "auditmanager_poll_duration_seconds", region="us-east-1") > 0
    assert sample(samples, "auditmanager_exporter_build_info", version="0.1.0") == 1
    assert sample(samples, "process_resident_memory_bytes") > 0
    assert any(name.startswith("python_") for name, _ in samples)


def test_scrapes_never_call_aws(simulator, run_exporter):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    exporter = run_exporter(config_for(simulator, [{"id": uuid(1)}]))
    before = simulator.count()
    for _ in range(5):
        exporter.scrape()
    assert simulator.count() == before


def test_polls_repeat_every_poll_interval(simulator, run_exporter):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights(noncompliant=1))
    exporter = run_exporter(config_for(simulator, [{"id": uuid(1)}], poll_interval="1s"))
    simulator.set_insights("us-east-1", uuid(1), insights(noncompliant=9))
    eventually(
        lambda: sample(
            exporter.scrape(), "auditmanager_assessment_evidence", **labels(1, "A1"), compliance="noncompliant"
        ),
        lambda value: value == 9,
        what="the next poll's value",
        timeout=15,
        detail=exporter.logs,
    )
    assert simulator.count("GetAssessment") == 1


def test_an_account_denied_from_the_start_shows_failed_polls_per_assessment(simulator, run_exporter):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    simulator.add_fault(Fault("error", code="AccessDeniedException"))
    exporter = run_exporter(config_for(simulator, [{"id": uuid(1), "name": "A1"}], max_attempts=1))
    samples = exporter.scrape()
    # The account is unknown until a call about it succeeds; to Prometheus, an empty label is no label.
    unknown = {"account_id": "", "region": "us-east-1", "assessment_id": uuid(1), "assessment_name": "A1"}
    assert sample(samples, "auditmanager_assessment_poll_success", **unknown) == 0
    assert series(samples, "auditmanager_assessment_evidence") == []
    errors = {"operation": "GetAssessment", "region": "us-east-1", "error_code": "AccessDeniedException"}
    assert sample(samples, "auditmanager_api_errors_total", **errors) >= 1
    simulator.clear_faults()
    assert exporter.stop() == 0


def test_readyz_answers_503_until_the_first_cycle_has_finished(simulator, run_exporter):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    simulator.latency = 2.0
    exporter = run_exporter(config_for(simulator, [{"id": uuid(1), "name": "A1"}]), wait="healthy")
    assert http_get(exporter.url + "/readyz")[0] == 503
    assert http_get(exporter.url + "/healthz")[0] == 200
    exporter.wait_ready(timeout=30)
    assert http_get(exporter.url + "/readyz")[0] == 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_exits_0_within_5_seconds_even_mid_poll(simulator, run_exporter, sig):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    # The simulator records a request when it arrives and answers this one a minute later: once it is recorded,
    # the poll is waiting for it.
    simulator.add_fault(Fault("latency", operation="GetInsightsByAssessment", seconds=60))
    exporter = run_exporter(config_for(simulator, [{"id": uuid(1), "name": "A1"}]), wait="healthy")
    eventually(
        lambda: simulator.count("GetInsightsByAssessment"), what="the poll's request to arrive", detail=exporter.logs
    )
    started = time.monotonic()
    assert exporter.stop(sig, timeout=5.0) == 0
    assert time.monotonic() - started < 5.0
    assert "Traceback" not in exporter.logs()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_during_start_up_exits_0(tmp_path, sig):
    # Reading a FIFO blocks until someone writes: start-up is stuck in loading the config when the signal comes.
    fifo = tmp_path / "config.yml"
    os.mkfifo(fifo)
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--config.file", str(fifo), "--web.listen-address", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    # Opening succeeds only once the exporter has opened the FIFO for reading.
    writer = eventually(
        lambda: os.open(fifo, os.O_WRONLY | os.O_NONBLOCK),
        lambda fd: True,
        what="the exporter to open its config",
        interval=0.05,
        ignoring=(OSError,),
    )
    try:
        process.send_signal(sig)
        assert process.wait(timeout=30) == 0
        assert b"Traceback" not in process.stderr.read()
    finally:
        os.close(writer)


def test_demo_mode_needs_no_aws_account(run_exporter):
    exporter = run_exporter(None, "--demo")
    samples = exporter.scrape()
    regions = {s["region"] for s in series(samples, "auditmanager_assessment_poll_success")}
    assert regions == {"us-east-1", "eu-west-1"}
    assert ODD_NAME in {s["assessment_name"] for s in series(samples, "auditmanager_assessment_controls")}
    assert all(v == 1 for (name, _), v in samples.items() if name == "auditmanager_assessment_poll_success")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_a_port_in_use_is_one_line_and_exit_2():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("--demo", "--web.listen-address", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"auditmanager-exporter: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("address", ["10118", "127.0.0.1:notaport", "::1:10118"])
def test_a_bad_listen_address_is_one_line_and_exit_2(address):
    result = run_cli("--demo", "--web.listen-address", address)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"auditmanager-exporter: invalid listen address {address!r}")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--log.level", "loud"], "argument --log.level: invalid choice: 'loud'"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--web.telemetry-path", "metrics"], "--web.telemetry-path 'metrics' must be a path"),
        (["--web.telemetry-path", "/metrics?x=1"], "--web.telemetry-path '/metrics?x=1' must be a path"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]


def test_help_shows_every_default_names_the_sources_and_points_to_the_demo_and_the_docs():
    result = run_cli("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for default in (
        "config.yml",
        ":10118",
        "64",
        "/metrics",
        "$AUDITMANAGER_EXPORTER_WEB_CONFIG_FILE",
        "info",
        "logfmt",
    ):
        assert f"(default: {default})" in text
    assert "--log.level {debug,info,warn,error} lowest level logged" in text
    assert "--log.format {logfmt,json} logfmt (key=value) or json lines" in text
    for source in ("AWS Audit Manager", "AWS Config conformance packs", "Security Hub CSPM"):
        assert source in text
    assert "auditmanager-exporter --demo" in text
    assert "docs/" in text


def test_without_flags_and_without_a_config_yml_here_says_it_is_the_default_path_and_what_to_do(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "exporter"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "auditmanager-exporter: no config.yml in the current directory (the default --config.file); "
        "pass --config.file PATH, or try --demo, which needs no AWS account"
    ]


def test_the_listening_line_names_each_address_as_host_and_port(simulator, run_exporter):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    port = free_port()
    exporter = run_exporter(config_for(simulator, [{"id": uuid(1)}]), "--web.listen-address", f":{port}")
    every_interface = f"[::]:{port}" if socket.has_dualstack_ipv6() else f"0.0.0.0:{port}"
    [line] = [line for line in exporter.logs().splitlines() if "msg=listening" in line]
    assert f'addresses="127.0.0.1:{exporter.url.rsplit(":", 1)[1]} {every_interface}"' in line


def test_version_prints_the_version():
    result = run_cli("--version")
    assert (result.returncode, result.stdout.strip()) == (0, "auditmanager-exporter 0.1.0")


def test_a_listen_address_without_host_serves_on_every_interface(simulator, run_exporter, tmp_path):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    port = free_port()
    exporter = run_exporter(config_for(simulator, [{"id": uuid(1)}]), "--web.listen-address", f":{port}", wait="none")
    exporter.url = f"http://127.0.0.1:{port}"
    exporter.wait_ready()
    assert http_get(exporter.url + "/healthz")[0] == 200
