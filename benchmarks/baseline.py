"""This checkout's exporter against an earlier revision's, in one run on one machine: poll cycle time, /metrics p99
under concurrent scrapes and memory, each as a ratio of the two (`python -m benchmarks --baseline REV`).

The earlier revision is checked out into a temporary git worktree and run as its own `python -m exporter` process
against the same simulator. The two take turns at every measurement, so the machine's other load falls on both.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from benchmarks.harness import free_port
from benchmarks.processes import ROOT, ExporterProcess, SimulatorProcess, assessment_id
from benchmarks.scraping import percentile, scrape_latencies

REGION = "us-east-1"
MB = 1024 * 1024
# The most this checkout may cost against the revision it is compared with (issue 20's bound).
BOUND = 1.1
# Scrape rounds per encoding, the two exporters taking turns in each.
ROUNDS = 6
ENCODINGS = (("plain", {}), ("gzip", {"Accept-Encoding": "gzip"}))


@dataclass(frozen=True, kw_only=True)
class BaselineSettings:
    """What is compared: assessments, concurrency, simulator latency, exporter starts per side, scrapers and seconds
    of scraping per side and encoding."""

    size: int
    concurrency: int
    latency: float
    starts: int
    scrapers: int
    scrape_seconds: float
    bounded: bool

    @classmethod
    def full(cls) -> BaselineSettings:
        return cls(size=5000, concurrency=16, latency=0.01, starts=2, scrapers=8, scrape_seconds=6.0, bounded=True)

    @classmethod
    def smoke(cls) -> BaselineSettings:
        return cls(size=50, concurrency=4, latency=0.0, starts=1, scrapers=2, scrape_seconds=0.4, bounded=False)


@dataclass
class Side:
    """What one exporter (this checkout or the baseline's) measured."""

    name: str
    root: Path
    cycles: list[float] = field(default_factory=list)
    ready: list[float] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    rss: int = 0
    peak: int = 0


@contextmanager
def checkout(revision: str) -> Iterator[Path]:
    """A detached git worktree of `revision`, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="baseline-") as directory:
        path = Path(directory) / "checkout"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(path), revision],
            check=True,
            capture_output=True,
        )
        try:
            yield path
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], capture_output=True)


def compare(revision: str, settings: BaselineSettings, progress: Callable[[str], None]) -> tuple[str, list[str]]:
    """Measure this checkout and `revision` side by side; return the table and the bounds missed."""
    simulator = SimulatorProcess({REGION: settings.size}, settings.latency)
    try:
        with checkout(revision) as path:
            current, baseline = Side("this checkout", ROOT), Side(f"baseline {revision}", path)
            _measure(simulator, settings, (current, baseline), progress)
    finally:
        simulator.stop()
    return _table(revision, settings, current, baseline)


def _measure(
    simulator: SimulatorProcess,
    settings: BaselineSettings,
    sides: tuple[Side, Side],
    progress: Callable[[str], None],
) -> None:
    running: list[tuple[Side, ExporterProcess]] = []
    try:
        for start in range(settings.starts):
            _stop(running)
            order = sides if start % 2 == 0 else sides[::-1]
            for side in order:
                progress(f"start {start + 1}: the exporter of {side.name}, N={settings.size}, C={settings.concurrency}")
                running.append((side, _start(simulator, settings, side)))
        for name, headers in ENCODINGS:
            progress(f"scraping both, {settings.scrapers} scrapers, {name}")
            for round_ in range(ROUNDS):
                for side, exporter in running if round_ % 2 == 0 else running[::-1]:
                    seconds = settings.scrape_seconds / ROUNDS
                    latencies = scrape_latencies(exporter.port, settings.scrapers, seconds, headers)
                    side.latencies.setdefault(name, []).extend(latencies)
        for side, exporter in running:
            side.rss, side.peak = exporter.memory_bytes("VmRSS"), exporter.memory_bytes("VmHWM")
    finally:
        _stop(running)


def _start(simulator: SimulatorProcess, settings: BaselineSettings, side: Side) -> ExporterProcess:
    config = {
        "poll_interval": "1h",
        "max_concurrency": settings.concurrency,
        "max_requests_per_second": 1000,
        "targets": [
            {
                "region": REGION,
                "endpoint_url": simulator.url,
                "assessments": [{"id": assessment_id(0, n)} for n in range(settings.size)],
            }
        ],
    }
    started = time.perf_counter()
    exporter = ExporterProcess(config, free_port(), root=side.root)
    exporter.wait_ready(timeout=600)
    side.ready.append(time.perf_counter() - started)
    side.cycles.append(_poll_seconds(exporter))
    # The framework look-ups follow the first cycle; the other side's cycle must not run beside them.
    simulator.wait_quiet(settings.latency)
    return exporter


def _stop(running: list[tuple[Side, ExporterProcess]]) -> None:
    for _, exporter in running:
        exporter.stop()
    running.clear()


def _poll_seconds(exporter: ExporterProcess) -> float:
    """The exporter's own `auditmanager_poll_duration_seconds` of the region: its last cycle's wall time."""
    with urllib.request.urlopen(exporter.url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "auditmanager_poll_duration_seconds" and sample.labels.get("region") == REGION:
                return sample.value
    raise RuntimeError(f"no auditmanager_poll_duration_seconds in /metrics of {exporter.url}")


def _table(revision: str, settings: BaselineSettings, current: Side, baseline: Side) -> tuple[str, list[str]]:
    missed: list[str] = []
    rows = [("measure", "this checkout", f"baseline {revision}", "ratio", f"target ≤ {BOUND}x")]
    rows.append(("---",) * 5)

    def row(measure: str, ours: float, theirs: float, unit: Callable[[float], str]) -> None:
        ratio = ours / theirs
        met = ratio <= BOUND
        if settings.bounded and not met:
            missed.append(f"{measure}: {ratio:.2f}x {revision}")
        verdict = ("met" if met else "MISSED") if settings.bounded else "(full run only)"
        rows.append((measure, unit(ours), unit(theirs), f"{ratio:.2f}x", verdict))

    def seconds(value: float) -> str:
        return f"{value:.2f} s"

    def millis(value: float) -> str:
        return f"{value * 1000:.2f} ms"

    def mebibytes(value: float) -> str:
        return f"{value / MB:.1f} MiB"

    size = f"N={settings.size}, C={settings.concurrency}"
    cycles = f"poll cycle wall time, {size} (mean of {settings.starts})"
    row(cycles, _mean(current.cycles), _mean(baseline.cycles), seconds)
    row(f"start-up + first cycle, {size}", _mean(current.ready), _mean(baseline.ready), seconds)
    for name, _ in ENCODINGS:
        ours, theirs = current.latencies[name], baseline.latencies[name]
        measure = f"/metrics p99, {settings.scrapers} scrapers, {name} ({len(ours)} and {len(theirs)} scrapes)"
        row(measure, percentile(ours, 0.99), percentile(theirs, 0.99), millis)
    row("resident memory after the scrapes (VmRSS)", current.rss, baseline.rss, mebibytes)
    row("peak resident memory (VmHWM)", current.peak, baseline.peak, mebibytes)
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows), missed


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
