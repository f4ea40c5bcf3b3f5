"""An organisation on one exporter: 10, 100 and 1,000 targets (1, 10 and 100 accounts of ten regions each) sharing
the same 2,000 assessments, beside one target of all 2,000 as the memory baseline; each the real process against a
simulator of its own, from start to the end of its second cycle: start-up, first cycle against its quota bound,
threads, open files, memory and CPU per API call.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.harness import MB, Report, free_port
from benchmarks.polling import INSIGHTS
from benchmarks.processes import ExporterProcess, FloorProcess, SimulatorProcess, access_key, assessment_id

# Each target is one region of one account, as in a real organisation: target t is account t // 10 (named profile
# p<t // 10>, whose access key id the simulator answers as that account) in region ob-org-<t % 10>. The accounts share
# the regions and the one endpoint, and a target's listing holds its own account's and region's assessments only.
REGIONS_PER_ACCOUNT = 10
# Calls of a target's first cycle besides one GetInsightsByAssessment per assessment: the listing, the account
# (one GetAssessment) and the account-level insights.
FIRST_CYCLE_CALLS = 3
# The rate limiter's window: one second and its margin.
RATE_WINDOW = 1.02
# The baseline's rate limit: high enough never to wait, so that its cycles are short.
BASELINE_RATE = 10_000.0
# The targets at the largest size.
HEALTHZ_SECONDS = 2.0
RSS_MARGIN = 100 * MB
MAX_THREADS = 60
MAX_OPEN_FILES = 200
CPU_RATIO = 1.2
FIRST_CYCLE_RATIO = 1.2


@dataclass(frozen=True, kw_only=True)
class OrganisationSettings:
    """The sizes (targets sharing `assessments`), the simulator's latency, and the config every size runs with;
    the baseline (one target of every assessment) runs at `baseline_concurrency` and BASELINE_RATE, since only its
    memory is compared."""

    sizes: tuple[int, ...]
    assessments: int
    latency: float
    max_concurrency: int
    max_requests_per_second: float
    max_workers: int
    baseline_concurrency: int
    shortest_interval: int
    cycles: int = 2

    @classmethod
    def full(cls) -> OrganisationSettings:
        return cls(
            sizes=(10, 100, 1000),
            assessments=2000,
            latency=0.1,
            max_concurrency=4,
            max_requests_per_second=10.0,
            max_workers=32,
            baseline_concurrency=16,
            shortest_interval=30,
        )

    @classmethod
    def smoke(cls) -> OrganisationSettings:
        return dataclasses.replace(
            cls.full(),
            sizes=(2, 4),
            assessments=8,
            latency=0.01,
            max_requests_per_second=1000.0,
            max_workers=8,
            baseline_concurrency=4,
            shortest_interval=1,
        )

    @property
    def cycle_workers(self) -> int:
        """The exporter's poll-cycle threads: it keeps one in eight of max_workers for the framework look-ups."""
        return self.max_workers - max(1, self.max_workers // 8)

    def limits(self, targets: int) -> tuple[int, float]:
        """Each target's max_concurrency and max_requests_per_second: the baseline's are its own."""
        if targets == 1:
            return self.baseline_concurrency, BASELINE_RATE
        return self.max_concurrency, self.max_requests_per_second

    def quota_bound(self, targets: int) -> tuple[float, str]:
        """The shortest first cycle the limits allow, and which limit sets it. With n = assessments/targets + 3
        calls per target, L the latency and w the rate limiter's 1.02 s window, the longest of:
        rate, (⌈n/R⌉ - 1)·w + L at R max_requests_per_second per target; concurrency, (1 + ⌈(n-1)/C⌉)·L at C
        max_concurrency per target (the account look-up comes first); workers, ⌈targets·n/W⌉·L for W poll-cycle
        threads in all."""
        calls = self.assessments // targets + FIRST_CYCLE_CALLS
        concurrency, rate = self.limits(targets)
        latency = self.latency
        bounds = {
            "rate": (math.ceil(calls / rate) - 1) * RATE_WINDOW + latency,
            "concurrency": (1 + math.ceil((calls - 1) / concurrency)) * latency,
            "workers": math.ceil(targets * calls / self.cycle_workers) * latency,
        }
        limit = max(bounds, key=lambda name: bounds[name])
        return bounds[limit], limit


def placement(target: int) -> tuple[int, str]:
    """Target t's account (the profile p<account>) and region."""
    return target // REGIONS_PER_ACCOUNT, f"ob-org-{target % REGIONS_PER_ACCOUNT}"


def organisation_accounts(settings: OrganisationSettings, targets: int) -> dict[str, dict[str, int]]:
    """The simulator's accounts for `targets` targets: access key -> region -> assessments, in target order, so that
    target t's assessments are `assessment_id(t, n)`."""
    accounts: dict[str, dict[str, int]] = {}
    for t in range(targets):
        account, region = placement(t)
        accounts.setdefault(access_key(account), {})[region] = settings.assessments // targets
    return accounts


def organisation_config(settings: OrganisationSettings, endpoint_url: str, targets: int) -> dict:
    """`targets` targets sharing the assessments, target t being account t // 10 (profile p<t // 10>) in region
    ob-org-<t % 10>, polled every twice their quota bound (at least shortest_interval), so that cycles never run into
    each other."""
    each = settings.assessments // targets
    interval = max(settings.shortest_interval, math.ceil(2 * settings.quota_bound(targets)[0]))
    concurrency, rate = settings.limits(targets)
    return {
        "poll_interval": f"{interval}s",
        "max_concurrency": concurrency,
        "max_requests_per_second": rate,
        "max_workers": settings.max_workers,
        "targets": [_target(t, endpoint_url, each) for t in range(targets)],
    }


def _target(t: int, endpoint_url: str, assessments: int) -> dict:
    account, region = placement(t)
    return {
        "region": region,
        "endpoint_url": endpoint_url,
        "profile": f"p{account}",
        "assessments": [{"id": assessment_id(t, n), "name": f"A{t}-{n}"} for n in range(assessments)],
    }


@dataclass(frozen=True, kw_only=True)
class OrganisationRun:
    """What one size measured; seconds count from the process's start."""

    targets: int
    healthz_seconds: float
    first_cycle_seconds: float
    peak_threads: int
    peak_open_files: int
    rss_between_cycles: int
    peak_rss: int
    cpu_seconds: float
    calls: int


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
    deadline = time.monotonic() + 900
    while simulator.count(operation) < count:
        if time.monotonic() > deadline or exporter.process.poll() is not None:
            raise RuntimeError(f"{operation} calls stayed below {count}:\n{exporter.logs()[-3000:]}")
        time.sleep(0.05)


def measure(settings: OrganisationSettings, targets: int) -> OrganisationRun:
    """Run the exporter over `targets` targets sharing the assessments, against a simulator of its own, to the end
    of its `cycles`-th cycle; memory is read between cycles (once a cycle's insights calls are all answered)."""
    simulator = SimulatorProcess({}, settings.latency, accounts=organisation_accounts(settings, targets))
    try:
        config = organisation_config(settings, simulator.url, targets)
        exporter = ExporterProcess(config, free_port(), profiles=math.ceil(targets / REGIONS_PER_ACCOUNT))
        peaks = _Peaks(exporter)
        try:
            healthz = exporter.wait_for("/healthz", timeout=900)
            first_cycle = exporter.wait_ready(timeout=900)
            between = []
            settle = max(0.5, 5 * settings.latency)
            for cycle in range(1, settings.cycles + 1):
                _wait_for(simulator, INSIGHTS, cycle * settings.assessments, exporter)
                # The cycle publishes and hands back its memory once its last call is answered.
                time.sleep(settle)
                between.append(exporter.memory_bytes("VmRSS"))
            cpu, calls = exporter.cpu_seconds(), simulator.count()
            peak_rss = exporter.memory_bytes("VmHWM")
        finally:
            peaks.stop()
            exporter.stop()
    finally:
        simulator.stop()
    return OrganisationRun(
        targets=targets,
        healthz_seconds=healthz,
        first_cycle_seconds=first_cycle,
        peak_threads=peaks.threads,
        peak_open_files=peaks.open_files,
        rss_between_cycles=max(between),
        peak_rss=peak_rss,
        cpu_seconds=cpu,
        calls=calls,
    )


def run(report: Report, settings: OrganisationSettings, progress: Callable[[str], None]) -> None:
    """The baseline, then every size, one after the other, into `report`."""
    floor = FloorProcess()
    try:
        floor_cpu = floor.cpu_seconds()
    finally:
        floor.stop()
    runs = {}
    for targets in (1, *settings.sizes):
        progress(f"organisation: {targets} target(s) sharing {settings.assessments} assessments")
        runs[targets] = measure(settings, targets)
    _rows(report, settings, runs, floor_cpu)


def _rows(report: Report, settings: OrganisationSettings, runs: dict[int, OrganisationRun], floor_cpu: float) -> None:
    baseline, smallest, largest = runs[1], runs[min(settings.sizes)], max(settings.sizes)

    def cpu_per_call(run: OrganisationRun) -> float:
        return (run.cpu_seconds - floor_cpu) / run.calls

    for targets in settings.sizes:
        run = runs[targets]
        setting = (
            f"{targets} targets x {settings.assessments // targets}, C={settings.max_concurrency}, "
            f"{settings.max_requests_per_second:g}/s each, max_workers {settings.max_workers}"
        )
        at_largest = targets == largest
        order = (targets,)
        report.row(
            "organisation: time to first /healthz",
            setting,
            f"{run.healthz_seconds:.2f} s",
            f"1 target: {baseline.healthz_seconds:.2f} s",
            "",
            report.target(run.healthz_seconds <= HEALTHZ_SECONDS, f"≤ {HEALTHZ_SECONDS:g} s") if at_largest else "",
            order=order,
        )
        bound, limit = settings.quota_bound(targets)
        # The process's fixed start-up (Python and the imports) is the one-target exporter's; what start-up grows
        # with the targets counts against the cycle.
        cycle = run.first_cycle_seconds - baseline.healthz_seconds
        ratio = cycle / bound
        report.row(
            "organisation: first cycle complete (from start)",
            setting,
            f"{run.first_cycle_seconds:.2f} s from start, {cycle:.2f} s less the 1-target start-up",
            f"quota bound {bound:.2f} s (set by {limit})",
            f"{ratio:.2f}x",
            report.target(ratio <= FIRST_CYCLE_RATIO, f"≤ {FIRST_CYCLE_RATIO}x bound") if at_largest else "",
            order=order,
        )
        report.row(
            "organisation: peak threads",
            setting,
            str(run.peak_threads),
            f"1 target: {baseline.peak_threads}",
            "",
            report.target(run.peak_threads <= MAX_THREADS, f"≤ {MAX_THREADS}") if at_largest else "",
            order=order,
        )
        report.row(
            "organisation: peak open files",
            setting,
            str(run.peak_open_files),
            f"1 target: {baseline.peak_open_files}",
            "",
            report.target(run.peak_open_files <= MAX_OPEN_FILES, f"≤ {MAX_OPEN_FILES}") if at_largest else "",
            order=order,
        )
        for measure_name, measured, reference in (
            ("organisation: RSS between cycles", run.rss_between_cycles, baseline.rss_between_cycles),
            ("organisation: peak RSS (VmHWM)", run.peak_rss, baseline.peak_rss),
        ):
            above = measured - reference
            report.row(
                measure_name,
                setting,
                f"{measured / MB:.1f} MiB",
                f"1 target of {settings.assessments}: {reference / MB:.1f} MiB",
                f"{above / MB:+.1f} MiB, {above / targets / 1024:.0f} KiB per target",
                report.target(above <= RSS_MARGIN, f"≤ +{RSS_MARGIN // MB} MiB") if at_largest else "",
                order=order,
            )
        ratio = cpu_per_call(run) / cpu_per_call(smallest)
        report.row(
            "organisation: CPU per API call",
            f"{setting}, (CPU - imports) / {run.calls} calls, start to cycle {settings.cycles}",
            f"{cpu_per_call(run) * 1000:.2f} ms",
            f"{min(settings.sizes)} targets: {cpu_per_call(smallest) * 1000:.2f} ms",
            f"{ratio:.2f}x",
            report.target(ratio <= CPU_RATIO, f"≤ {CPU_RATIO}x {min(settings.sizes)} targets") if at_largest else "",
            order=order,
        )
