"""Discovery: the ACTIVE assessments of a target are found, filtered and refreshed every discovery_interval; each
one's framework is looked up once outside the poll cycle, and its status comes from the listing."""

from __future__ import annotations

import signal
from typing import Any

import boto3

from exporter.aws import AuditManagerClient
from exporter.config import parse
from exporter.polling import Poller
from exporter.simulator import Fault, Simulator
from exporter.snapshot import ApiCounters, Snapshot, SnapshotStore
from exporter.sources.auditmanager.source import audit_manager_part
from tests.conftest import (
    ExporterProcess,
    Samples,
    eventually,
    insights,
    new_poller,
    sample,
    series,
    uuid,
    write_config,
)

ACCOUNT = "123456789012"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def scrape_with_frameworks(exporter: ExporterProcess, count: int) -> Samples:
    """The first scrape with `count` assessment_info series, as the details refresh names their frameworks."""
    return eventually(
        exporter.scrape,
        lambda s: len(series(s, "auditmanager_assessment_info")) == count,
        what=f"{count} frameworks",
        timeout=20,
        detail=exporter.logs,
    )


def session(target):
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=target.region)


def make_poller(
    sim: Simulator, clock: Clock | None = None, settings: dict[str, Any] | None = None, **target: Any
) -> tuple[Poller, SnapshotStore]:
    config = parse(
        {
            "max_attempts": 1,
            "max_requests_per_second": 100,
            **(settings or {}),
            "targets": [{"region": "us-east-1", "endpoint_url": sim.url, "discover": True, **target}],
        }
    )
    counters = ApiCounters()
    clients = [AuditManagerClient(t, config, counters, session) for t in config.expanded_targets()]
    store = SnapshotStore()
    return new_poller(config, clients, store, counters, monotonic=clock or Clock()), store


def names(snapshot: Snapshot) -> list[str]:
    return sorted(s.name for s in audit_manager_part(snapshot).assessments)


def test_discovery_polls_every_active_assessment_across_pages_and_no_inactive_one(monkeypatch, simulator):
    monkeypatch.setattr("exporter.sources.auditmanager.client.PAGE_SIZE", 2)
    for n in range(7):
        status = "INACTIVE" if n in (2, 5) else "ACTIVE"
        simulator.add_assessment("us-east-1", uuid(n), f"A{n}", status=status, insights=insights(noncompliant=n))
    poller, _ = make_poller(simulator)
    snapshot = poller.poll()
    assert names(snapshot) == ["A0", "A1", "A3", "A4", "A6"]
    assert all(s.poll_success and s.account_id == ACCOUNT for s in audit_manager_part(snapshot).assessments)
    # One listing of all seven assessments (the statuses of all), at two a page: four pages.
    assert simulator.count("ListAssessments") == 4
    assert {r.assessment_id for r in simulator.requests("GetInsightsByAssessment")} == {
        uuid(n) for n in (0, 1, 3, 4, 6)
    }


def test_discovery_repeats_every_discovery_interval_and_only_then(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    simulator.add_assessment("us-east-1", uuid(2), "A2", insights=insights())
    clock = Clock()
    poller, _ = make_poller(simulator, clock, {"discovery_interval": "10m"})
    assert names(poller.poll()) == ["A1", "A2"]
    simulator.add_assessment("us-east-1", uuid(3), "A3", insights=insights())
    simulator.set_status("us-east-1", uuid(2), "INACTIVE")
    clock.now += 599
    assert names(poller.poll()) == ["A1", "A2"]
    assert simulator.count("ListAssessments") == 1
    clock.now += 1
    assert names(poller.poll()) == ["A1", "A3"]
    assert simulator.count("ListAssessments") == 2


def test_a_deleted_discovered_assessment_leaves_at_once(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    simulator.add_assessment("us-east-1", uuid(2), "A2", insights=insights())
    poller, _ = make_poller(simulator)
    poller.poll()
    simulator.remove_assessment("us-east-1", uuid(2))
    assert names(poller.poll()) == ["A1"]


def test_include_and_exclude_filter_discovered_names(simulator):
    for n, name in enumerate(["SOC 2 prod", "SOC 2 staging", "PCI prod", "CIS prod"]):
        simulator.add_assessment("us-east-1", uuid(n), name, insights=insights())
    poller, _ = make_poller(simulator, include="prod$", exclude="^CIS")
    assert names(poller.poll()) == ["PCI prod", "SOC 2 prod"]


def test_configured_and_discovered_assessments_combine_without_duplicates(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    simulator.add_assessment("us-east-1", uuid(2), "Kept for reference", status="INACTIVE", insights=insights())
    simulator.add_assessment("us-east-1", uuid(3), "A3", insights=insights())
    poller, _ = make_poller(simulator, assessments=[{"id": uuid(2)}, {"id": uuid(3), "name": "Mine"}])
    snapshot = poller.poll()
    assert [(s.assessment_id, s.name) for s in audit_manager_part(snapshot).assessments] == [
        (uuid(1), "A1"),
        (uuid(2), "Kept for reference"),
        (uuid(3), "Mine"),
    ]
    assert simulator.count("GetInsightsByAssessment") == 3


def test_a_failed_discovery_keeps_the_previous_assessments_and_is_retried_next_cycle(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    clock = Clock()
    poller, _ = make_poller(simulator, clock)
    assert names(poller.poll()) == ["A1"]
    clock.now += 3600
    simulator.add_assessment("us-east-1", uuid(2), "A2", insights=insights())
    simulator.add_fault(Fault("error", code="InternalServerException", operation="ListAssessments"))
    assert names(poller.poll()) == ["A1"]
    simulator.clear_faults()
    assert names(poller.poll()) == ["A1", "A2"]


def test_a_target_with_nothing_to_discover_publishes_nothing_and_does_not_fail(simulator):
    poller, store = make_poller(simulator)
    snapshot = poller.poll()
    assert (
        audit_manager_part(snapshot).assessments,
        audit_manager_part(snapshot).accounts,
        store.get().completed_cycles,
    ) == ((), (), 1)


def test_frameworks_are_fetched_once_outside_the_cycle_and_statuses_come_from_each_listing(simulator):
    for n in range(4):
        simulator.add_assessment("us-east-1", uuid(n), f"A{n}", framework=f"Framework {n}", insights=insights())
    clock = Clock()
    poller, store = make_poller(simulator, clock, assessments=[{"id": uuid(0)}], include="^A[0-2]$")
    poller.poll()
    # The cycle's only GetAssessment is the account lookup, whose answer already holds one framework.
    assert simulator.count("GetAssessment") == 1
    assert len(audit_manager_part(store.get()).details) == 1
    assert poller.background_due()
    poller.refresh_background()
    details = audit_manager_part(store.get()).details
    assert {key[2]: (d.framework, d.status) for key, d in details.items()} == {
        uuid(n): (f"Framework {n}", "ACTIVE") for n in range(3)
    }
    assert simulator.count("GetAssessment") == 3
    assert not poller.background_due()
    # The configured A0 turns INACTIVE (it stays polled); the discovered A1 too (it leaves).
    simulator.set_status("us-east-1", uuid(0), "INACTIVE")
    simulator.set_status("us-east-1", uuid(1), "INACTIVE")
    for _ in range(3):
        clock.now += 3600
        snapshot = poller.poll()
        assert not poller.background_due()
        poller.refresh_background()
    assert snapshot is not None
    assert {key[2]: (d.framework, d.status) for key, d in audit_manager_part(snapshot).details.items()} == {
        uuid(0): ("Framework 0", "INACTIVE"),
        uuid(2): ("Framework 2", "ACTIVE"),
    }
    assert simulator.count("GetAssessment") == 3
    assert simulator.count("ListAssessments") == 4


def test_details_survive_the_next_cycle_and_leave_with_their_assessment(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    simulator.add_assessment("us-east-1", uuid(2), "A2", insights=insights())
    poller, store = make_poller(simulator)
    poller.poll()
    poller.refresh_background()
    assert len(audit_manager_part(store.get()).details) == 2
    simulator.remove_assessment("us-east-1", uuid(2))
    assert [key[2] for key in audit_manager_part(poller.poll()).details] == [uuid(1)]


def test_a_failing_get_assessment_publishes_no_details_and_is_not_retried_every_cycle(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    simulator.add_assessment("us-east-1", uuid(2), "A2", insights=insights())
    poller, store = make_poller(simulator)
    poller.poll()
    simulator.add_fault(Fault("error", code="AccessDeniedException", operation="GetAssessment"))
    poller.refresh_background()
    assert [key[2] for key in audit_manager_part(store.get()).details] == [uuid(1)]
    poller.poll()
    assert not poller.background_due()


def test_the_exporter_discovers_new_assessments_without_a_restart(simulator, run_exporter):
    simulator.add_assessment("us-east-1", uuid(1), "A1", framework="SOC 2", insights=insights())
    simulator.add_assessment("us-east-1", uuid(2), "Old", status="INACTIVE", insights=insights())
    exporter = run_exporter(
        {
            "poll_interval": "1s",
            "discovery_interval": "1s",
            "targets": [{"region": "us-east-1", "endpoint_url": simulator.url, "discover": True}],
        }
    )
    simulator.add_assessment("us-east-1", uuid(3), "A3", framework="PCI DSS V4.0", insights=insights())
    samples = scrape_with_frameworks(exporter, 2)
    assert {s["assessment_name"] for s in series(samples, "auditmanager_assessment_poll_success")} == {"A1", "A3"}
    info = {
        s["assessment_name"]: (s["framework"], s["status"]) for s in series(samples, "auditmanager_assessment_info")
    }
    assert info == {"A1": ("SOC 2", "ACTIVE"), "A3": ("PCI DSS V4.0", "ACTIVE")}


def test_demo_mode_shows_the_organisation_features(run_exporter):
    exporter = run_exporter(None, "--demo")
    samples = scrape_with_frameworks(exporter, 7)
    polled = series(samples, "auditmanager_assessment_poll_success")
    assert len(polled) == 7
    assert "SOC 2 Type II - FY2024 audit" not in {s["assessment_name"] for s in polled}
    assert len(series(samples, "auditmanager_assessment_info")) == 7
    for region, active in (("us-east-1", 5), ("eu-west-1", 2)):
        assert sample(samples, "auditmanager_account_active_assessments", account_id=ACCOUNT, region=region) == active
    domains = {
        s["control_domain"] for s in series(samples, "auditmanager_assessment_control_domain_noncompliant_controls")
    }
    assert domains == {"Identity and access management", "Logging and monitoring", "Data protection"}
    assert sample(samples, "auditmanager_control_domain_series_dropped_total") == 0


def test_a_reload_applies_new_discovery_filters_and_keeps_assessment_info(simulator, run_exporter):
    for n, name in enumerate(["SOC 2 prod", "PCI prod", "CIS staging"]):
        simulator.add_assessment("us-east-1", uuid(n), name, insights=insights())
    target = {"region": "us-east-1", "endpoint_url": simulator.url, "discover": True}
    exporter = run_exporter({"poll_interval": "1h", "targets": [target]})
    write_config(exporter.config_path, {"poll_interval": "1h", "targets": [{**target, "exclude": "staging$"}]})
    exporter.process.send_signal(signal.SIGHUP)

    def polled(samples: Samples) -> set[str]:
        return {s["assessment_name"] for s in series(samples, "auditmanager_assessment_poll_success")}

    samples = eventually(
        exporter.scrape,
        lambda s: polled(s) == {"SOC 2 prod", "PCI prod"} and len(series(s, "auditmanager_assessment_info")) == 2,
        what="the new filters",
        timeout=20,
        detail=exporter.logs,
    )
    assert {s["assessment_name"] for s in series(samples, "auditmanager_assessment_info")} == polled(samples)
