"""The benchmark run: every measurement in one go, in a fixed order, into one table with ratios and checks.

A check failing (wrong call counts, the rate limit exceeded, a body that does not decode) is a functional error
and fails the run; a performance target missed is only reported.
"""

from __future__ import annotations

import gzip
import math
import os
import platform
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from benchmarks.polling import (
    INSIGHTS,
    Cycle,
    calls_by_operation,
    cycle_beside_details,
    describe_calls,
    naive_loop,
    poll_cycles,
)
from benchmarks.processes import ExporterProcess, FloorProcess, SimulatorProcess, StaticServerProcess, assessment_id
from benchmarks.scraping import percentile, scrape_latencies
from exporter.simulator.measure import max_in_window

REGION = "us-east-1"
OTHER_REGION = "eu-west-1"
MB = 1024 * 1024
# Calls a target may make in a cycle besides one GetInsightsByAssessment per assessment: the account id, the
# names and the account-level insights. None of them may grow with the number of assessments.
PER_TARGET_CALLS = 3
# Rounds of scrapes of the static server and the exporter, taking turns.
SCRAPE_ROUNDS = 6
# The table's order of measures; rows of one measure keep the order they were measured in.
ORDER = (
    "poll cycle wall time (first)",
    "poll cycle wall time (steady)",
    "naive sequential boto3 loop",
    "exporter vs naive loop",
    "API calls per cycle",
    "max requests in any 1 s window",
    "rate-limited cycle wall time",
    "cycle beside the framework look-ups",
    "organisation: time to first /healthz",
    "organisation: first cycle complete (from start)",
    "organisation: peak threads",
    "organisation: peak open files",
    "organisation: RSS between cycles",
    "organisation: peak RSS (VmHWM)",
    "organisation: CPU per API call",
    "/metrics latency p50",
    "/metrics latency p99",
    "/metrics body size",
    "resident memory (VmRSS)",
    "peak resident memory (VmHWM)",
    "CPU seconds per cycle (in-process)",
    "exporter start-up + first cycle",
    "idle CPU between polls",
    "GetAssessment calls per hour (steady)",
    "ListTagsForResource calls per hour (steady)",
    "look-up warm-up (every framework read once)",
    "look-up CPU (steady)",
    "look-up peak resident memory (VmHWM)",
    "Security Hub: GetFindings calls per cycle",
    "Security Hub: cycle wall time",
    "Security Hub: peak resident memory (VmHWM)",
    "Security Hub: CPU per finding",
)


@dataclass(frozen=True)
class Settings:
    """What to measure; `full()` is the published run, `smoke()` the CI one."""

    sizes: tuple[int, ...]
    concurrencies: tuple[int, ...]
    latency: float
    fast_rate: float
    limited_size: int
    limited_rate: float
    scrape_sizes: tuple[int, ...]
    scrapers: tuple[int, ...]
    scrape_seconds: float
    idle_seconds: float
    targets: bool
    # Assessments of the one target whose cycle runs beside the framework look-ups, at limited_rate.
    overlap_size: int = 200

    @classmethod
    def full(cls) -> Settings:
        return cls((10, 100, 1000), (1, 8, 16), 0.1, 1000.0, 100, 20.0, (100, 1000, 5000), (1, 8), 3.0, 30.0, True)

    @classmethod
    def smoke(cls) -> Settings:
        return cls((5, 20), (1, 4), 0.01, 1000.0, 12, 5.0, (20,), (1, 4), 0.5, 2.0, False, 20)


@dataclass
class Report:
    """The table's rows, and the checks that failed."""

    settings: Settings
    rows: list[tuple[tuple[int, ...], tuple[str, ...]]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    first_cycles: dict[tuple[int, int], float] = field(default_factory=dict)

    def row(
        self,
        measure: str,
        setting: str,
        measured: str,
        reference: str = "",
        ratio: str = "",
        target: str = "",
        order: tuple[int, ...] = (),
    ) -> None:
        """Add a row; rows sort by measure (see ORDER), then by `order`, then in the order they were added."""
        self.rows.append(((ORDER.index(measure), *order), (measure, setting, measured, reference, ratio, target)))

    def check(self, ok: bool, failure: str) -> str:
        if not ok:
            self.failures.append(failure)
        return "ok" if ok else "FAILED"

    def target(self, met: bool, text: str) -> str:
        if not self.settings.targets:
            return f"{text} (full run only)"
        return f"{text}: {'met' if met else 'MISSED'}"

    def table(self) -> str:
        header = ("measure", "setting", "measured", "reference (same run)", "ratio", "target / check")
        lines = [_line(header), _line(tuple("---" for _ in header))]
        lines += [_line(row) for _, row in sorted(self.rows, key=lambda row: row[0])]
        return "\n".join(lines)


def _line(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(cells) + " |"


def machine() -> str:
    """One line about the machine: CPU model, cores, Python and kernel."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0))
    return f"{model}, {cores} cores, Python {platform.python_version()}, Linux {platform.release()}"


def run(settings: Settings, progress: Callable[[str], None]) -> Report:
    """Measure everything, in the order of the table."""
    report = Report(settings)
    largest = max(settings.sizes)
    regions = {
        REGION: max(largest, settings.overlap_size),
        OTHER_REGION: settings.limited_size,
    }
    progress(f"starting the simulator ({largest} assessments, {settings.latency * 1000:g} ms latency)")
    simulator = SimulatorProcess(regions, settings.latency)
    try:
        _poll_cycles(report, simulator)
        _rate_limit(report, simulator)
        progress("a cycle beside the framework look-ups")
        _details_overlap(report, simulator)
        _long_sequential(report, simulator, progress)
    finally:
        simulator.stop()
    # The exporter process gets a simulator of its own: its largest size would otherwise change the listing the
    # poll cycles above make (ListAssessments pages grow with the assessments in the region).
    progress(f"starting a simulator for the exporter process ({max(settings.scrape_sizes)} assessments)")
    simulator = SimulatorProcess({REGION: max(settings.scrape_sizes)}, settings.latency)
    try:
        _exporter(report, simulator, progress)
    finally:
        simulator.stop()
    return report


def _ids(region_index: int, count: int) -> list[str]:
    return [assessment_id(region_index, n) for n in range(count)]


def _ideal(calls: int, concurrency: int, latency: float) -> float:
    return math.ceil(calls / concurrency) * latency


def _cycle_row(report: Report, name: str, size: int, concurrency: int, cycle: Cycle) -> None:
    settings = report.settings
    ideal = _ideal(size, concurrency, settings.latency)
    ratio = cycle.wall_seconds / ideal
    if name == "first":
        report.first_cycles[size, concurrency] = cycle.wall_seconds
    target = ""
    if name == "first" and concurrency == max(settings.concurrencies) and size == max(settings.sizes):
        target = report.target(ratio <= 1.15, "≤ 1.15x ideal")
    report.row(
        f"poll cycle wall time ({name})",
        f"N={size}, C={concurrency}",
        f"{cycle.wall_seconds:.2f} s",
        f"ideal ⌈N/C⌉xlatency {ideal:.2f} s",
        f"{ratio:.2f}x",
        target,
        order=(size, concurrency),
    )


def _check_calls(report: Report, sizes: dict[str, int], cycle: Cycle) -> str:
    """Exactly one insights call per assessment, at most PER_TARGET_CALLS others per target, every poll a success."""
    ok = cycle.total_calls == sum(sum(calls.values()) for calls in cycle.calls.values())
    ok = ok and cycle.succeeded == cycle.assessments == sum(sizes.values())
    for region, size in sizes.items():
        calls = cycle.calls[region]
        ok = ok and calls.get(INSIGHTS) == size and sum(calls.values()) - size <= PER_TARGET_CALLS
    return report.check(ok, f"{sizes} assessments: {cycle.calls} requests (total {cycle.total_calls}) in a cycle")


def _poll_cycles(report: Report, simulator: SimulatorProcess) -> None:
    settings = report.settings
    largest, widest = max(settings.sizes), max(settings.concurrencies)
    for size in settings.sizes:
        for concurrency in settings.concurrencies:
            if size == largest and concurrency == 1:
                continue  # measured later, side by side with the naive loop
            steady = size == largest and concurrency == widest
            ids = {REGION: _ids(0, size)}
            cycles = poll_cycles(simulator, ids, concurrency, settings.fast_rate, 2 if steady else 1)
            checks = [_check_calls(report, {REGION: size}, cycle) for cycle in cycles]
            _cycle_row(report, "first", size, concurrency, cycles[0])
            if steady:
                _cycle_row(report, "steady", size, concurrency, cycles[1])
                first, second = cycles
                for name, cycle, check in (("first cycle", first, checks[0]), ("later cycles", second, checks[1])):
                    report.row(
                        "API calls per cycle",
                        f"N={size}, 1 target, {name}",
                        describe_calls(cycle.calls[REGION]),
                        f"N GetInsightsByAssessment + at most {PER_TARGET_CALLS} per target",
                        "",
                        f"exact: {check}",
                    )
                report.row(
                    "CPU seconds per cycle (in-process)",
                    f"N={size}, C={concurrency}",
                    f"{first.cpu_seconds:.2f} s first, {second.cpu_seconds:.2f} s later",
                    f"{second.cpu_seconds / size * 1000:.2f} ms per assessment",
                )


def _rate_limit(report: Report, simulator: SimulatorProcess) -> None:
    settings = report.settings
    size, rate, concurrency = settings.limited_size, settings.limited_rate, max(settings.concurrencies)
    targets = {REGION: _ids(0, size), OTHER_REGION: _ids(1, size)}
    (cycle,) = poll_cycles(simulator, targets, concurrency, rate)
    # The check reads half-second windows: the limiter admits `rate` per 1.02 s, and a loaded machine that delays a
    # record by up to half a second must not fail it. The row still reports the 1 s windows.
    worst = max(max_in_window(times, 0.5) for times in cycle.sent.values())
    # Two targets at their own limit each: each stays under its own, and together they go beyond one.
    ok = worst <= rate < cycle.max_per_second_combined <= 2 * rate
    check = report.check(ok, f"rate limit {rate:g}/s per target: windows {cycle.max_per_second}")
    calls_check = _check_calls(report, {REGION: size, OTHER_REGION: size}, cycle)
    per_region = " and ".join(f"{count}" for count in cycle.max_per_second.values())
    report.row(
        "max requests in any 1 s window",
        f"2 targets x N={size}, {rate:g}/s each, C={concurrency}",
        f"{per_region} per target, {cycle.max_per_second_combined} combined",
        f"limit {rate:g} per target",
        "",
        f"≤ limit per target, targets in parallel: {check}; calls: {calls_check}",
    )
    per_target = max(sum(calls.values()) for calls in cycle.calls.values())
    # The limiter lets `rate` requests start at once, then `rate` more each second.
    ideal = math.ceil(per_target / rate) - 1 + settings.latency
    report.row(
        "rate-limited cycle wall time",
        f"2 targets x N={size}, {rate:g}/s each",
        f"{cycle.wall_seconds:.2f} s",
        f"ideal (⌈{per_target} calls/rate⌉ - 1) s + latency = {ideal:.2f} s",
        f"{cycle.wall_seconds / ideal:.2f}x",
    )


def _details_overlap(report: Report, simulator: SimulatorProcess) -> None:
    settings = report.settings
    size, rate, concurrency = settings.overlap_size, settings.limited_rate, max(settings.concurrencies)
    overlap = cycle_beside_details(simulator, REGION, _ids(0, size), concurrency, rate)
    ratio = overlap.beside_details_seconds / overlap.steady_seconds
    report.row(
        "cycle beside the framework look-ups",
        f"N={size}, {rate:g}/s, C={concurrency}; {overlap.details_during_cycle} GetAssessment during the cycle",
        f"{overlap.beside_details_seconds:.2f} s",
        f"steady cycle {overlap.steady_seconds:.2f} s",
        f"{ratio:.2f}x",
        report.target(ratio <= 1.15, "≤ 1.15x steady"),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, eq=False)
class Encoding:
    """A way to ask for /metrics: the request headers, and how the table names it. Each is its own key."""

    name: str
    headers: dict[str, str]

    @property
    def headers_key(self) -> tuple[bool, bool]:
        """(OpenMetrics, gzip): what the static server picks its answer by."""
        return "openmetrics" in self.headers.get("Accept", ""), "gzip" in self.headers.get("Accept-Encoding", "")


PLAIN = Encoding("plain", {})
GZIP = Encoding("gzip", {"Accept-Encoding": "gzip"})
# What Prometheus asks for by default.
OPENMETRICS_GZIP = Encoding(
    "OpenMetrics gzip",
    {
        "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "Accept-Encoding": "gzip",
    },
)
ENCODINGS = (PLAIN, GZIP, OPENMETRICS_GZIP)


def _fetch(url: str, encoding: Encoding) -> tuple[bytes, str]:
    request = urllib.request.Request(url, headers=encoding.headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read(), response.headers.get("Content-Type", "")


def _exporter_config(simulator: SimulatorProcess, size: int, concurrency: int, rate: float) -> dict[str, object]:
    return {
        "poll_interval": "1h",
        "max_concurrency": concurrency,
        "max_requests_per_second": rate,
        "targets": [
            {"region": REGION, "endpoint_url": simulator.url, "assessments": [{"id": i} for i in _ids(0, size)]}
        ],
    }


def _exporter(report: Report, simulator: SimulatorProcess, progress: Callable[[str], None]) -> None:
    """The real exporter process at each scrape size: its first cycle, memory against the floor, scrapes."""
    progress("measuring the memory floor: the exporter's imports and one client")
    floor_process = FloorProcess()
    try:
        floor = floor_process.memory_bytes()
    finally:
        floor_process.stop()
    for size in report.settings.scrape_sizes:
        _exporter_at(report, simulator, size, floor, progress)


def _exporter_at(
    report: Report, simulator: SimulatorProcess, size: int, floor: int, progress: Callable[[str], None]
) -> None:
    settings = report.settings
    concurrency = max(settings.concurrencies)
    largest = size == max(settings.scrape_sizes)
    progress(f"starting the exporter process (N={size}, C={concurrency})")
    simulator.reset_stats()
    exporter = ExporterProcess(_exporter_config(simulator, size, concurrency, settings.fast_rate), free_port())
    started = time.perf_counter()
    try:
        exporter.wait_ready(timeout=600)
        ready, first_cpu = time.perf_counter() - started, exporter.cpu_seconds()
        insights = simulator.count(INSIGHTS)
        report.row(
            "exporter start-up + first cycle",
            f"exporter process, N={size}, C={concurrency}",
            f"{ready:.2f} s wall, {first_cpu:.2f} s CPU",
            f"{insights} GetInsightsByAssessment",
            "",
            report.check(insights == size, f"the exporter's first cycle made {insights} insights calls, not {size}"),
            order=(size,),
        )
        progress("waiting for the exporter to finish its work after the first cycle")
        simulator.wait_quiet(settings.latency)
        if largest:
            report.row(
                "API calls per cycle",
                f"N={size}, exporter process, first cycle + look-ups",
                describe_calls(calls_by_operation(simulator, REGION)),
                "the look-ups: 1 GetAssessment per assessment, once",
            )
        _memory_row(report, exporter, "VmRSS", "after its first cycle and the framework look-ups", size, floor, None)
        _scrapes(report, exporter, size, progress)
        _memory_row(report, exporter, "VmRSS", "after the concurrent scrapes", size, floor, 40)
        _memory_row(report, exporter, "VmHWM", "at its peak, first cycle and scrapes included", size, floor, 60)
        if largest:
            _idle_cpu(report, exporter, progress)
    finally:
        exporter.stop()


def _memory_row(
    report: Report, exporter: ExporterProcess, field: str, when: str, size: int, floor: int, bound: int | None
) -> None:
    measured = exporter.memory_bytes(field)
    above = measured - floor
    target = "" if bound is None else report.target(above <= bound * MB, f"≤ floor + {bound} MiB")
    report.row(
        "resident memory (VmRSS)" if field == "VmRSS" else "peak resident memory (VmHWM)",
        f"exporter process {when}, N={size}",
        f"{measured / MB:.1f} MiB",
        f"floor {floor / MB:.1f} MiB (the exporter's imports and one client)",
        f"+{above / MB:.1f} MiB, {above / size / 1024:.1f} KiB per assessment",
        target,
        order=(size,),
    )


def _idle_cpu(report: Report, exporter: ExporterProcess, progress: Callable[[str], None]) -> None:
    seconds = report.settings.idle_seconds
    progress(f"measuring idle CPU for {seconds:g} s")
    idle_start = exporter.cpu_seconds()
    time.sleep(seconds)
    idle = exporter.cpu_seconds() - idle_start
    share = idle / seconds
    report.row(
        "idle CPU between polls",
        f"exporter process, {seconds:g} s, no scrapes",
        f"{idle:.2f} s ({share * 100:.2f} % of a core)",
        "",
        "",
        report.target(share < 0.01, "< 1 % of a core"),
    )


def _samples(families: Iterable[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in families for s in family.samples}


def _check_bodies(report: Report, size: int, bodies: dict[Encoding, bytes]) -> str:
    """Every encoding says the same: gzip decodes to the plain text, OpenMetrics parses to the same samples."""
    text = bodies[PLAIN].decode()
    same_gzip = gzip.decompress(bodies[GZIP]).decode() == text
    from_text = _samples(parse_text(text))
    from_openmetrics = _samples(parse_openmetrics(gzip.decompress(bodies[OPENMETRICS_GZIP]).decode()))
    # The live part (process metrics, counters) may differ between the fetches; the snapshot's series may not.
    snapshot = {key: value for key, value in from_text.items() if key[0].startswith("auditmanager_assessment")}
    same_openmetrics = all(from_openmetrics.get(key) == value for key, value in snapshot.items())
    polled = sum(1 for name, _ in snapshot if name == "auditmanager_assessment_poll_success")
    ok = same_gzip and same_openmetrics and polled == size
    return report.check(
        ok, f"/metrics at N={size}: gzip same {same_gzip}, OpenMetrics same {same_openmetrics}, {polled} assessments"
    )


def _scrapes(report: Report, exporter: ExporterProcess, size: int, progress: Callable[[str], None]) -> None:
    settings = report.settings
    fetched = {encoding: _fetch(exporter.url + "/metrics", encoding) for encoding in ENCODINGS}
    bodies = {encoding: body for encoding, (body, _) in fetched.items()}
    check = _check_bodies(report, size, bodies)
    plain, compressed, openmetrics = bodies[PLAIN], bodies[GZIP], bodies[OPENMETRICS_GZIP]
    report.row(
        "/metrics body size",
        f"N={size}",
        f"{len(plain) / 1024:.0f} KiB plain, {len(compressed) / 1024:.0f} KiB gzip, "
        f"{len(openmetrics) / 1024:.0f} KiB OpenMetrics gzip",
        f"{len(plain) / size:.0f} B plain and {len(compressed) / size:.0f} B gzip per assessment",
        f"{len(compressed) / len(plain):.3f}x",
        f"every encoding says the same: {check}",
        order=(size,),
    )
    static = StaticServerProcess({encoding.headers_key: fetched[encoding] for encoding in ENCODINGS})
    try:
        for scrapers in settings.scrapers:
            for order, encoding in enumerate(ENCODINGS):
                progress(f"N={size}: scraping with {scrapers} scraper(s), {encoding.name}")
                floor: list[float] = []
                measured: list[float] = []
                # Taking turns in short rounds, so that the machine's other load falls on both sides alike.
                seconds = settings.scrape_seconds / SCRAPE_ROUNDS
                for round_ in range(SCRAPE_ROUNDS):
                    turns = [(static.port, floor), (exporter.port, measured)]
                    for port, latencies in turns if round_ % 2 == 0 else reversed(turns):
                        latencies.extend(scrape_latencies(port, scrapers, seconds, encoding.headers))
                _latency_rows(report, size, scrapers, encoding, order, measured, floor)
    finally:
        static.stop()


def _latency_rows(
    report: Report,
    size: int,
    scrapers: int,
    encoding: Encoding,
    order: int,
    measured: list[float],
    floor: list[float],
) -> None:
    setting = f"N={size}, {scrapers} scraper{'s' if scrapers > 1 else ''}, {encoding.name}"
    for name, fraction in (("p50", 0.5), ("p99", 0.99)):
        ours, theirs = percentile(measured, fraction), percentile(floor, fraction)
        target = ""
        if name == "p99" and scrapers == max(report.settings.scrapers):
            target = report.target(ours <= 1.5 * theirs, "≤ 1.5x static")
        report.row(
            f"/metrics latency {name}",
            f"{setting} ({len(measured)} scrapes)",
            f"{ours * 1000:.2f} ms",
            f"static server {theirs * 1000:.2f} ms ({len(floor)} scrapes)",
            f"{ours / theirs:.2f}x",
            target,
            order=(size, scrapers, order),
        )


def _long_sequential(report: Report, simulator: SimulatorProcess, progress: Callable[[str], None]) -> None:
    """The two slowest measurements, C=1 and the naive loop at the largest N, side by side in two threads.

    Both spend their time waiting on the simulator's latency (a few % of a core each), so running them at once
    halves the harness's run time without slowing either.
    """
    settings = report.settings
    size = max(settings.sizes)
    ids = _ids(0, size)
    progress(f"polling N={size} with C=1 and the naive loop, side by side (about {size * settings.latency:.0f} s)")
    results: dict[str, object] = {}

    def exporter_c1() -> None:
        results["poller"] = poll_cycles(simulator, {REGION: ids}, 1, settings.fast_rate)[0]

    def naive() -> None:
        results["naive"] = naive_loop(own.url, REGION, ids)

    # The naive loop gets a simulator of its own, so that each side's requests can be counted apart.
    own = SimulatorProcess({REGION: size}, settings.latency)

    threads = [threading.Thread(target=exporter_c1), threading.Thread(target=naive)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    own.stop()
    cycle = results.get("poller")
    naive_seconds = results.get("naive")
    if not isinstance(cycle, Cycle) or not isinstance(naive_seconds, float):
        raise RuntimeError("the sequential measurements failed (see the traceback above)")
    _cycle_row(report, "first", size, 1, cycle)
    _check_calls(report, {REGION: size}, cycle)
    ideal = size * settings.latency
    report.row(
        "naive sequential boto3 loop",
        f"N={size}, one call after the other",
        f"{naive_seconds:.2f} s",
        f"ideal Nxlatency {ideal:.2f} s",
        f"{naive_seconds / ideal:.2f}x",
    )
    widest = max(settings.concurrencies)
    best_seconds = report.first_cycles[size, widest]
    report.row(
        "exporter vs naive loop",
        f"N={size}: exporter C={widest} vs naive",
        f"{best_seconds:.2f} s",
        f"naive {naive_seconds:.2f} s",
        f"{best_seconds / naive_seconds:.3f}x",
    )
