"""The Security Hub case: the real exporter polling one account whose standards have N active control findings, at
AWS's default quotas (GetFindings 3 per second, bursts of 6), beside an account with no findings in the same run:
GetFindings calls per cycle, the cycle's wall time against the quota, peak resident memory and CPU per finding.

Each arm gets a simulator and an exporter process of its own; the exporter's first cycle is the one measured (its
/readyz turns 200 when it ends), from the first request the simulator sees.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

from benchmarks.harness import MB, REGION, Report, free_port
from benchmarks.processes import ExporterProcess, SimulatorProcess, serve

FSBP = "standards/aws-foundational-security-best-practices/v/1.0.0"
CIS = "ruleset/cis-aws-foundations-benchmark/v/1.2.0"
CONTROLS = 300
GET_FINDINGS = "GetFindings"
GET_FINDINGS_RATE = 3.0
PAGE = 100
# The targets: the cycle within 10% of what the GetFindings quota allows, peak RSS at most 20 MiB above the
# account with no findings.
WALL_RATIO_TARGET = 1.1
PEAK_RSS_MARGIN = 20 * MB


@dataclass(frozen=True)
class HubSettings:
    findings: tuple[int, ...]

    @classmethod
    def full(cls) -> HubSettings:
        return cls((30_000, 100_000))

    @classmethod
    def smoke(cls) -> HubSettings:
        return cls((600,))


@dataclass(frozen=True)
class HubRun:
    """One arm: the exporter's first cycle over an account with `findings` active control findings."""

    findings: int
    get_findings: int
    wall_seconds: float
    cpu_seconds: float
    peak_rss: int


def _hub_main(conn: Connection, findings: int) -> None:
    from exporter.simulator import FindingSet, Simulator

    simulator = Simulator()
    hub = simulator.securityhub
    hub.enable_hub(REGION)
    hub.enable_standard(REGION, FSBP)
    hub.enable_standard(REGION, CIS)
    for n in range(CONTROLS):
        hub.add_control(REGION, f"Bench.{n}", {FSBP: True, CIS: n % 3 == 0}, severity=("LOW", "MEDIUM", "HIGH")[n % 3])
    for n in range(CONTROLS):
        share = findings // CONTROLS + (1 if n < findings % CONTROLS else 0)
        failed = share // 10
        if failed:
            hub.add_findings(REGION, FindingSet(control_id=f"Bench.{n}", status="FAILED", count=failed))
        if share > failed:
            hub.add_findings(REGION, FindingSet(control_id=f"Bench.{n}", status="PASSED", count=share - failed))
    serve(conn, simulator)


class HubSimulatorProcess(SimulatorProcess):
    """The Security Hub simulator with `findings` findings spread over CONTROLS controls, in a process of its own."""

    def __init__(self, findings: int) -> None:
        self._start(_hub_main, findings)


def measure(findings: int, progress: Callable[[str], None]) -> HubRun:
    """The exporter's first cycle over an account with `findings` findings."""
    simulator = HubSimulatorProcess(findings)
    config = {
        "poll_interval": "1h",
        "targets": [{"region": REGION, "endpoint_url": simulator.url, "sources": ["securityhub"]}],
    }
    progress(f"security hub: {findings} findings")
    exporter = ExporterProcess(config, free_port())
    try:
        timeout = 120 + 2 * math.ceil(findings / PAGE) / GET_FINDINGS_RATE
        exporter.wait_ready(timeout=timeout)
        ended = time.monotonic()
        return HubRun(
            findings=findings,
            get_findings=simulator.count(GET_FINDINGS),
            wall_seconds=ended - simulator.first_request(),
            cpu_seconds=exporter.cpu_seconds(),
            peak_rss=exporter.memory_bytes("VmHWM"),
        )
    finally:
        exporter.stop()
        simulator.stop()


def run(report: Report, settings: HubSettings, progress: Callable[[str], None]) -> None:
    """The account with no findings, then every size, into `report`."""
    empty = measure(0, progress)
    for findings in settings.findings:
        _rows(report, empty, measure(findings, progress))


def _rows(report: Report, empty: HubRun, run: HubRun) -> None:
    setting = f"{run.findings} findings, {CONTROLS} controls, 2 standards, GetFindings {GET_FINDINGS_RATE:g}/s"
    order = (run.findings,)
    calls = math.ceil(run.findings / PAGE)
    report.row(
        "Security Hub: GetFindings calls per cycle",
        setting,
        str(run.get_findings),
        f"{empty.get_findings} (no findings)",
        "",
        report.check(
            run.get_findings == calls, f"{run.findings} findings: {run.get_findings} GetFindings, not {calls}"
        ),
        order=order,
    )
    allowed = calls / GET_FINDINGS_RATE
    report.row(
        "Security Hub: cycle wall time",
        setting,
        f"{run.wall_seconds:.1f} s",
        f"{allowed:.1f} s at {GET_FINDINGS_RATE:g}/s",
        f"{run.wall_seconds / allowed:.3f}x",
        report.target(run.wall_seconds <= WALL_RATIO_TARGET * allowed, f"≤ {WALL_RATIO_TARGET}x"),
        order=order,
    )
    margin = run.peak_rss - empty.peak_rss
    report.row(
        "Security Hub: peak resident memory (VmHWM)",
        setting,
        f"{run.peak_rss / MB:.1f} MiB",
        f"{empty.peak_rss / MB:.1f} MiB (no findings)",
        f"{margin / MB:+.1f} MiB",
        report.target(margin <= PEAK_RSS_MARGIN, f"≤ +{PEAK_RSS_MARGIN // MB} MiB"),
        order=order,
    )
    per_finding = (run.cpu_seconds - empty.cpu_seconds) / run.findings
    report.row(
        "Security Hub: CPU per finding",
        setting,
        f"{per_finding * 1e6:.0f} µs",
        f"{empty.cpu_seconds:.2f} s (start-up, no findings)",
        "",
        "",
        order=order,
    )
