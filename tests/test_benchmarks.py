"""What the benchmark harness relies on: call counts per cycle, per-target rate limits, and an exposition whose fast
paths (cached, gzipped, ages rendered without prometheus_client) publish exactly what the generic path would."""

from __future__ import annotations

import gzip
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from benchmarks.harness import PER_TARGET_CALLS
from benchmarks.polling import INSIGHTS, max_in_window, poll_cycles
from benchmarks.processes import SimulatorProcess, assessment_id
from benchmarks.scraping import percentile
from exporter import collector
from exporter.collector import Exposition, ReloadCollector, SnapshotCollector
from exporter.snapshot import ApiCounters, AssessmentState, Insights, ReloadStatus, Snapshot, SnapshotStore
from tests.conftest import parse_metrics, require_binary

NOW = 1_780_000_000.25
AGE = "auditmanager_assessment_insights_age_seconds"


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorProcess]:
    process = SimulatorProcess({"us-east-1": 40, "eu-west-1": 12}, latency=0.0)
    yield process
    process.stop()


def ids(region_index: int, count: int) -> list[str]:
    return [assessment_id(region_index, n) for n in range(count)]


def test_a_cycle_makes_one_insights_call_per_assessment_and_a_constant_number_of_others(simulator):
    others = []
    for size in (5, 40):
        first, later = poll_cycles(simulator, {"us-east-1": ids(0, size)}, 4, 1000.0, cycles=2)
        for cycle in (first, later):
            calls = cycle.calls["us-east-1"]
            assert calls[INSIGHTS] == size
            assert cycle.total_calls == sum(calls.values())
            assert cycle.succeeded == cycle.assessments == size
        others.append({op: count for op, count in first.calls["us-east-1"].items() if op != INSIGHTS})
        assert sum(others[-1].values()) <= PER_TARGET_CALLS
        assert later.total_calls - size <= sum(others[-1].values())
    assert others[0] == others[1], "calls besides the insights must not grow with the number of assessments"


def test_each_target_keeps_its_own_rate_limit_and_targets_poll_in_parallel(simulator):
    targets = {"us-east-1": ids(0, 12), "eu-west-1": ids(1, 12)}
    (cycle,) = poll_cycles(simulator, targets, 8, 5.0)
    assert cycle.succeeded == 24
    assert all(cycle.calls[region][INSIGHTS] == 12 for region in targets)
    # Measured at the client; the limiter admits 5 per 1.02 s, and a shorter window leaves room for a loaded
    # machine delaying a record.
    assert all(max_in_window(times, 0.9) <= 5 for times in cycle.sent.values())
    # Side by side, not one after the other.
    us, eu = cycle.sent["us-east-1"], cycle.sent["eu-west-1"]
    assert min(us) < max(eu) and min(eu) < max(us)


def test_percentile_is_the_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile([3.0], 0.99) == 3


def state(n: int, insights: Insights | None, name: str | None = None) -> AssessmentState:
    return AssessmentState(
        "111122223333", "us-east-1", f"00000000-0000-4000-8000-{n:012d}", name or f"A{n}", insights, True, NOW - 5
    )


# Names that need escaping or could confuse the template, and ages below and above the point (1e6 s) where
# prometheus_client switches to exponent notation, fractional, zero and negative (lastUpdated in the future).
TRICKY = (
    state(1, Insights(1, 2, 3, 4, 5, NOW - 600.5), 'Prod "PCI", Zürich'),
    state(2, Insights(1, 2, 3, 4, 5, NOW - 86_400 * 40 - 0.123), "back\\slash and\nnewline"),
    state(3, Insights(1, 2, 3, 4, 5, NOW), "100% {braces} %s %(x)s"),
    state(4, Insights(1, 2, 3, 4, 5, NOW + 3.75)),
    state(5, Insights(None, None, None, None, None, None)),
    state(6, None),
    state(7, Insights(1, 2, 3, 4, 5, 1_234_567.891)),
    state(8, Insights(1, 2, 3, 4, 5, NOW - 7), "carriage\rreturn, tab\t, line\u2028separator, \x1c"),
)


def exposition_and_generic(snapshot: Snapshot, now: list[float]) -> tuple[Exposition, CollectorRegistry]:
    store, counters, reload = SnapshotStore(snapshot), ApiCounters(), ReloadCollector(ReloadStatus(NOW - 60))
    counters.count_request("GetInsightsByAssessment", "us-east-1")
    counters.count_error("GetInsightsByAssessment", "us-east-1", "ThrottlingException")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(store, counters, clock=lambda: now[0]))
    registry.register(reload)
    return Exposition(store, counters, extra=[reload], clock=lambda: now[0]), registry


def test_the_fast_age_path_renders_byte_for_byte_what_prometheus_client_renders():
    now = [NOW]
    exposition, generic = exposition_and_generic(Snapshot(TRICKY, completed_cycles=1), now)
    for step in (0.0, 0.001, 29.999, 1e6):
        now[0] = NOW + step
        assert exposition.render() == generate_latest(generic)
    assert AGE in exposition._static(exposition._store.get()).ages


def test_recent_ages_render_byte_for_byte_what_prometheus_client_renders():
    recent = tuple(s for s in TRICKY if s.insights is None or s.insights.last_updated in (None, NOW - 600.5, NOW))
    now = [NOW]
    exposition, generic = exposition_and_generic(Snapshot(recent, completed_cycles=1), now)
    for step in (0.0, 1 / 3, 86_399.999_9, 999_399.4, 999_500.0):
        now[0] = NOW + step
        assert exposition.render() == generate_latest(generic)


def test_the_ages_follow_the_clock_and_the_next_snapshot():
    now = [NOW]
    store = SnapshotStore(Snapshot(TRICKY[:1], completed_cycles=1))
    exposition = Exposition(store, ApiCounters(), clock=lambda: now[0])
    line = b'assessment_name="Prod \\"PCI\\", Z\xc3\xbcrich",region="us-east-1"} '
    assert line + b"600.5\n" in exposition.render()
    now[0] += 30
    assert line + b"630.5\n" in exposition.render()
    store.publish(Snapshot((state(1, Insights(1, 2, 3, 4, 5, NOW), 'Prod "PCI", Zürich'),), completed_cycles=2))
    assert line + b"30.0\n" in exposition.render()


def test_gzip_decodes_to_exactly_the_plain_body():
    now = [NOW]
    many = tuple(state(n, Insights(n, 2 * n, 3, 4, 5, NOW - 1000 * n - 0.5)) for n in range(1, 1001))
    exposition, _ = exposition_and_generic(Snapshot(many, completed_cycles=1), now)
    assert gzip.decompress(exposition.render(gzipped=True)) == exposition.render()


def test_concurrent_scrapes_never_get_ages_older_than_their_request():
    exposition = Exposition(SnapshotStore(Snapshot(TRICKY[:1], completed_cycles=1)), ApiCounters())
    last_updated = TRICKY[0].insights.last_updated
    results: list[tuple[float, float]] = []

    def scrape(gzipped: bool) -> None:
        for _ in range(20):
            at_arrival = time.time() - last_updated
            body = exposition.render(gzipped)
            text = (gzip.decompress(body) if gzipped else body).decode()
            (age,) = (v for (name, _), v in parse_metrics(text).items() if name == AGE)
            results.append((at_arrival, age))

    threads = [threading.Thread(target=scrape, args=(n % 2 == 0,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 160
    assert all(age >= at_arrival for at_arrival, age in results)


def test_a_live_family_that_is_not_an_age_falls_back_to_the_generic_path(monkeypatch):
    real = collector.live_families

    def with_a_square(snapshot: Snapshot, counters: ApiCounters, now: float) -> Iterator[Metric]:
        yield from real(snapshot, counters, now)
        square = GaugeMetricFamily("square", "Not linear in the clock.", labels=["assessment_id"])
        for s in snapshot.assessments:
            square.add_metric([s.assessment_id], (now - NOW) ** 2)
        yield square

    monkeypatch.setattr(collector, "live_families", with_a_square)
    now = [NOW + 2]
    exposition, generic = exposition_and_generic(Snapshot(TRICKY, completed_cycles=1), now)
    assert exposition.render() == generate_latest(generic)
    assert b"\nsquare{" in exposition.render()
    assert not exposition._static(exposition._store.get()).ages


def test_promtool_accepts_the_exposition():
    promtool = require_binary("promtool")
    exposition, _ = exposition_and_generic(Snapshot(TRICKY, completed_cycles=1), [NOW])
    result = subprocess.run([promtool, "check", "metrics"], input=exposition.render(), capture_output=True)
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()
