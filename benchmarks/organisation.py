"""An organisation-sized exporter: many targets of a few assessments each, in the real process, with its peak
threads and open files and its CPU per assessment per cycle."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from benchmarks.polling import INSIGHTS
from benchmarks.processes import ExporterProcess, SimulatorProcess, assessment_id

ASSESSMENTS_PER_TARGET = 20
CONCURRENCY = 16


@dataclass(frozen=True)
class Organisation:
    """What one run measured."""

    targets: int
    assessments: int
    peak_threads: int
    peak_open_files: int
    cpu_per_assessment_cycle: float
    cycles: float


def organisation_config(simulator: SimulatorProcess, targets: int, region: str, region_index: int) -> dict:
    """`targets` targets of ASSESSMENTS_PER_TARGET assessments each, told apart by their profile."""
    return {
        "poll_interval": "1s",
        "max_concurrency": CONCURRENCY,
        "max_requests_per_second": 1000,
        "targets": [
            {
                "region": region,
                "endpoint_url": simulator.url,
                "profile": f"p{t}",
                "assessments": [
                    {"id": assessment_id(region_index, t * ASSESSMENTS_PER_TARGET + n), "name": f"A{t}-{n}"}
                    for n in range(ASSESSMENTS_PER_TARGET)
                ],
            }
            for t in range(targets)
        ],
    }


class _Peaks:
    """Samples the process's threads and open files until stopped, keeping the highest of each."""

    def __init__(self, exporter: ExporterProcess) -> None:
        self.threads = self.open_files = 0
        self._exporter = exporter
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            try:
                self.threads = max(self.threads, self._exporter.threads())
                self.open_files = max(self.open_files, self._exporter.open_files())
            except FileNotFoundError:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _wait_for(simulator: SimulatorProcess, operation: str, count: int, exporter: ExporterProcess) -> None:
    deadline = time.monotonic() + 600
    while simulator.count(operation) < count:
        if time.monotonic() > deadline or exporter.process.poll() is not None:
            raise RuntimeError(f"{operation} calls stayed below {count}:\n{exporter.logs()[-3000:]}")
        time.sleep(0.05)


def measure_organisation(
    simulator: SimulatorProcess, targets: int, region: str, region_index: int, port: int, cycles: int = 2
) -> Organisation:
    """Run the exporter over `targets` x 20 assessments: its first cycle and framework refresh, then `cycles`
    steady cycles whose CPU is divided by the assessments and cycles polled."""
    assessments = targets * ASSESSMENTS_PER_TARGET
    simulator.reset_stats()
    exporter = ExporterProcess(organisation_config(simulator, targets, region, region_index), port, profiles=targets)
    peaks = _Peaks(exporter)
    try:
        exporter.wait_ready(timeout=600)
        _wait_for(simulator, "GetAssessment", assessments, exporter)
        # The cycle running when the refresh ended, then the steady ones.
        done = simulator.count(INSIGHTS)
        _wait_for(simulator, INSIGHTS, (done // assessments + 1) * assessments, exporter)
        cpu, start = exporter.cpu_seconds(), simulator.count(INSIGHTS)
        _wait_for(simulator, INSIGHTS, start + cycles * assessments, exporter)
        used = exporter.cpu_seconds() - cpu
        polled = simulator.count(INSIGHTS) - start
    finally:
        peaks.stop()
        exporter.stop()
    return Organisation(targets, assessments, peaks.threads, peaks.open_files, used / polled, polled / assessments)
