"""The fault matrix: the real exporter process against every fault the simulator can inject, all run at once.

Each case runs its own exporter over two assessments, A and B. The fault hits A only ("refused" hits the whole
endpoint); the module fixture drives every case through good → fault → recovered, and the tests check each phase.
"""

from __future__ import annotations

import itertools
import math
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.simulator import Fault, Simulator
from tests.conftest import (
    ROOT,
    ExporterProcess,
    Samples,
    aws_env,
    eventually,
    free_port,
    http_get,
    insights,
    parse_metrics,
    sample,
    series,
    uuid,
)

REGION = "us-east-1"
OPERATION = "GetInsightsByAssessment"
GOOD = insights(11, 111, 12, 13, 140)
NEW = insights(21, 221, 22, 23, 240)
DEADLINE_SECONDS = 30.0


@dataclass(frozen=True)
class Case:
    name: str
    code: str
    fault: Callable[[str], Fault] | None
    # A configured assessment AWS no longer has: it stays, failing, but its figures go.
    drops_values: bool = False
    log_level: str = "info"


CASES = [
    Case("throttled", "ThrottlingException", lambda a: Fault("throttle_above_rate", rate=0, assessment_id=a)),
    Case("internal_error", "InternalServerException", lambda a: Fault("error", "InternalServerException", a)),
    Case("access_denied", "AccessDeniedException", lambda a: Fault("error", "AccessDeniedException", a)),
    Case("not_found", "ResourceNotFoundException", lambda a: Fault("error", "ResourceNotFoundException", a), True),
    Case("validation", "ValidationException", lambda a: Fault("error", "ValidationException", a)),
    Case("slow", "ReadTimeout", lambda a: Fault("latency", assessment_id=a, seconds=5.0)),
    Case("reset", "ConnectionClosedError", lambda a: Fault("reset", assessment_id=a)),
    Case("malformed_json", "MalformedResponse", lambda a: Fault("malformed_json", assessment_id=a)),
    Case("empty_body", "MalformedResponse", lambda a: Fault("empty_body", assessment_id=a)),
    Case("no_insights", "MalformedResponse", lambda a: Fault("no_insights", assessment_id=a)),
    Case("refused", "EndpointConnectionError", None),
    Case(
        "internal_error_debug",
        "InternalServerException",
        lambda a: Fault("error", "InternalServerException", a),
        log_level="debug",
    ),
]
IDS = [case.name for case in CASES]


@dataclass
class Run:
    """One case's exporter and what the fixture saw of it."""

    case: Case
    simulator: Simulator
    a: str
    b: str
    exporter: ExporterProcess
    before: Samples = field(default_factory=dict)
    during: list[str] = field(default_factory=list)
    recovering: list[str] = field(default_factory=list)
    after: Samples = field(default_factory=dict)
    after_text: str = ""
    up_throughout: bool = True
    healthy_throughout: bool = True
    exit_code: int | None = None
    log: str = ""

    def labels(self, assessment_id: str) -> dict[str, str]:
        name = "A" if assessment_id == self.a else "B"
        return {"account_id": "123456789012", "region": REGION, "assessment_id": assessment_id, "assessment_name": name}

    def scrape_text(self) -> str:
        status, body, _ = http_get(self.exporter.url + "/metrics", timeout=5)
        assert status == 200, body
        return body.decode()

    def errors(self, samples: Samples, code: str) -> float:
        labels = {"operation": OPERATION, "region": REGION, "error_code": code}
        return sample(samples, "auditmanager_api_errors_total", **labels) or 0.0


def _launch(directory: Path, name: str, simulator: Simulator, a: str, b: str, log_level: str) -> ExporterProcess:
    config = directory / f"{name}.yml"
    config.write_text(
        f"""poll_interval: 1s
read_timeout: 2s
connect_timeout: 2s
max_attempts: 1
targets:
  - region: {REGION}
    endpoint_url: {simulator.url}
    assessments: [{{id: {a}, name: A}}, {{id: {b}, name: B}}]
""",
        encoding="utf-8",
    )
    port = free_port()
    log_path = directory / f"{name}.log"
    args = [sys.executable, "-m", "exporter", "--web.listen-address", f"127.0.0.1:{port}", "--config.file", str(config)]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*args, "--log.level", log_level],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=aws_env(directory),
            cwd=ROOT,
        )
    return ExporterProcess(process, f"http://127.0.0.1:{port}", log_path, config)


def _until(runs: list[Run], done: Callable[[Run, Samples], bool], record: Callable[[Run, str], None]) -> None:
    pending = list(runs)

    def still_pending() -> list[str]:
        for run in list(pending):
            run.up_throughout &= run.exporter.process.poll() is None
            run.healthy_throughout &= http_get(run.exporter.url + "/healthz", timeout=5)[0] == 200
            text = run.scrape_text()
            record(run, text)
            if done(run, parse_metrics(text)):
                pending.remove(run)
        return [run.case.name for run in pending]

    eventually(
        still_pending,
        lambda names: not names,
        what="every case's outcome",
        timeout=DEADLINE_SECONDS,
        interval=0.2,
        detail=lambda: "\n".join(run.exporter.logs() for run in pending),
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    directory = tmp_path_factory.mktemp("faults")
    shared = Simulator().start()
    own = Simulator().start()
    runs: list[Run] = []
    for n, case in enumerate(CASES):
        simulator = own if case.fault is None else shared
        a, b = uuid(100 + 2 * n), uuid(101 + 2 * n)
        simulator.add_assessment(REGION, a, "A", insights=GOOD)
        simulator.add_assessment(REGION, b, "B", insights=GOOD)
        runs.append(Run(case, simulator, a, b, _launch(directory, case.name, simulator, a, b, case.log_level)))
    try:
        for run in runs:
            run.exporter.wait_ready(timeout=60)
            run.before = parse_metrics(run.scrape_text())

        # Faults first: any answer with the new values then comes after the fault ended.
        own.refuse_connections()
        for run in runs:
            if run.case.fault is not None:
                shared.add_fault(run.case.fault(run.a))
        for run in runs:
            run.simulator.set_insights(REGION, run.a, NEW)
            run.simulator.set_insights(REGION, run.b, NEW if run.case.fault is None else GOOD)

        def failing(run: Run, samples: Samples) -> bool:
            polled = sample(samples, "auditmanager_assessment_poll_success", **run.labels(run.a))
            return run.errors(samples, run.case.code) >= 2 and polled == 0

        _until(runs, failing, lambda run, text: run.during.append(text))

        shared.clear_faults()
        own.accept_connections()

        def recovered(run: Run, samples: Samples) -> bool:
            these = run.labels(run.a)
            return (
                sample(samples, "auditmanager_assessment_poll_success", **these) == 1
                and sample(samples, "auditmanager_assessment_controls", **these) == NEW.total_controls
            )

        _until(runs, recovered, lambda run, text: run.recovering.append(text))
        for run in runs:
            run.after_text = run.scrape_text()
            run.after = parse_metrics(run.after_text)
            run.up_throughout &= run.exporter.process.poll() is None
        for run in runs:
            run.exit_code = run.exporter.stop(signal.SIGTERM, timeout=10)
            run.log = run.exporter.logs()
        yield {run.case.name: run for run in runs}
    finally:
        for run in runs:
            if run.exporter.process.poll() is None:
                run.exporter.process.kill()
                run.exporter.process.wait()
        shared.stop()
        own.stop()


def _faulted(run: Run) -> list[str]:
    return [run.a, run.b] if run.case.fault is None else [run.a]


def _values(samples: Samples, labels: dict[str, str]) -> dict[str, float]:
    wanted = set(labels.items())
    return {
        name + str(sorted(set(key) - wanted)): value
        for (name, key), value in samples.items()
        if name.startswith("auditmanager_assessment_") and wanted <= key
    }


@pytest.mark.parametrize("name", IDS)
def test_the_exporter_stays_up_and_keeps_serving_metrics(runs, name):
    run = runs[name]
    assert run.up_throughout
    assert run.healthy_throughout
    assert run.during
    assert run.exit_code == 0


@pytest.mark.parametrize("name", [case.name for case in CASES if not case.drops_values])
def test_last_good_values_are_kept_while_the_fault_lasts(runs, name):
    run = runs[name]
    last_failing = parse_metrics(run.during[-1])
    for assessment_id in _faulted(run):
        good = _values(run.before, run.labels(assessment_id))
        kept = _values(last_failing, run.labels(assessment_id))
        assert {k: v for k, v in kept.items() if "poll_success" not in k} == {
            k: v for k, v in good.items() if "poll_success" not in k
        }


def test_a_deleted_configured_assessment_loses_its_figures_but_stays_failing_and_the_other_stays(runs):
    run = runs["not_found"]
    failing = parse_metrics(run.during[-1])
    kept = _values(failing, run.labels(run.a))
    assert sample(failing, "auditmanager_assessment_poll_success", **run.labels(run.a)) == 0
    assert not [name for name in kept if "evidence" in name or name.endswith("_controls")], kept
    assert sample(failing, "auditmanager_assessment_poll_success", **run.labels(run.b)) == 1


@pytest.mark.parametrize("name", IDS)
def test_the_error_is_counted_under_its_code_and_poll_success_is_0(runs, name):
    run = runs[name]
    failing = parse_metrics(run.during[-1])
    codes = {s["error_code"] for s in series(failing, "auditmanager_api_errors_total") if s["operation"] == OPERATION}
    assert run.case.code in codes
    if run.case.fault is not None:
        assert codes == {run.case.code}
        assert sample(failing, "auditmanager_assessment_poll_success", **run.labels(run.b)) == 1
    for assessment_id in _faulted(run):
        assert sample(failing, "auditmanager_assessment_poll_success", **run.labels(assessment_id)) == 0


@pytest.mark.parametrize("name", IDS)
def test_it_recovers_by_itself_once_the_fault_ends(runs, name):
    run = runs[name]
    for assessment_id in (run.a, run.b):
        these = run.labels(assessment_id)
        expected = NEW if assessment_id in _faulted(run) else GOOD
        assert sample(run.after, "auditmanager_assessment_poll_success", **these) == 1
        assert sample(run.after, "auditmanager_assessment_evidence", **these, compliance="noncompliant") == (
            expected.noncompliant_evidence
        )


CYCLE_FINISHED = re.compile(r'^ts=(\S+) .*msg="poll cycle finished" .*duration_seconds=([0-9.]+)', re.MULTILINE)


@pytest.mark.parametrize("name", IDS)
def test_no_poll_overlaps_the_next(runs, name):
    run = runs[name]
    # Each cycle's own record: when it finished (wall time) and how long it took. A cycle that started before the
    # previous one finished would start before that one's end; 2 ms cover the rounding of both figures.
    cycles = [
        (end - float(duration), end)
        for stamp, duration in CYCLE_FINISHED.findall(run.log)
        for end in [datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()]
    ]
    assert len(cycles) >= 4, run.log
    assert all(start >= previous_end - 0.002 for (_, previous_end), (start, _) in itertools.pairwise(cycles))


@pytest.mark.parametrize("name", IDS)
def test_nothing_bad_is_published_as_a_number(runs, name):
    run = runs[name]
    allowed = {
        "noncompliant": {GOOD.noncompliant_evidence, NEW.noncompliant_evidence},
        "compliant": {GOOD.compliant_evidence, NEW.compliant_evidence},
        "inconclusive": {GOOD.inconclusive_evidence, NEW.inconclusive_evidence},
    }
    for text in [*run.during, *run.recovering, run.after_text]:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                assert math.isfinite(s.value), s
                if s.name == "auditmanager_assessment_evidence":
                    assert s.value in allowed[s.labels["compliance"]], s
                elif s.name == "auditmanager_assessment_controls":
                    assert s.value in {GOOD.total_controls, NEW.total_controls}, s


@pytest.mark.parametrize("name", IDS)
def test_each_failure_is_one_clear_log_line_with_a_trace_only_at_debug(runs, name):
    run = runs[name]
    lines = run.log.splitlines()
    assert all(line.startswith("ts=") for line in lines), run.log
    assert "Traceback (most recent call last):\n" not in run.log
    failures = [line for line in lines if 'msg="poll failed"' in line]
    counted = {
        s["error_code"] for s in series(run.after, "auditmanager_api_errors_total") if s["operation"] == OPERATION
    }
    for code in counted:
        logged = [line for line in failures if f"error_code={code} " in line]
        assert len(logged) == run.errors(run.after, code), code
        assert all(any(f"assessment_id={a}" in line for a in _faulted(run)) for line in logged)
    assert len(failures) == sum(run.errors(run.after, code) for code in counted)
    assert all(("trace=" in line) == (run.case.log_level == "debug") for line in failures)


def _config(simulator: Simulator, count: int, **settings: object) -> dict[str, object]:
    return {
        "poll_interval": "1s",
        **settings,
        "targets": [
            {
                "region": REGION,
                "endpoint_url": simulator.url,
                "assessments": [{"id": uuid(n), "name": f"A{n}"} for n in range(1, count + 1)],
            }
        ],
    }


def test_under_throttling_every_assessment_gets_its_value_within_the_rate_limit(simulator, run_exporter):
    for n in range(1, 9):
        simulator.add_assessment(REGION, uuid(n), f"A{n}", insights=GOOD)
    # AWS lets fewer requests through than the exporter may send, so some are throttled every second.
    simulator.add_fault(Fault("throttle_above_rate", rate=2))
    exporter = run_exporter(
        _config(simulator, 8, max_requests_per_second=4, max_concurrency=4, max_attempts=3), wait="healthy"
    )
    eventually(
        lambda: {s["assessment_id"] for s in series(exporter.scrape(), "auditmanager_assessment_controls")},
        lambda published: len(published) == 8,
        what="all 8 assessments published",
        timeout=DEADLINE_SECONDS,
        interval=0.5,
        detail=exporter.logs,
    )
    records = simulator.requests(region=REGION)
    assert any(r.status == 429 for r in records)
    # No retry storm: at most max_attempts requests per assessment and cycle begun.
    cycles = exporter.logs().count('msg="poll cycle finished"') + 1
    assert simulator.count(OPERATION, REGION) <= 3 * 8 * cycles


def test_a_poll_cycle_slower_than_poll_interval_never_overlaps_the_next(simulator, run_exporter):
    simulator.add_assessment(REGION, uuid(1), "A1", insights=GOOD)
    simulator.latency = 1.2
    exporter = run_exporter(_config(simulator, 1, read_timeout="5s", max_attempts=1))
    eventually(
        lambda: simulator.count(OPERATION) >= 3,
        what="3 polls",
        timeout=DEADLINE_SECONDS,
        interval=0.2,
        detail=exporter.logs,
    )
    arrivals = [r.at for r in simulator.requests(OPERATION)]
    assert len(arrivals) >= 3
    # Each request takes 1.2 s to answer, longer than the 1 s interval: the next cycle waits for it.
    assert min(b - a for a, b in itertools.pairwise(arrivals)) >= 1.2
    assert exporter.process.poll() is None
