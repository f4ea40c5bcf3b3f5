"""The look-up case: the real exporter discovering N tagged assessments whose frameworks are empty or real-sized
(1,000 controls, about 800 KB of JSON each), side by side in one run: GetAssessment calls per hour, CPU in steady
state and peak resident memory.

Each arm gets a simulator and an exporter process of its own. Warm-up ends once every assessment's framework has
been read (N GetAssessment calls); steady state is the next `windows` discovery intervals.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.harness import MB, REGION, Report, free_port
from benchmarks.processes import ExporterProcess, SimulatorProcess

GET_ASSESSMENT = "GetAssessment"
LIST_TAGS = "ListTagsForResource"
TAG_LABELS = ["team", "cost-center"]
# The targets: steady-state CPU at most 1.25x, peak RSS at most 16 MiB above the empty frameworks.
CPU_RATIO_TARGET = 1.25
PEAK_RSS_MARGIN = 16 * MB


@dataclass(frozen=True)
class LookupSettings:
    """Sizes to measure, each with its discovery interval (seconds), and the frameworks' size."""

    cases: tuple[tuple[int, int], ...]
    controls: int
    windows: int
    latency: float

    @classmethod
    def full(cls) -> LookupSettings:
        return cls(((100, 5), (1000, 20)), 1000, 4, 0.01)

    @classmethod
    def smoke(cls) -> LookupSettings:
        return cls(((10, 2),), 100, 2, 0.0)


@dataclass(frozen=True)
class LookupRun:
    """One arm: the exporter over `assessments` assessments whose frameworks have `controls` controls."""

    assessments: int
    controls: int
    warm_up_seconds: float
    warm_up_cpu: float
    steady_seconds: float
    steady_cpu: float
    steady_get_assessment: int
    steady_list_tags: int
    peak_rss: int

    def per_hour(self, calls: int) -> float:
        return calls * 3600 / self.steady_seconds


def measure(
    assessments: int, controls: int, discovery: int, settings: LookupSettings, progress: Callable[[str], None]
) -> LookupRun:
    """Run one arm to the end of its steady state."""
    simulator = SimulatorProcess({REGION: assessments}, settings.latency, framework_controls=controls)
    config = {
        "poll_interval": f"{discovery}s",
        "discovery_interval": f"{discovery}s",
        "max_concurrency": 16,
        "max_requests_per_second": 1000,
        "tag_labels": TAG_LABELS,
        "targets": [{"region": REGION, "endpoint_url": simulator.url, "discover": True}],
    }
    progress(f"look-ups: N={assessments}, {controls}-control frameworks, discovery every {discovery} s")
    exporter = ExporterProcess(config, free_port())
    started = time.perf_counter()
    try:
        exporter.wait_ready(timeout=300)
        deadline = started + 600
        while simulator.count(GET_ASSESSMENT) < assessments:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the frameworks were not all read in 600 s:\n{exporter.logs()}")
            time.sleep(0.2)
        warm, warm_cpu = time.perf_counter(), exporter.cpu_seconds()
        simulator.reset_stats()
        time.sleep(settings.windows * discovery)
        steady, steady_cpu = time.perf_counter() - warm, exporter.cpu_seconds() - warm_cpu
        return LookupRun(
            assessments,
            controls,
            warm - started,
            warm_cpu,
            steady,
            steady_cpu,
            simulator.count(GET_ASSESSMENT),
            simulator.count(LIST_TAGS),
            exporter.memory_bytes("VmHWM"),
        )
    finally:
        exporter.stop()
        simulator.stop()


def run(report: Report, settings: LookupSettings, progress: Callable[[str], None]) -> None:
    """Measure every size with empty and with real-sized frameworks, one after the other, into `report`."""
    for assessments, discovery in settings.cases:
        empty = measure(assessments, 0, discovery, settings, progress)
        full = measure(assessments, settings.controls, discovery, settings, progress)
        _rows(report, settings, discovery, empty, full)


def _rows(report: Report, settings: LookupSettings, discovery: int, empty: LookupRun, full: LookupRun) -> None:
    size = empty.assessments
    setting = f"N={size}, discovery every {discovery} s, {full.controls} vs 0 controls"
    order = (size,)
    report.row(
        "GetAssessment calls per hour (steady)",
        f"{setting}, over {full.steady_seconds:.0f} s",
        f"{full.per_hour(full.steady_get_assessment):.0f} (+{size} at start)",
        f"{empty.per_hour(empty.steady_get_assessment):.0f} (+{size} at start)",
        "",
        report.check(
            full.steady_get_assessment == empty.steady_get_assessment == 0,
            f"N={size}: {full.steady_get_assessment} GetAssessment calls after every framework was read",
        ),
        order=order,
    )
    report.row(
        "ListTagsForResource calls per hour (steady)",
        f"{setting}, over {full.steady_seconds:.0f} s",
        f"{full.per_hour(full.steady_list_tags):.0f}",
        f"{empty.per_hour(empty.steady_list_tags):.0f}",
        "",
        f"at most N per discovery interval: {size * 3600 / discovery:.0f}",
        order=order,
    )
    report.row(
        "look-up warm-up (every framework read once)",
        setting,
        f"{full.warm_up_seconds:.1f} s wall, {full.warm_up_cpu:.2f} s CPU",
        f"{empty.warm_up_seconds:.1f} s wall, {empty.warm_up_cpu:.2f} s CPU",
        f"{full.warm_up_cpu / empty.warm_up_cpu:.2f}x CPU",
        order=order,
    )
    ratio = full.steady_cpu / empty.steady_cpu
    report.row(
        "look-up CPU (steady)",
        f"{setting}, over {full.steady_seconds:.0f} s",
        f"{full.steady_cpu:.2f} s",
        f"{empty.steady_cpu:.2f} s",
        f"{ratio:.2f}x",
        report.target(ratio <= CPU_RATIO_TARGET, f"≤ {CPU_RATIO_TARGET}x"),
        order=order,
    )
    margin = full.peak_rss - empty.peak_rss
    report.row(
        "look-up peak resident memory (VmHWM)",
        setting,
        f"{full.peak_rss / MB:.1f} MiB",
        f"{empty.peak_rss / MB:.1f} MiB",
        f"{margin / MB:+.1f} MiB",
        report.target(margin <= PEAK_RSS_MARGIN, f"≤ +{PEAK_RSS_MARGIN // MB} MiB"),
        order=order,
    )
