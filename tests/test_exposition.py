"""The prepared /metrics bodies: rendered once per snapshot outside the publisher's thread, identical objects across
scrapes, byte for byte what prometheus_client renders in both formats, and a live part that is never stale for the
exporter's own counts."""

from __future__ import annotations

import gzip
import subprocess
import threading
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter import exposition as exposition_module
from exporter.collector import ReloadCollector, SnapshotCollector
from exporter.exposition import LIVE_MAX_AGE, Body, Exposition
from exporter.snapshot import ApiCounters, ReloadStatus, Snapshot, SnapshotStore
from exporter.sources.auditmanager.state import AssessmentState, ControlDomainInsights, Insights
from tests.conftest import audit_manager_snapshot, require_binary

NOW = 1_780_000_000.25


def state(n: int, insights: Insights | None, name: str | None = None) -> AssessmentState:
    domains = (ControlDomainInsights("Logging", 1, 2, 3, 4, 5, NOW),) if n == 1 else ()
    return AssessmentState(
        account_id="111122223333",
        region="us-east-1",
        assessment_id=f"00000000-0000-4000-8000-{n:012d}",
        name=name or f"A{n}",
        insights=insights,
        poll_success=True,
        last_success=NOW,
        control_domains=domains,
    )


# Names that need escaping in either format, null counts, and timestamps around 1e6 where Go's notation begins.
TRICKY = (
    state(1, Insights(1, 2, 3, 4, 5, NOW - 600.5), 'Prod "PCI", Zürich'),
    state(2, Insights(1, 2, 3, 4, 5, NOW - 0.123), "back\\slash and\nnewline"),
    state(3, Insights(1, 2, 3, 4, 5, NOW), "100% {braces} %s %(x)s"),
    state(4, Insights(None, None, None, None, None, None)),
    state(5, None),
    state(6, Insights(1, 2, 3, 4, 5, 1_234_567.891), "carriage\rreturn, tab\t, line\u2028separator, \x1c"),
)


def decoded(body: Body) -> str:
    data = b"".join(body.parts)
    return (gzip.decompress(data) if body.gzipped else data).decode()


def samples_of(families: Iterator[Metric]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value for family in families for s in family.samples}


@pytest.fixture
def parts() -> tuple[SnapshotStore, ApiCounters, ReloadStatus, list[float]]:
    counters = ApiCounters()
    counters.count_request("GetInsightsByAssessment", "us-east-1")
    counters.count_error("GetInsightsByAssessment", "us-east-1", "ThrottlingException")
    return (
        SnapshotStore(audit_manager_snapshot(assessments=TRICKY, completed_cycles=1)),
        counters,
        ReloadStatus(NOW - 60),
        [0.0],
    )


def exposition_for(parts: tuple[SnapshotStore, ApiCounters, ReloadStatus, list[float]]) -> Exposition:
    store, counters, reload_status, clock = parts
    return Exposition(store, counters, reload_status, clock=lambda: clock[0])


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_scrapes_of_one_snapshot_write_the_identical_prepared_objects(parts, openmetrics, gzipped):
    exposition = exposition_for(parts)
    first, second = exposition.body(openmetrics, gzipped), exposition.body(openmetrics, gzipped)
    assert first.parts and all(a is b for a, b in zip(first.parts, second.parts, strict=True))
    store = parts[0]
    store.publish(audit_manager_snapshot(assessments=TRICKY[:1], completed_cycles=2))
    third = exposition.body(openmetrics, gzipped)
    assert third.parts[0] is not first.parts[0]
    assert 'assessment_name="A4"' not in decoded(third) and 'assessment_name="A4"' in decoded(first)


def test_the_text_and_openmetrics_bodies_share_the_families_they_render_alike(parts):
    exposition = exposition_for(parts)
    text, openmetrics = exposition.snapshot_part().text, exposition.snapshot_part().openmetrics
    shared = [part for part in text if any(part is other for other in openmetrics)]
    # Only the counter family differs (its OpenMetrics family name has no _total); every gauge is kept once.
    assert sum(len(part) for part in shared) > 0.9 * sum(len(part) for part in text)


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_both_bodies_are_byte_for_byte_what_prometheus_client_renders(parts, gzipped):
    store, counters, reload_status, _ = parts
    exposition = exposition_for(parts)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(store, counters))
    registry.register(ReloadCollector(reload_status))
    assert decoded(exposition.body(False, gzipped)).encode() == generate_latest(registry)
    assert decoded(exposition.body(True, gzipped)).encode() == generate_openmetrics(registry)


def test_both_formats_parse_to_the_same_samples_with_prometheus_clients_parsers(parts):
    exposition = exposition_for(parts)
    text = decoded(exposition.body(openmetrics=False))
    openmetrics = decoded(exposition.body(openmetrics=True))
    assert openmetrics.endswith("\n# EOF\n") and "# EOF" not in text
    from_text, from_openmetrics = samples_of(parse_text(text)), samples_of(parse_openmetrics(openmetrics))
    assert from_text == from_openmetrics
    name = ("auditmanager_assessment_controls", "assessment_name", "back\\slash and\nnewline")
    assert any(key[0] == name[0] and (name[1], name[2]) in key[1] for key in from_openmetrics)
    assert (
        from_text[
            "auditmanager_api_requests_total",
            frozenset({("operation", "GetInsightsByAssessment"), ("region", "us-east-1")}),
        ]
        == 1
    )


def test_promtool_check_metrics_accepts_the_text_body(parts):
    # promtool reads the text format only (an OpenMetrics counter's family has no _total, which it reads as a
    # family without help); tests/test_prometheus_e2e.py has a real Prometheus scrape the OpenMetrics body.
    promtool = require_binary("promtool")
    body = b"".join(exposition_for(parts).body(openmetrics=False).parts)
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, check=False, timeout=60)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_a_snapshot_is_rendered_by_another_thread_than_the_publisher_and_waited_for_by_scrapes(parts, monkeypatch):
    store = parts[0]
    exposition = exposition_for(parts)
    real = exposition_module.snapshot_families
    release, render_threads = threading.Event(), []

    def slow(snapshot: Snapshot) -> Iterator[Metric]:
        render_threads.append(threading.current_thread())
        assert release.wait(60)
        yield from real(snapshot)

    monkeypatch.setattr(exposition_module, "snapshot_families", slow)
    publisher_lock = threading.Lock()

    def publish() -> None:
        with publisher_lock:
            store.publish(audit_manager_snapshot(assessments=TRICKY[:2], completed_cycles=2))

    publisher = threading.Thread(target=publish)
    publisher.start()
    # publish() returns although the render cannot finish yet: the render does not run under the publisher's lock.
    publisher.join(60)
    assert not publisher.is_alive()
    scraped: list[str] = []
    scraper = threading.Thread(target=lambda: scraped.append(decoded(exposition.body())))
    scraper.start()
    release.set()
    scraper.join(60)
    assert render_threads and all(thread is not publisher for thread in render_threads)
    assert "100% {braces}" not in scraped[0]
    assert 'assessment_name="Prod \\"PCI\\", Zürich"' in scraped[0]


def test_a_scrape_fails_rather_than_serve_a_snapshot_that_could_not_be_rendered(parts, monkeypatch):
    store = parts[0]
    exposition = exposition_for(parts)

    def broken(snapshot: Snapshot) -> Iterator[Metric]:
        raise ValueError("no")
        yield

    monkeypatch.setattr(exposition_module, "snapshot_families", broken)
    store.publish(audit_manager_snapshot(assessments=TRICKY[:1], completed_cycles=2))
    with pytest.raises(RuntimeError, match="no"):
        exposition.body()


def test_the_exporters_own_counts_and_reload_status_are_current_at_every_scrape(parts):
    _, counters, reload_status, _ = parts
    exposition = exposition_for(parts)
    assert "auditmanager_exporter_config_last_reload_successful 1.0" in decoded(exposition.body())
    counters.count_request("GetInsightsByAssessment", "us-east-1")
    assert 'operation="GetInsightsByAssessment",region="us-east-1"} 2.0' in decoded(exposition.body())
    reload_status.record(False, NOW)
    assert "auditmanager_exporter_config_last_reload_successful 0.0" in decoded(exposition.body(openmetrics=True))


def test_the_live_part_is_shared_until_it_changes_or_grows_older_than_its_max_age(parts):
    clock = parts[3]
    exposition = exposition_for(parts)
    first = exposition.body().parts[-1]
    assert exposition.body().parts[-1] is first
    clock[0] += LIVE_MAX_AGE
    assert exposition.body().parts[-1] is not first
