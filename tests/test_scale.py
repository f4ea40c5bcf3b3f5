"""Organisation scale through the real CLI (issue 23): the exporter serves before it builds any client, sessions
and their credentials are shared by the targets of one credential source and kept across cycles, and each Region's
client is built once, kept, and counted."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.simulator import Simulator
from tests.conftest import ExporterProcess, eventually, http_get, insights, parse_metrics, series, uuid

REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
AUDIT_MANAGER = frozenset({("service", "auditmanager")})
# A credential_process that records each run, then waits until the test opens its gate before it answers.
GATED_CREDENTIALS = """
import json, pathlib, sys, time
gate = pathlib.Path(sys.argv[1])
with (gate / "runs").open("a") as runs:
    runs.write("run\\n")
while not (gate / "open").exists():
    time.sleep(0.05)
print(json.dumps({"Version": 1, "AccessKeyId": "gated", "SecretAccessKey": "gated"}))
"""


class Gate:
    """A profile `gated` whose credentials come from GATED_CREDENTIALS, in the AWS config file the exporter reads."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "gate"
        self.path.mkdir()
        script = self.path / "credentials.py"
        script.write_text(GATED_CREDENTIALS, encoding="utf-8")
        (tmp_path / "aws-config").write_text(
            f"[profile gated]\ncredential_process = {sys.executable} {script} {self.path}\n", encoding="utf-8"
        )

    def open(self) -> None:
        (self.path / "open").touch()

    @property
    def runs(self) -> int:
        runs = self.path / "runs"
        return len(runs.read_text(encoding="utf-8").splitlines()) if runs.exists() else 0


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    opened = Gate(tmp_path)
    yield opened
    # A credential process still waiting would outlive the exporter.
    opened.open()


def running(exporter: ExporterProcess) -> ExporterProcess:
    assert exporter.process.poll() is None, f"the exporter exited:\n{exporter.logs()[-3000:]}"
    return exporter


def answers(exporter: ExporterProcess, path: str) -> int:
    return http_get(running(exporter).url + path, timeout=5)[0]


def cycles_finished(exporter: ExporterProcess) -> int:
    return exporter.logs().count('msg="poll cycle finished"')


def gated_config(simulator: Simulator, poll_interval: str = "1h") -> dict[str, object]:
    return {
        "poll_interval": poll_interval,
        "targets": [
            {
                "regions": list(REGIONS),
                "profile": "gated",
                "endpoint_url": simulator.url,
                "assessments": [{"id": uuid(1), "name": "A1"}],
            }
        ],
    }


def add_assessments(simulator: Simulator) -> None:
    for region in REGIONS:
        simulator.add_assessment(region, uuid(1), "A1", framework="F", insights=insights())


def test_healthz_metrics_and_status_answer_while_the_first_cycle_waits_for_credentials(simulator, run_exporter, gate):
    add_assessments(simulator)
    exporter = run_exporter(gated_config(simulator), wait="none")
    # The credentials are asked for by the poll work, once the server listens.
    eventually(lambda: running(exporter) and gate.runs, what="the poll work to ask for the credentials")
    eventually(
        lambda: answers(exporter, "/healthz") == 200,
        what="/healthz while the credentials are pending",
        ignoring=(OSError,),
        detail=exporter.logs,
    )
    assert answers(exporter, "/readyz") == 503
    status, body, _ = http_get(exporter.url + "/metrics")
    assert status == 200
    own = parse_metrics(body.decode())
    assert series(own, "auditmanager_exporter_build_info")
    assert series(own, "auditmanager_assessment_poll_success") == []
    assert answers(exporter, "/status") == 200
    assert simulator.count() == 0
    gate.open()
    eventually(lambda: answers(exporter, "/readyz") == 200, what="the first cycle to publish", detail=exporter.logs)
    polled = {
        dict(labels)["region"]: value
        for (name, labels), value in exporter.scrape().items()
        if name == "auditmanager_assessment_poll_success"
    }
    assert polled == dict.fromkeys(REGIONS, 1)
    assert client_builds(exporter) == len(REGIONS)


def client_builds(exporter: ExporterProcess) -> float:
    samples = exporter.scrape()
    assert (samples.get(("auditmanager_exporter_aws_client_build_seconds_total", AUDIT_MANAGER)) or 0) >= 0
    return samples.get(("auditmanager_exporter_aws_client_builds_total", AUDIT_MANAGER)) or 0


def test_each_regions_client_is_built_once_and_kept_across_cycles_and_the_exporter_counts_the_builds(
    simulator, run_exporter
):
    add_assessments(simulator)
    config = {
        "poll_interval": "1s",
        "targets": [
            {"regions": list(REGIONS), "endpoint_url": simulator.url, "assessments": [{"id": uuid(1), "name": "A1"}]}
        ],
    }
    exporter = run_exporter(config)
    eventually(lambda: cycles_finished(running(exporter)) >= 4, what="four cycles", detail=exporter.logs)
    # One client per Region, built by the first cycle and kept: the later cycles build none.
    assert client_builds(exporter) == len(REGIONS)
    assert simulator.count("GetInsightsByAssessment") >= 4 * len(REGIONS)


def test_targets_of_one_credential_source_share_its_credentials_and_keep_them_across_cycles(
    simulator, run_exporter, gate
):
    add_assessments(simulator)
    gate.open()
    exporter = run_exporter(gated_config(simulator, poll_interval="1s"))
    eventually(lambda: cycles_finished(running(exporter)) >= 3, what="three cycles", detail=exporter.logs)
    assert simulator.count("GetInsightsByAssessment") >= 3 * len(REGIONS)
    assert gate.runs == 1


def test_a_profile_no_aws_file_defines_stops_the_start_with_one_line_though_sessions_are_built_later(
    simulator, run_exporter, tmp_path
):
    (tmp_path / "aws-credentials").write_text("[known]\naws_access_key_id = a\naws_secret_access_key = b\n")
    targets = [
        {"region": region, "endpoint_url": simulator.url, "profile": profile, "discover": True}
        for region, profile in zip(REGIONS, ("known", "typo", "typo"), strict=True)
    ]
    exporter = run_exporter({"targets": targets}, wait="none")
    assert exporter.process.wait(timeout=60) == 2
    assert exporter.logs().splitlines() == [
        "auditmanager-exporter: cannot set up the AWS client: no profile 'typo' in the AWS config or credentials files"
    ]
