"""Shared fixtures: a started simulator, and the real exporter process run against it."""

from __future__ import annotations

import gzip
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, TypeVar

import boto3
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter.aws import AuditManagerClient
from exporter.config import AUDIT_MANAGER, Config
from exporter.polling import Poller, PollState, Publisher, Workers
from exporter.simulator import Insights, Simulator
from exporter.simulator.measure import max_in_window, simulator_session
from exporter.snapshot import ApiCounters, Snapshot, SnapshotStore
from exporter.sources.auditmanager.source import part_with
from exporter.sources.auditmanager.state import AuditManagerPart

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# Every metric family the exporter publishes (the README's metrics table), by the name Prometheus stores.
CONTRACT_METRICS = frozenset(
    {
        "auditmanager_assessment_evidence",
        "auditmanager_assessment_controls",
        "auditmanager_assessment_noncompliant_controls",
        "auditmanager_assessment_insights_last_updated_timestamp_seconds",
        "auditmanager_assessment_poll_success",
        "auditmanager_assessment_last_poll_success_timestamp_seconds",
        "auditmanager_assessment_info",
        "auditmanager_assessment_tags",
        "auditmanager_assessment_control_domain_evidence",
        "auditmanager_assessment_control_domain_noncompliant_controls",
        "auditmanager_control_domain_series_dropped_total",
        "auditmanager_account_active_assessments",
        "auditmanager_account_evidence",
        "auditmanager_account_controls",
        "auditmanager_account_noncompliant_controls",
        "auditmanager_account_insights_last_updated_timestamp_seconds",
        "auditmanager_account_poll_success",
        "auditmanager_account_last_poll_success_timestamp_seconds",
        "auditmanager_assessment_control_domains_poll_success",
        "auditmanager_assessment_control_domains_last_poll_success_timestamp_seconds",
        "auditmanager_api_requests_total",
        "auditmanager_api_errors_total",
        "auditmanager_poll_duration_seconds",
        "auditmanager_exporter_build_info",
        "auditmanager_exporter_aws_client_builds_total",
        "auditmanager_exporter_aws_client_build_seconds_total",
        "auditmanager_exporter_config_last_reload_successful",
        "auditmanager_exporter_config_last_reload_success_timestamp_seconds",
        "awsconfig_conformance_pack_compliance_score",
        "awsconfig_conformance_pack_rules",
        "awsconfig_conformance_pack_rule_compliant",
        "awsconfig_conformance_pack_poll_success",
        "awsconfig_conformance_pack_last_poll_success_timestamp_seconds",
        "awsconfig_conformance_pack_rule_series_dropped_total",
        "awsconfig_aggregate_conformance_pack_rules",
        "awsconfig_aggregator_poll_success",
        "auditmanager_exporter_web_config_last_reload_successful",
        "securityhub_standard_score",
        "securityhub_standard_controls",
        "securityhub_control_status",
        "securityhub_standard_failed_findings",
        "securityhub_standard_info",
        "securityhub_standard_poll_success",
        "securityhub_standard_last_poll_success_timestamp_seconds",
        "securityhub_control_series_dropped_total",
        "securityhub_discovery_success",
        "auditmanager_discovery_success",
        "awsconfig_discovery_success",
    }
)


def new_poller(
    config: Config,
    clients: list[AuditManagerClient],
    store: SnapshotStore | None = None,
    counters: ApiCounters | None = None,
    **options: Any,
) -> Poller:
    """A Poller of the Audit Manager `clients` publishing to `store` (a new one if None) with a state and workers of
    its own."""
    publisher = Publisher(PollState(), store if store is not None else SnapshotStore())
    workers = Workers(config.max_workers)
    return Poller(config, {AUDIT_MANAGER: clients}, publisher, workers, counters or ApiCounters(), **options)


def audit_manager_snapshot(*, parts: Any = None, **fields: Any) -> Snapshot:
    """A Snapshot whose Audit Manager part holds the AuditManagerPart `fields` (assessments, accounts, details,
    tag_labels, control_domain_series_dropped); the others are the Snapshot's."""
    names = {f for f in AuditManagerPart.__dataclass_fields__ if f in fields}
    data = AuditManagerPart(**{name: fields.pop(name) for name in names})
    return Snapshot(parts=MappingProxyType({**(parts or {}), AUDIT_MANAGER: part_with(data)}), **fields)


def within_rate(times: list[float], per_second: float) -> bool:
    """Whether requests started at `times` keep to a limit of `per_second` as the rate limiter counts it: at most
    that many in any window of 0.6 of its 1 s (or 1/rate s, below one per second). The limiter's windows are 1.02 s,
    so a record delayed up to 0.4 s by a loaded machine passes, while twice the rate, evenly spaced, fails."""
    limit = max(1, int(per_second))
    seconds = 1.0 if per_second >= 1 else 1.0 / per_second
    return max_in_window(times, 0.6 * seconds) <= limit


class InFlight:
    """Requests in flight at once, counted at the client (sent after the rate limiter, until the answer came)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self._total = self.peak_total = 0

    def session(self, target: Any) -> boto3.Session:
        session = simulator_session(target)
        session.events.register_last("before-send.auditmanager", lambda **_: self._change(target.region, 1))
        session.events.register("response-received.auditmanager", lambda **_: self._change(target.region, -1))
        return session

    def _change(self, region: str, delta: int) -> None:
        with self._lock:
            self._now[region] = self._now.get(region, 0) + delta
            self._total += delta
            self.peak[region] = max(self.peak.get(region, 0), self._now[region])
            self.peak_total = max(self.peak_total, self._total)


def eventually(
    probe: Callable[[], T],
    until: Callable[[T], object] = bool,
    *,
    what: str,
    timeout: float = 30.0,
    interval: float = 0.1,
    ignoring: tuple[type[Exception], ...] = (),
    detail: Callable[[], object] = str,
) -> T:
    """Call `probe` until `until` accepts its result (by default: until it is truthy) and return that result.

    An exception of a type in `ignoring` counts as not yet (a server still starting); any other one, such as an
    assertion in `probe` that the process still runs, fails at once. After `timeout` seconds the test fails naming
    `what`, the last result and `detail()` (say, the exporter's log), which is asked for only then."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = probe()
        except ignoring as error:
            last: object = error
        else:
            if until(result):
                return result
            last = result
        if time.monotonic() >= deadline:
            shown = repr(last)
            shown = shown if len(shown) <= 500 else shown[:500] + "…"
            pytest.fail(f"timed out after {timeout:g}s waiting for {what} (last: {shown})\n{detail()}")
        time.sleep(interval)


def require_binary(name: str) -> str:
    """The path of a tool the test needs; skips without it locally, fails without it in CI."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI")
        pytest.skip(f"{name} not installed")
    return path


def require_module(name: str) -> ModuleType:
    """A Python module the test needs that the test extra installs; skips without it locally, fails without it in CI."""
    if os.environ.get("CI") == "true":
        return importlib.import_module(name)
    return pytest.importorskip(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def uuid(n: int) -> str:
    """A valid, readable assessment id: uuid(7) == '00000000-0000-4000-8000-000000000007'."""
    return f"00000000-0000-4000-8000-{n:012d}"


def insights(
    noncompliant: int | None = 5,
    compliant: int | None = 50,
    inconclusive: int | None = 2,
    noncompliant_controls: int | None = 3,
    total_controls: int | None = 40,
    last_updated: datetime = datetime(2026, 11, 23, tzinfo=UTC),
) -> Insights:
    return Insights(noncompliant, compliant, inconclusive, noncompliant_controls, total_controls, last_updated)


def parse_metrics(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (metric, labels) in samples if metric == name]


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with Simulator() as sim:
        yield sim


# The account of the role that moto's STS (the `sts` fixture) lets the tests assume.
ROLE_ACCOUNT = "210987654321"
ROLE_ARN = f"arn:aws:iam::{ROLE_ACCOUNT}:role/auditmanager-reader"


@pytest.fixture
def sts(monkeypatch, tmp_path: Path) -> Iterator[str]:
    """moto's STS as a real server on loopback, with botocore pointed at it and dummy source credentials."""
    # Imported here: moto is slow to import, and most tests do not need it.
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "source-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "source-secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    _sts_backend().assumed_roles.clear()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _sts_backend() -> Any:
    from moto.sts.models import sts_backends

    return sts_backends[ROLE_ACCOUNT]["aws"]


def assumed_roles() -> list[Any]:
    """The roles moto's STS let the tests assume, oldest first."""
    return list(_sts_backend().assumed_roles)


def aws_env(tmp_path: Path) -> dict[str, str]:
    """An environment with dummy credentials and no way to reach real AWS or the instance metadata service."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp_path / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws-credentials"),
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class ExporterProcess:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    config_path: Path | None
    ready_timeout: float = 30.0
    extra: dict[str, object] = field(default_factory=dict)

    def scrape(self, path: str = "/metrics") -> Samples:
        status, body, headers = http_get(self.url + path)
        assert status == 200, body
        if headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return parse_metrics(body.decode())

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float | None = None) -> None:
        self.wait_answering("/readyz", timeout or self.ready_timeout)

    def wait_answering(self, path: str, timeout: float = 30.0) -> None:
        """Wait until `path` answers 200, failing at once if the process exits."""

        def answers() -> bool:
            assert self.process.poll() is None, f"exporter exited early:\n{self.logs()}"
            return http_get(self.url + path, timeout=2)[0] == 200

        eventually(answers, what=f"{path} to answer 200", timeout=timeout, ignoring=(OSError,), detail=self.logs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the process and wait for its exit code; the deadline is generous because a loaded machine may
        take seconds to run an interpreter's shutdown (the test of the stop deadline itself passes its own)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


def write_config(path: Path, config: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def run_exporter(tmp_path: Path) -> Iterator[Callable[..., ExporterProcess]]:
    """Start the real CLI (`python -m exporter`) with a config mapping or raw flags; waits until it serves."""
    started: list[ExporterProcess] = []

    def start(
        config: dict[str, object] | None = None, *flags: str, wait: str = "ready", env: dict[str, str] | None = None
    ) -> ExporterProcess:
        port = free_port()
        config_path = write_config(tmp_path / f"config-{len(started)}.yml", config) if config is not None else None
        args = [sys.executable, "-m", "exporter", "--web.listen-address", f"127.0.0.1:{port}", *flags]
        if config_path is not None:
            args += ["--config.file", str(config_path)]
        log_path = tmp_path / f"exporter-{len(started)}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                args, stdout=log_file, stderr=subprocess.STDOUT, env=aws_env(tmp_path) | (env or {}), cwd=ROOT
            )
        handle = ExporterProcess(process, f"http://127.0.0.1:{port}", log_path, config_path)
        started.append(handle)
        if wait == "ready":
            handle.wait_ready()
        elif wait == "healthy":
            handle.wait_answering("/healthz")
        return handle

    yield start
    for handle in started:
        if handle.process.poll() is None:
            handle.process.kill()
            handle.process.wait()
