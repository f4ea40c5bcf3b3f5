"""Load and endurance: concurrent scrapers against the real process, and thousands of poll cycles in-process."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import boto3

from exporter.cli import Service
from exporter.config import Config, parse
from exporter.exposition import Exposition
from exporter.simulator import Fault, Insights
from tests.conftest import insights, parse_metrics, series, uuid

REGION = "us-east-1"
SCRAPERS = 16
SCRAPE_SECONDS = 30.0
HEALTHY = range(1, 7)
ERRORING, SLOW, MALFORMED = uuid(7), uuid(8), uuid(9)
COUNTS = (
    "auditmanager_assessment_evidence",
    "auditmanager_assessment_controls",
    "auditmanager_assessment_noncompliant_controls",
)


def generation(n: int) -> Insights:
    """Counts that all encode `n`, the number of the poll cycle that fetched them."""
    return insights(
        noncompliant=n, compliant=1000 + n, inconclusive=2000 + n, noncompliant_controls=n, total_controls=n
    )


@dataclass
class ScrapeLog:
    statuses: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    generations: list[int] = field(default_factory=list)


def scrape_repeatedly(host: str, port: int, until: float, log: ScrapeLog) -> None:
    connection = http.client.HTTPConnection(host, port, timeout=10)
    last = 0
    while time.monotonic() < until:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        body = response.read().decode()
        log.statuses[response.status] += 1
        samples = parse_metrics(body)
        seen = {
            value
            for (name, labels), value in samples.items()
            if name in COUNTS and dict(labels).get("assessment_id") in {uuid(n) for n in HEALTHY}
        }
        # Every count of every healthy assessment encodes its cycle; one scrape must show one cycle only.
        cycles = {int(value) % 1000 for value in seen}
        if len(cycles) != 1:
            log.problems.append(f"mixed cycles {sorted(cycles)}")
            continue
        (cycle,) = cycles
        if cycle < last:
            log.problems.append(f"cycle went back from {last} to {cycle}")
        last = cycle
        log.generations.append(cycle)
        polled = {
            dict(labels)["assessment_id"]: value
            for (name, labels), value in samples.items()
            if name == "auditmanager_assessment_poll_success"
        }
        for assessment_id in (ERRORING, SLOW, MALFORMED):
            if polled.get(assessment_id) != 0:
                log.problems.append(f"{assessment_id} is not failing")
            if any(s["assessment_id"] == assessment_id for s in series(samples, "auditmanager_assessment_evidence")):
                log.problems.append(f"{assessment_id} has values")
    connection.close()


def test_sixteen_concurrent_scrapers_always_get_200_and_one_poll_per_scrape(simulator, run_exporter):
    for n in HEALTHY:
        simulator.add_assessment(REGION, uuid(n), f"A{n}")
        simulator.set_insights_per_request(REGION, uuid(n), generation)
    for assessment_id in (ERRORING, SLOW, MALFORMED):
        simulator.add_assessment(REGION, assessment_id, assessment_id, insights=insights())
    simulator.add_fault(Fault("error", "InternalServerException", ERRORING))
    simulator.add_fault(Fault("latency", assessment_id=SLOW, seconds=6.0))
    simulator.add_fault(Fault("malformed_json", assessment_id=MALFORMED))
    ids = [*(uuid(n) for n in HEALTHY), ERRORING, SLOW, MALFORMED]
    exporter = run_exporter(
        {
            "poll_interval": "1s",
            # Generous, so that on a loaded machine only SLOW times out (a healthy call timing out would leave its
            # assessment a cycle behind the others from then on).
            "read_timeout": "2s",
            "max_attempts": 1,
            "max_requests_per_second": 50,
            "targets": [{"region": REGION, "endpoint_url": simulator.url, "assessments": [{"id": i} for i in ids]}],
        }
    )
    port = int(exporter.url.rsplit(":", 1)[1])
    until = time.monotonic() + SCRAPE_SECONDS
    logs = [ScrapeLog() for _ in range(SCRAPERS)]
    threads = [
        threading.Thread(target=scrape_repeatedly, args=("127.0.0.1", port, until, log), daemon=True) for log in logs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SCRAPE_SECONDS + 30)
    assert not any(thread.is_alive() for thread in threads)
    statuses = sum((log.statuses for log in logs), Counter())
    assert set(statuses) == {200}
    assert [p for log in logs for p in log.problems] == []
    seen = {g for log in logs for g in log.generations}
    # Polls kept running under load: many cycles went by, and the scrapers saw them.
    assert max(seen) - min(seen) >= 5
    assert sum(statuses.values()) >= 100
    assert exporter.process.poll() is None


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_thousands_of_poll_cycles_keep_threads_and_memory_bounded(simulator, monkeypatch):
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for n in range(1, 3):
        simulator.add_assessment(REGION, uuid(n), f"A{n}", insights=insights(noncompliant=n))
    config: Config = parse(
        {
            "poll_interval": "1s",
            "read_timeout": "1s",
            "max_attempts": 1,
            "max_requests_per_second": 100000,
            "targets": [
                {"region": REGION, "endpoint_url": simulator.url, "assessments": [{"id": uuid(n)} for n in range(1, 3)]}
            ],
        }
    )

    def session(_: object) -> boto3.Session:
        return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)

    service = Service(config, lambda: config, session)
    exposition = Exposition(service.store, service.counters)
    fault = Fault("error", "InternalServerException", uuid(2))

    def cycles(count: int) -> None:
        for i in range(count):
            # Every tenth cycle fails for one assessment, so error paths run as often as the happy path.
            if i % 10 == 0:
                simulator.add_fault(fault)
            elif i % 10 == 1:
                simulator.clear_faults()
            service.run_cycle()
            exposition.body(gzipped=i % 2 == 0)
            if i % 100 == 99:
                simulator.reset_stats()

    cycles(200)
    threads, rss = threading.active_count(), _rss_bytes()
    cycles(1800)
    assert threading.active_count() <= threads + 2
    # About 2 MB of allocator noise here; a leak of even a few kilobytes per cycle would pass 10 MB.
    assert _rss_bytes() - rss < 10 * 1024 * 1024
    assert service.store.get().completed_cycles == 2000
    errors = service.counters.errors()
    assert sum(errors.values()) == 200
