"""Poll cycles of the real Poller and AuditManagerClient in this process, and the naive loop a user would write.

The simulator runs in another process (see `processes.SimulatorProcess`), which also counts the requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import boto3

from benchmarks.processes import SimulatorProcess
from exporter.aws import AuditManagerClient
from exporter.config import AUDIT_MANAGER, Target, parse
from exporter.polling import Poller, PollState, Publisher, Workers
from exporter.simulator.measure import SendTimes, max_in_window
from exporter.snapshot import ApiCounters, SnapshotStore
from exporter.sources.auditmanager.source import audit_manager_part

INSIGHTS = "GetInsightsByAssessment"
# Every operation the exporter may call; the simulator counts each.
OPERATIONS = (INSIGHTS, "GetAssessment", "ListAssessments", "GetInsights", "ListControlDomainInsightsByAssessment")


def _session(target: Target) -> boto3.Session:
    return boto3.Session(aws_access_key_id="benchmark", aws_secret_access_key="benchmark", region_name=target.region)


@dataclass(frozen=True)
class Cycle:
    """One measured poll cycle, with what the simulator saw of it."""

    wall_seconds: float
    cpu_seconds: float
    calls: dict[str, dict[str, int]]
    total_calls: int
    # Requests started in any one-second window, and when each started, measured at the client.
    max_per_second: dict[str, int]
    max_per_second_combined: int
    sent: dict[str, tuple[float, ...]]
    assessments: int
    succeeded: int


def poll_cycles(
    simulator: SimulatorProcess,
    targets: dict[str, Sequence[str]],
    concurrency: int,
    requests_per_second: float,
    cycles: int = 1,
) -> list[Cycle]:
    """Run `cycles` poll cycles of one fresh Poller over `targets` (region → assessment ids); measure each."""
    config = parse(
        {
            "max_concurrency": concurrency,
            "max_requests_per_second": requests_per_second,
            "targets": [
                {"region": region, "endpoint_url": simulator.url, "assessments": [{"id": i} for i in ids]}
                for region, ids in targets.items()
            ],
        }
    )
    counters = ApiCounters()
    sent = SendTimes()
    clients = [AuditManagerClient(target, config, counters, sent.session) for target in config.expanded_targets()]
    poller = Poller(
        config, {AUDIT_MANAGER: clients}, Publisher(PollState(), SnapshotStore()), Workers(config.max_workers), counters
    )
    measured = []
    for _ in range(cycles):
        simulator.reset_stats()
        sent.clear()
        cpu, started = time.process_time(), time.perf_counter()
        snapshot = poller.poll()
        assert snapshot is not None
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        measured.append(
            Cycle(
                wall_seconds=wall,
                cpu_seconds=cpu,
                calls={region: calls_by_operation(simulator, region) for region in targets},
                total_calls=simulator.count(),
                max_per_second={region: max_in_window(sent.times.get(region, [])) for region in targets},
                max_per_second_combined=max_in_window([t for times in sent.times.values() for t in times]),
                sent={region: tuple(times) for region, times in sent.times.items()},
                assessments=len(audit_manager_part(snapshot).assessments),
                succeeded=sum(s.poll_success for s in audit_manager_part(snapshot).assessments),
            )
        )
    return measured


def calls_by_operation(simulator: SimulatorProcess, region: str) -> dict[str, int]:
    """The requests the simulator answered in `region` since its stats were last reset, by operation."""
    counts = {operation: simulator.count(operation, region) for operation in OPERATIONS}
    return {operation: count for operation, count in counts.items() if count}


def describe_calls(calls: dict[str, int]) -> str:
    """ "1003: 1000 GetInsightsByAssessment + 1 GetAssessment + ...", the insights calls first."""
    ordered = sorted(calls.items(), key=lambda item: (item[0] != INSIGHTS, item[0]))
    return f"{sum(calls.values())}: " + " + ".join(f"{count} {operation}" for operation, count in ordered)


def naive_loop(url: str, region: str, ids: Sequence[str]) -> float:
    """Wall time of the loop a user would write by hand: one boto3 client, one call after the other."""
    client = boto3.client(
        "auditmanager",
        region_name=region,
        endpoint_url=url,
        aws_access_key_id="benchmark",
        aws_secret_access_key="benchmark",
    )
    started = time.perf_counter()
    for assessment_id in ids:
        client.get_insights_by_assessment(assessmentId=assessment_id)
    return time.perf_counter() - started


@dataclass(frozen=True)
class Overlap:
    """A steady cycle, and the next one run while the framework look-ups of every assessment are going on."""

    steady_seconds: float
    beside_details_seconds: float
    details_during_cycle: int


def cycle_beside_details(
    simulator: SimulatorProcess, region: str, ids: Sequence[str], concurrency: int, requests_per_second: float
) -> Overlap:
    """One target of `ids` at `requests_per_second`: a first cycle, a steady one (measured), then one measured while
    the framework refresh of every assessment runs beside it on its slice of the budget."""
    config = parse(
        {
            "max_concurrency": concurrency,
            "max_requests_per_second": requests_per_second,
            "targets": [{"region": region, "endpoint_url": simulator.url, "assessments": [{"id": i} for i in ids]}],
        }
    )
    counters = ApiCounters()
    clients = [AuditManagerClient(target, config, counters, _session) for target in config.expanded_targets()]
    workers = Workers(config.max_workers)
    poller = Poller(config, {AUDIT_MANAGER: clients}, Publisher(PollState(), SnapshotStore()), workers, counters)
    try:
        poller.poll()
        started = time.perf_counter()
        poller.poll()
        steady = time.perf_counter() - started
        details = threading.Thread(target=poller.refresh_background)
        details.start()
        before = simulator.count("GetAssessment")
        started = time.perf_counter()
        poller.poll()
        beside = time.perf_counter() - started
        during = simulator.count("GetAssessment") - before
        # The refresh takes ten times a cycle's budget; it is not what is measured.
        poller.stop()
        details.join()
    finally:
        workers.close()
    return Overlap(steady, beside, during)
