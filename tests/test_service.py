"""The poll service over weeks, against the real process: reloads that leak neither files nor threads (with the
garbage collector off), clients and budgets kept for unchanged targets, and bounded threads and files at 100
targets."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

import exporter.sources.auditmanager.source as audit_manager_source
from benchmarks.organisation import OrganisationSettings, measure
from exporter.aws import AuditManagerClient
from exporter.cli import Service
from exporter.config import Config, parse
from exporter.simulator import Simulator
from tests.conftest import ROOT, ExporterProcess, aws_env, eventually, free_port, insights, uuid, write_config

REGIONS = ("us-east-1", "eu-west-1")
DEADLINE_SECONDS = 60.0
# The CLI with Python's cycle collector off, so only explicit closing can free what a reload replaces.
WITHOUT_GC = "import gc, sys; gc.disable(); from exporter.cli import main; sys.exit(main())"


@pytest.fixture
def exporter_without_gc(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], ExporterProcess]]:
    started: list[ExporterProcess] = []

    def start(config: dict[str, Any]) -> ExporterProcess:
        port = free_port()
        config_path = write_config(tmp_path / "config.yml", config)
        log_path = tmp_path / "exporter.log"
        args = [sys.executable, "-c", WITHOUT_GC, "--web.listen-address", f"127.0.0.1:{port}"]
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [*args, "--config.file", str(config_path)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=aws_env(tmp_path),
                cwd=ROOT,
            )
        handle = ExporterProcess(process, f"http://127.0.0.1:{port}", log_path, config_path)
        started.append(handle)
        handle.wait_ready()
        return handle

    yield start
    for handle in started:
        if handle.process.poll() is None:
            handle.process.kill()
            handle.process.wait()


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def cycles_finished(exporter: ExporterProcess) -> int:
    return exporter.logs().count('msg="poll cycle finished"')


def wait_until(condition: Callable[[], bool], what: str, exporter: ExporterProcess) -> None:
    eventually(condition, what=what, timeout=DEADLINE_SECONDS, detail=lambda: exporter.logs()[-3000:])


def post_reload(exporter: ExporterProcess) -> int:
    request = urllib.request.Request(exporter.url + "/-/reload", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def two_targets(simulator: Simulator, concurrency: int) -> dict[str, Any]:
    return {
        "poll_interval": "1h",
        "max_attempts": 1,
        "max_requests_per_second": 100,
        "targets": [
            {
                "region": region,
                "endpoint_url": simulator.url,
                "max_concurrency": concurrency,
                "assessments": [{"id": uuid(n), "name": f"A{n}"} for n in range(1, 5)],
                "control_domains": True,
            }
            for region in REGIONS
        ],
    }


def test_forty_reloads_leave_open_files_and_threads_where_they_were_without_the_garbage_collector(
    simulator, exporter_without_gc
):
    for region in REGIONS:
        for n in range(1, 5):
            simulator.add_assessment(region, uuid(n), f"A{n}", insights=insights())
    exporter = exporter_without_gc(two_targets(simulator, 4))
    pid = exporter.process.pid
    wait_until(lambda: cycles_finished(exporter) == 1, "first cycle", exporter)
    # Each reload changes both targets (their concurrency), so every reload replaces both clients.
    for reload in range(42):
        # The first two warm up (threads the workers start on demand, the web server's); the next 40 count.
        if reload == 2:
            files, tasks = open_files(pid), threads(pid)
        write_config(exporter.config_path, two_targets(simulator, 5 + reload % 2))
        before = cycles_finished(exporter)
        assert post_reload(exporter) == 200
        wait_until(lambda b=before: cycles_finished(exporter) > b, f"cycle after reload {reload}", exporter)
    # The last reload's clients close with its cycle; give the details refresh after it time to end.
    wait_until(
        lambda: open_files(pid) <= files + 4 and threads(pid) <= tasks + 3,
        f"files {open_files(pid)} (before {files}), threads {threads(pid)} (before {tasks})",
        exporter,
    )
    assert exporter.process.poll() is None


def counting_sessions() -> tuple[list[str], Callable[[Any], boto3.Session]]:
    made: list[str] = []

    def session(target: Any) -> boto3.Session:
        made.append(target.region)
        return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=target.region)

    return made, session


def test_a_reload_keeps_the_clients_of_unchanged_targets_and_replaces_the_others(simulator, monkeypatch):
    for region in REGIONS:
        simulator.add_assessment(region, uuid(1), "A1", insights=insights())

    def config(eu_rate: float) -> Config:
        return parse(
            {
                "poll_interval": "1h",
                "targets": [
                    {"region": "us-east-1", "endpoint_url": simulator.url, "assessments": [{"id": uuid(1)}]},
                    {
                        "region": "eu-west-1",
                        "endpoint_url": simulator.url,
                        "assessments": [{"id": uuid(1)}],
                        "max_requests_per_second": eu_rate,
                    },
                ],
            }
        )

    built: list[str] = []

    class CountedClient(AuditManagerClient):
        def __init__(self, target: Any, *args: Any, **kwargs: Any) -> None:
            built.append(target.region)
            super().__init__(target, *args, **kwargs)

    monkeypatch.setattr(audit_manager_source, "AuditManagerClient", CountedClient)
    configs = iter([config(5), config(6), config(6)])
    made, session = counting_sessions()
    service = Service(next(configs), lambda: next(configs), session)
    service.start()
    try:
        assert sorted(built) == ["eu-west-1", "us-east-1"]
        assert service.reload()
        assert sorted(built) == ["eu-west-1", "eu-west-1", "us-east-1"]
        assert service.reload()
        assert len(built) == 3
        service.run_cycle()
        # Both targets use the same credentials: one session, kept across reloads.
        assert len(made) == 1
    finally:
        service.stop()
        assert service.wait_idle(30)
        service.close()


def test_at_100_targets_of_20_assessments_threads_and_open_files_stay_bounded():
    settings = dataclasses.replace(OrganisationSettings.smoke(), assessments=2000, max_workers=32, cycles=1)
    figures = measure(settings, 100)
    assert figures.peak_threads <= 60, figures
    assert figures.peak_open_files <= 200, figures


def test_a_reload_that_keeps_a_target_asks_aws_nothing_it_already_knows(simulator, run_exporter):
    for n in (1, 2):
        simulator.add_assessment("us-east-1", uuid(n), f"A{n}", framework="F", insights=insights())
    config = {
        "poll_interval": "1h",
        "targets": [{"region": "us-east-1", "endpoint_url": simulator.url, "discover": True}],
    }
    exporter = run_exporter(config)
    # The first cycle, then the framework look-ups: the account, the listing and both frameworks are known.
    wait_until(lambda: simulator.count("GetAssessment") == 2, "framework look-ups", exporter)
    simulator.reset_stats()
    before = cycles_finished(exporter)
    assert post_reload(exporter) == 200
    wait_until(lambda: cycles_finished(exporter) > before, "cycle after the reload", exporter)
    assert simulator.count("GetInsightsByAssessment") == 2
    assert (simulator.count("ListAssessments"), simulator.count("GetAssessment")) == (0, 0)
