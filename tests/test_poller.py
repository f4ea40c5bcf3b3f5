from __future__ import annotations

from typing import Any

import boto3

from exporter.aws import AuditManagerClient
from exporter.config import AUDIT_MANAGER, Config, parse
from exporter.polling import Poller, PollState, Publisher, Workers
from exporter.simulator import ControlDomain, Fault, Simulator
from exporter.simulator.measure import SendTimes
from exporter.snapshot import ApiCounters, SnapshotStore
from exporter.sources.auditmanager.source import audit_manager_part
from exporter.sources.auditmanager.state import AssessmentState
from tests.conftest import InFlight, insights, new_poller, uuid, within_rate


def session(target):
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=target.region)


def make_poller(
    sim: Simulator, assessments: list[dict[str, Any]], session_factory: Any = session, **settings: Any
) -> tuple[Poller, SnapshotStore]:
    config: Config = parse(
        {
            "max_attempts": 1,
            **settings,
            "targets": [{"region": "us-east-1", "endpoint_url": sim.url, "assessments": assessments}],
        }
    )
    counters = ApiCounters()
    clients = [AuditManagerClient(t, config, counters, session_factory) for t in config.expanded_targets()]
    store = SnapshotStore()
    return new_poller(config, clients, store, counters), store


def by_id(states: tuple[AssessmentState, ...]) -> dict[str, AssessmentState]:
    return {s.assessment_id: s for s in states}


def test_a_cycle_publishes_every_assessment_with_account_and_aws_names(simulator):
    for n in range(1, 4):
        simulator.add_assessment("us-east-1", uuid(n), f"AWS name {n}", insights=insights(noncompliant=n))
    poller, store = make_poller(simulator, [{"id": uuid(1), "name": "Configured"}, {"id": uuid(2)}, {"id": uuid(3)}])
    snapshot = poller.poll()
    assert store.get() is snapshot
    states = by_id(audit_manager_part(snapshot).assessments)
    assert [states[uuid(n)].name for n in range(1, 4)] == ["Configured", "AWS name 2", "AWS name 3"]
    assert {s.account_id for s in states.values()} == {"123456789012"}
    assert [states[uuid(n)].insights.noncompliant_evidence for n in range(1, 4)] == [1, 2, 3]
    assert all(s.poll_success and s.last_success for s in states.values())
    assert snapshot.completed_cycles == 1
    assert set(snapshot.poll_durations) == {"us-east-1"}


def test_each_cycle_makes_one_insights_call_per_assessment_and_one_account_call_after_the_first(simulator):
    for n in range(10):
        simulator.add_assessment("us-east-1", uuid(n), f"A{n}", insights=insights())
    poller, _ = make_poller(simulator, [{"id": uuid(n)} for n in range(10)], max_requests_per_second=100)
    poller.poll()
    assert simulator.count("GetInsightsByAssessment") == 10
    assert simulator.count("GetAssessment") == 1
    assert simulator.count("ListAssessments") == 1
    assert simulator.count("GetInsights") == 1
    simulator.reset_stats()
    poller.poll()
    assert simulator.count("GetInsightsByAssessment") == 10
    assert simulator.count() == 10 + simulator.count("GetInsights") == 11


def test_named_assessments_are_listed_too_for_their_status_once_per_discovery_interval(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    poller, _ = make_poller(simulator, [{"id": uuid(1), "name": "Mine"}])
    poller.poll()
    poller.poll()
    assert simulator.count("ListAssessments") == 1


def test_one_failing_assessment_keeps_its_last_values_and_does_not_disturb_the_others(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights(noncompliant=1))
    simulator.add_assessment("us-east-1", uuid(2), "A2", insights=insights(noncompliant=2))
    poller, _ = make_poller(simulator, [{"id": uuid(1)}, {"id": uuid(2)}])
    first = by_id(audit_manager_part(poller.poll()).assessments)
    simulator.add_fault(Fault("error", code="InternalServerException", assessment_id=uuid(1)))
    simulator.set_insights("us-east-1", uuid(1), insights(noncompliant=100))
    simulator.set_insights("us-east-1", uuid(2), insights(noncompliant=20))
    second = by_id(audit_manager_part(poller.poll()).assessments)
    assert second[uuid(1)].poll_success is False
    assert second[uuid(1)].insights == first[uuid(1)].insights
    assert second[uuid(1)].last_success == first[uuid(1)].last_success
    assert second[uuid(2)].poll_success is True
    assert second[uuid(2)].insights.noncompliant_evidence == 20
    simulator.clear_faults()
    third = by_id(audit_manager_part(poller.poll()).assessments)
    assert third[uuid(1)].poll_success is True
    assert third[uuid(1)].insights.noncompliant_evidence == 100


def test_a_malformed_answer_is_never_published_as_a_number(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    simulator.add_fault(Fault("no_insights", assessment_id=uuid(1), operation="GetInsightsByAssessment"))
    poller, _ = make_poller(simulator, [{"id": uuid(1)}])
    state = audit_manager_part(poller.poll()).assessments[0]
    assert (state.poll_success, state.insights, state.last_success) == (False, None, None)


def test_a_deleted_configured_assessment_stays_as_a_failed_poll_without_values(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    simulator.add_assessment("us-east-1", uuid(2), "A2", insights=insights())
    poller, _ = make_poller(simulator, [{"id": uuid(1)}, {"id": uuid(2)}])
    first = by_id(audit_manager_part(poller.poll()).assessments)
    simulator.remove_assessment("us-east-1", uuid(2))

    states = by_id(audit_manager_part(poller.poll()).assessments)

    assert states[uuid(1)].poll_success is True
    gone = states[uuid(2)]
    assert (gone.poll_success, gone.insights, gone.error_code) == (False, None, "ResourceNotFoundException")
    assert gone.last_success == first[uuid(2)].last_success


def test_an_unknown_first_assessment_does_not_block_the_account_lookup_and_fails_from_the_first_cycle(simulator):
    simulator.add_assessment("us-east-1", uuid(2), "A2", insights=insights())
    poller, _ = make_poller(simulator, [{"id": uuid(1)}, {"id": uuid(2)}])
    states = audit_manager_part(poller.poll()).assessments
    assert [(s.assessment_id, s.account_id, s.poll_success) for s in states] == [
        (uuid(1), "123456789012", False),
        (uuid(2), "123456789012", True),
    ]
    assert states[0].error_code == "ResourceNotFoundException"


def test_when_the_account_cannot_be_read_known_assessments_turn_failed_but_keep_values(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    store = SnapshotStore()
    publisher = Publisher(PollState(), store)
    workers = Workers(4)

    def poller(name: str) -> Poller:
        config = parse(
            {
                "max_attempts": 1,
                "targets": [
                    {
                        "region": "us-east-1",
                        "endpoint_url": simulator.url,
                        "assessments": [{"id": uuid(1), "name": name}],
                    }
                ],
            }
        )
        clients = [AuditManagerClient(t, config, ApiCounters(), session) for t in config.expanded_targets()]
        return Poller(config, {AUDIT_MANAGER: clients}, publisher, workers, ApiCounters())

    before = audit_manager_part(poller("A1").poll()).assessments[0]
    # A changed target is a new one, whose account must be looked up again; what was polled before is kept.
    renamed = poller("Renamed")
    simulator.add_fault(Fault("error", code="AccessDeniedException"))
    after = audit_manager_part(renamed.poll()).assessments[0]
    assert after.poll_success is False
    assert (after.insights, after.last_success) == (before.insights, before.last_success)


def test_one_assessment_failing_the_account_lookup_does_not_block_the_others(simulator):
    for n in (1, 2):
        simulator.add_assessment("us-east-1", uuid(n), f"A{n}", insights=insights(noncompliant=n))
    simulator.add_fault(Fault("error", code="InternalServerException", assessment_id=uuid(1)))
    poller, _ = make_poller(simulator, [{"id": uuid(1)}, {"id": uuid(2)}])
    states = by_id(audit_manager_part(poller.poll()).assessments)
    assert (states[uuid(2)].account_id, states[uuid(2)].poll_success) == ("123456789012", True)
    assert states[uuid(2)].insights.noncompliant_evidence == 2
    assert (states[uuid(1)].poll_success, states[uuid(1)].insights) == (False, None)


def test_a_target_whose_account_cannot_be_read_publishes_failed_polls_from_the_first_cycle(simulator):
    for n in range(1, 6):
        simulator.add_assessment("us-east-1", uuid(n), f"A{n}", insights=insights())
    simulator.add_fault(Fault("error", code="AccessDeniedException"))
    poller, _ = make_poller(simulator, [{"id": uuid(n), "name": f"Mine {n}"} for n in range(1, 6)])
    states = audit_manager_part(poller.poll()).assessments
    assert [(s.assessment_id, s.account_id, s.name, s.poll_success, s.insights) for s in states] == [
        (uuid(n), "", f"Mine {n}", False, None) for n in range(1, 6)
    ]
    # A target-wide denial costs a few lookups a cycle, not one per assessment.
    assert simulator.count("GetAssessment") == 3
    assert simulator.count("GetInsightsByAssessment") == 0


def test_requests_stay_within_the_rate_limit_in_every_window(simulator):
    for n in range(12):
        simulator.add_assessment("us-east-1", uuid(n), f"A{n}", insights=insights())
    sent = SendTimes()
    poller, _ = make_poller(
        simulator,
        [{"id": uuid(n), "name": f"A{n}"} for n in range(12)],
        sent.session,
        max_concurrency=8,
        max_requests_per_second=4,
    )
    poller.poll()
    assert simulator.count() == len(sent.all()) == 15
    assert within_rate(sent.all(), 4)


def test_requests_in_flight_never_exceed_max_concurrency():
    with Simulator(latency=0.3) as sim:
        for n in range(8):
            sim.add_assessment("us-east-1", uuid(n), f"A{n}", insights=insights())
        for concurrency in (8, 2):
            inflight = InFlight()
            poller, _ = make_poller(
                sim,
                [{"id": uuid(n), "name": "x"} for n in range(8)],
                inflight.session,
                max_concurrency=concurrency,
                max_requests_per_second=100,
            )
            assert all(s.poll_success for s in audit_manager_part(poller.poll()).assessments)
            # Counted at the client; the account-level GetInsights shares the target's slots with the assessments'
            # calls. With 9 calls of 0.3 s each, more than one is in flight at some point.
            assert 1 < inflight.peak_total <= concurrency


def test_a_stopped_poller_publishes_nothing(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    poller, store = make_poller(simulator, [{"id": uuid(1)}])
    poller.stop()
    poller.poll()
    assert store.get().completed_cycles == 0


def domains(n: int) -> list[ControlDomain]:
    updated = insights().last_updated
    return [
        ControlDomain(f"arn:aws:controlcatalog:::domain/D{i}", f"Domain {i}", i, 10, 0, 1, 5, updated) for i in range(n)
    ]


def make_domain_poller(sim: Simulator, **settings: Any) -> Poller:
    config = parse(
        {
            "max_attempts": 1,
            "max_requests_per_second": 100,
            **settings,
            "targets": [{"region": "us-east-1", "endpoint_url": sim.url, "discover": True, "control_domains": True}],
        }
    )
    clients = [AuditManagerClient(t, config, ApiCounters(), session) for t in config.expanded_targets()]
    return new_poller(config, clients)


def test_control_domains_are_polled_only_when_asked_for(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights(), control_domains=domains(3))
    plain, _ = make_poller(simulator, [{"id": uuid(1)}])
    assert audit_manager_part(plain.poll()).assessments[0].control_domains == ()
    assert simulator.count("ListControlDomainInsightsByAssessment") == 0
    state = audit_manager_part(make_domain_poller(simulator).poll()).assessments[0]
    assert [d.name for d in state.control_domains] == ["Domain 0", "Domain 1", "Domain 2"]
    assert simulator.count("ListControlDomainInsightsByAssessment") == 1


def test_failing_control_domains_keep_their_last_values_and_leave_the_insights_alone(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights(), control_domains=domains(2))
    poller = make_domain_poller(simulator)
    first = audit_manager_part(poller.poll()).assessments[0]
    simulator.add_fault(Fault("malformed_json", operation="ListControlDomainInsightsByAssessment"))
    simulator.set_insights("us-east-1", uuid(1), insights(noncompliant=99))
    second = audit_manager_part(poller.poll()).assessments[0]
    assert second.poll_success and second.insights.noncompliant_evidence == 99
    assert second.control_domains == first.control_domains


def test_control_domain_series_beyond_the_limit_are_dropped_and_counted_every_cycle(simulator):
    # Each domain publishes 4 series (3 evidence counts and the noncompliant controls).
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights(), control_domains=domains(3))
    simulator.add_assessment("us-east-1", uuid(2), "A2", insights=insights(), control_domains=domains(3))
    poller = make_domain_poller(simulator, max_control_domain_series=18)
    snapshot = poller.poll()
    assert [len(s.control_domains) for s in audit_manager_part(snapshot).assessments] == [3, 1]
    assert audit_manager_part(snapshot).control_domain_series_dropped == 8
    assert audit_manager_part(poller.poll()).control_domain_series_dropped == 16


def test_two_targets_reaching_the_same_assessment_publish_it_once(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    config = parse(
        {
            "targets": [
                {"region": "us-east-1", "endpoint_url": simulator.url, "assessments": [{"id": uuid(1)}]},
                {"region": "us-east-1", "endpoint_url": simulator.url, "discover": True},
            ]
        }
    )
    clients = [AuditManagerClient(t, config, ApiCounters(), session) for t in config.expanded_targets()]
    snapshot = new_poller(config, clients).poll()
    assert [s.assessment_id for s in audit_manager_part(snapshot).assessments] == [uuid(1)]
    assert len(audit_manager_part(snapshot).accounts) == 1


def test_listings_between_cycles_list_each_target_once_per_discovery_interval_and_publish_the_statuses(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", framework="SOC 2", insights=insights())
    now = [1000.0]
    config = parse(
        {
            "max_attempts": 1,
            "discovery_interval": "60s",
            "targets": [{"region": "us-east-1", "endpoint_url": simulator.url, "assessments": [{"id": uuid(1)}]}],
        }
    )
    counters = ApiCounters()
    clients = [AuditManagerClient(t, config, counters, session) for t in config.expanded_targets()]
    store = SnapshotStore()
    poller = new_poller(config, clients, store, counters, monotonic=lambda: now[0])
    poller.poll()
    poller.refresh_background()
    key = ("123456789012", "us-east-1", uuid(1))
    assert audit_manager_part(store.get()).details[key].status == "ACTIVE"
    simulator.set_status("us-east-1", uuid(1), "INACTIVE")

    now[0] += 59.0
    assert poller.refresh_listings() == 1.0
    assert simulator.count("ListAssessments") == 1
    assert audit_manager_part(store.get()).details[key].status == "ACTIVE"

    now[0] += 1.0
    assert poller.refresh_listings() == 60.0
    assert simulator.count("ListAssessments") == 2
    assert audit_manager_part(store.get()).details[key].status == "INACTIVE"
    # The cycle that follows finds the listing fresh and does not list again.
    poller.poll()
    assert simulator.count("ListAssessments") == 2
    assert simulator.count("GetInsightsByAssessment") == 2
    assert audit_manager_part(store.get()).details[key].status == "INACTIVE"
