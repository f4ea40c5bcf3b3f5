"""The poll service in-process: isolation of unexpected errors, generations, state kept across pollers, the
monotonic clock, shards of unresolved targets, the shared workers and the framework look-ups' budget."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from concurrent.futures import CancelledError
from typing import Any

import boto3
import pytest

from exporter.aws import AuditManagerClient, AwsError
from exporter.config import AUDIT_MANAGER, Config, parse
from exporter.polling import Poller, PollState, Publisher, Shard, Workers, shard_of
from exporter.simulator import Fault, Simulator
from exporter.snapshot import ApiCounters, SnapshotStore
from exporter.sources.auditmanager import client as auditmanager_client
from exporter.sources.auditmanager.source import audit_manager_part
from tests.conftest import InFlight, insights, new_poller, uuid

REGION = "us-east-1"
ACCOUNT = "123456789012"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def plain_session(target: Any) -> boto3.Session:
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=target.region)


def failing_session(exception: Exception, operation: str = "", assessment_id: str | None = None) -> Any:
    """Sessions whose clients raise `exception` (a bug in the exporter's code, as far as the poller can tell) in a
    request hook for the matching calls."""

    def session(target: Any) -> boto3.Session:
        made = plain_session(target)

        def hook(params: dict[str, Any], **_: Any) -> None:
            if assessment_id is None or params.get("assessmentId") == assessment_id:
                raise exception

        made.events.register(f"before-parameter-build.auditmanager{'.' + operation if operation else ''}", hook)
        return made

    return session


def config_for(simulator: Simulator, *targets: dict[str, Any], **settings: Any) -> Config:
    return parse(
        {
            "max_attempts": 1,
            "max_requests_per_second": 100,
            **settings,
            "targets": [{"endpoint_url": simulator.url, **target} for target in targets],
        }
    )


def clients_for(config: Config, counters: ApiCounters, *sessions: Any) -> list[AuditManagerClient]:
    targets = config.expanded_targets()
    factories = sessions or (plain_session,) * len(targets)
    return [AuditManagerClient(t, config, counters, f) for t, f in zip(targets, factories, strict=True)]


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_an_unexpected_exception_in_one_assessment_fails_only_it_logged_once_as_exporter_error(simulator, caplog):
    for n in (1, 2):
        simulator.add_assessment(REGION, uuid(n), f"A{n}", insights=insights(noncompliant=n))
    config = config_for(simulator, {"region": REGION, "assessments": [{"id": uuid(1)}, {"id": uuid(2)}]})
    counters = ApiCounters()
    # A ValueError of the exporter's own, not a malformed answer from AWS.
    bug = ValueError("a bug")
    clients = clients_for(config, counters, failing_session(bug, "GetInsightsByAssessment", uuid(1)))
    poller = new_poller(config, clients, counters=counters)
    states = {s.assessment_id: s for s in audit_manager_part(poller.poll()).assessments}
    assert (states[uuid(1)].poll_success, states[uuid(1)].insights) == (False, None)
    assert states[uuid(2)].poll_success and states[uuid(2)].insights.noncompliant_evidence == 2
    assert counters.errors() == {("GetInsightsByAssessment", REGION, "ExporterError"): 1}
    (record,) = errors_logged(caplog)
    assert record.exc_info is not None and record.exc_info[1] is bug
    assert getattr(record, "assessment_id", None) == uuid(1)


def test_an_unexpected_exception_in_one_target_fails_only_that_target(simulator, caplog):
    simulator.add_assessment(REGION, uuid(1), "A1", insights=insights())
    simulator.add_assessment("eu-west-1", uuid(2), "A2", insights=insights())
    config = config_for(simulator, {"region": REGION, "discover": True}, {"region": "eu-west-1", "discover": True})
    counters = ApiCounters()
    clients = clients_for(config, counters, failing_session(RuntimeError("a bug")), plain_session)
    snapshot = new_poller(config, clients, counters=counters).poll()
    assert [(s.region, s.poll_success) for s in audit_manager_part(snapshot).assessments] == [("eu-west-1", True)]
    assert [a.region for a in audit_manager_part(snapshot).accounts] == ["eu-west-1"]
    assert counters.errors() == {("ListAssessments", REGION, "ExporterError"): 1}
    assert len(errors_logged(caplog)) == 1


def test_a_malformed_answer_is_still_counted_as_malformed_response(simulator):
    simulator.add_assessment(REGION, uuid(1), "A1", insights=insights())
    simulator.add_fault(Fault("no_insights", assessment_id=uuid(1), operation="GetInsightsByAssessment"))
    config = config_for(simulator, {"region": REGION, "assessments": [{"id": uuid(1), "name": "A1"}]})
    counters = ApiCounters()
    new_poller(config, clients_for(config, counters), counters=counters).poll()
    assert counters.errors() == {("GetInsightsByAssessment", REGION, "MalformedResponse"): 1}


def test_a_replaced_poller_never_publishes_again(simulator):
    simulator.add_assessment(REGION, uuid(1), "A1", insights=insights())
    config = config_for(simulator, {"region": REGION, "assessments": [{"id": uuid(1)}]})
    store = SnapshotStore()
    publisher, workers = Publisher(PollState(), store), Workers(4)
    old = Poller(config, {AUDIT_MANAGER: clients_for(config, ApiCounters())}, publisher, workers, ApiCounters())
    new = Poller(config, {AUDIT_MANAGER: clients_for(config, ApiCounters())}, publisher, workers, ApiCounters())
    assert old.poll() is None
    assert old.refresh_background() is None
    assert store.get().completed_cycles == 0
    published = new.poll()
    assert published is not None and store.get() is published
    assert published.generation == 2


def test_what_is_known_about_an_unchanged_target_survives_a_new_poller(simulator):
    simulator.add_assessment(REGION, uuid(1), "A1", insights=insights())
    config = config_for(simulator, {"region": REGION, "assessments": [{"id": uuid(1)}]})
    publisher, workers = Publisher(PollState(), SnapshotStore()), Workers(4)
    Poller(config, {AUDIT_MANAGER: clients_for(config, ApiCounters())}, publisher, workers, ApiCounters()).poll()
    assert (simulator.count("GetAssessment"), simulator.count("ListAssessments")) == (1, 1)
    simulator.reset_stats()
    replacement = Poller(config, {AUDIT_MANAGER: clients_for(config, ApiCounters())}, publisher, workers, ApiCounters())
    (state,) = audit_manager_part(replacement.poll()).assessments
    assert (state.account_id, state.name, state.poll_success) == (ACCOUNT, "A1", True)
    # The account and the name are known: no look-up and no listing again.
    assert (simulator.count("GetAssessment"), simulator.count("ListAssessments")) == (0, 0)


def test_discovery_follows_the_monotonic_clock_when_the_wall_clock_steps_backwards(simulator):
    simulator.add_assessment(REGION, uuid(1), "A1", insights=insights())
    config = config_for(simulator, {"region": REGION, "discover": True}, discovery_interval="10m", tag_labels=["team"])
    wall, monotonic = Clock(1_800_000_000.0), Clock(1000.0)
    poller = new_poller(config, clients_for(config, ApiCounters()), clock=wall, monotonic=monotonic)
    (first,) = audit_manager_part(poller.poll()).assessments
    assert first.last_success == wall.now
    simulator.add_assessment(REGION, uuid(2), "A2", insights=insights())
    # NTP steps the wall clock back a day; ten minutes pass.
    wall.now -= 86400
    monotonic.now += 600
    snapshot = poller.poll()
    assert [s.name for s in audit_manager_part(snapshot).assessments] == ["A1", "A2"]
    # Published timestamps are wall time, stepped back as it is.
    assert {s.last_success for s in audit_manager_part(snapshot).assessments} == {wall.now}
    poller.refresh_background()
    assert not poller.background_due()
    # The tags are refreshed every discovery_interval of the monotonic clock too, whatever the wall clock.
    wall.now -= 86400
    monotonic.now += 600
    assert poller.background_due()


def test_a_target_whose_account_is_unknown_is_published_by_shard_0_only_and_never_moves_later(simulator):
    ids = [uuid(n) for n in range(1, 9)]
    for assessment_id in ids:
        simulator.add_assessment(REGION, assessment_id, assessment_id, insights=insights())
    config = config_for(simulator, {"region": REGION, "assessments": [{"id": i} for i in ids]})
    simulator.add_fault(Fault("error", code="AccessDeniedException", operation="GetAssessment"))
    pollers = [new_poller(config, clients_for(config, ApiCounters()), shard=Shard(i, 2)) for i in range(2)]
    unresolved = [audit_manager_part(p.poll()).assessments for p in pollers]
    assert [(s.account_id, s.poll_success) for s in unresolved[0]] == [("", False)] * len(ids)
    assert unresolved[1] == ()
    simulator.clear_faults()
    for index, poller in enumerate(pollers):
        polled = audit_manager_part(poller.poll()).assessments
        assert {s.assessment_id for s in polled if s.account_id} == {
            i for i in ids if shard_of(ACCOUNT, REGION, i, 2) == index
        }


def workers() -> set[threading.Thread]:
    """The exporter's worker threads now running."""
    return {t for t in threading.enumerate() if t.name.startswith(("poll", "details"))}


def test_all_targets_share_one_bounded_pool_and_each_keeps_its_own_concurrency():
    regions = [f"eu-west-{n}" for n in range(1, 4)] + [f"us-west-{n}" for n in range(1, 4)]
    with Simulator(latency=0.2) as sim:
        for region in regions:
            for n in range(6):
                sim.add_assessment(region, uuid(n), f"A{n}", insights=insights())
        config = parse(
            {
                "max_workers": 8,
                "max_concurrency": 3,
                "max_requests_per_second": 1000,
                "targets": [
                    {
                        "region": r,
                        "endpoint_url": sim.url,
                        "assessments": [{"id": uuid(n), "name": "x"} for n in range(6)],
                    }
                    for r in regions
                ],
            }
        )
        inflight = InFlight()
        clients = [AuditManagerClient(t, config, ApiCounters(), inflight.session) for t in config.expanded_targets()]
        poller = new_poller(config, clients)
        before = workers()
        snapshot = poller.poll()
        assert len(audit_manager_part(snapshot).assessments) == 36 and all(
            s.poll_success for s in audit_manager_part(snapshot).assessments
        )
        # 7 of the 8 workers are for the poll cycles (one is kept for the framework look-ups).
        assert inflight.peak_total <= 7
        assert max(inflight.peak.values()) <= 3
        assert len(workers() - before) <= 7


def test_framework_look_ups_keep_to_their_slice_of_the_rate(simulator):
    for n in range(4):
        simulator.add_assessment(REGION, uuid(n), f"A{n}", framework=f"F{n}", insights=insights())
    config = config_for(simulator, {"region": REGION, "discover": True}, max_requests_per_second=10)
    sent: list[float] = []

    def record(event_name: str, **_: Any) -> None:
        if event_name.endswith(".GetAssessment"):
            sent.append(time.monotonic())

    def session(target: Any) -> boto3.Session:
        made = plain_session(target)
        # Registered last for the same event as the client's rate limiter, so it runs after it (a handler for
        # the more specific "before-send.auditmanager.GetAssessment" would run before).
        made.events.register_last("before-send.auditmanager", record)
        return made

    poller = new_poller(config, clients_for(config, ApiCounters(), session))
    poller.poll()
    sent.clear()
    snapshot = poller.refresh_background()
    assert snapshot is not None and len(audit_manager_part(snapshot).details) == 4
    # A tenth of 10 requests/s: one look-up a second (without the slice the three would leave at once; half a
    # second leaves room for a loaded machine delaying one record).
    assert len(sent) == 3
    assert all(later - earlier >= 0.5 for earlier, later in itertools.pairwise(sent)), sent


def test_a_closed_pool_cancels_the_tasks_it_has_not_started_instead_of_leaving_them_waiting():
    workers = Workers(2)
    lane = workers.lane(1)
    release = threading.Event()
    running = lane.submit(release.wait)
    waiting = lane.submit(lambda: "never")
    workers.close()
    release.set()
    assert running.result(timeout=30) is True
    with pytest.raises(CancelledError):
        waiting.result(timeout=30)
    with pytest.raises(CancelledError):
        lane.submit(lambda: "after").result(timeout=30)


def test_a_lane_made_earlier_is_served_first_even_when_its_next_tasks_come_later():
    # One thread; the first lane's plan runs, then every lane has a task waiting: its follow-up comes after the
    # other lanes' plans were queued, yet it runs next, so that a target's plan and calls run together.
    workers = Workers(2)
    first, second, third = (workers.lane(1) for _ in range(3))
    started: list[str] = []
    release = threading.Event()
    plan = first.submit(lambda: (started.append("first plan"), release.wait()))
    later = [
        lane.submit(lambda name=name: started.append(name))
        for lane, name in ((second, "second plan"), (third, "third plan"))
    ]
    follow_up = first.submit(lambda: started.append("first calls"))
    release.set()
    for future in (plan, *later, follow_up):
        future.result(timeout=30)
    workers.close()
    assert started == ["first plan", "first calls", "second plan", "third plan"]


def test_a_bug_while_reading_a_valid_answer_is_an_exporter_error_not_a_malformed_answer(simulator, caplog, monkeypatch):
    simulator.add_assessment(REGION, uuid(1), "A1", insights=insights())
    config = config_for(simulator, {"region": REGION, "assessments": [{"id": uuid(1)}]})
    counters = ApiCounters()
    bug = KeyError("a bug in the exporter's own reading of the answer")

    def broken(_: object) -> None:
        raise bug

    monkeypatch.setattr(auditmanager_client, "_insights", broken)
    (state,) = audit_manager_part(
        new_poller(config, clients_for(config, counters), counters=counters).poll()
    ).assessments
    assert not state.poll_success
    assert counters.errors() == {("GetInsightsByAssessment", REGION, "ExporterError"): 1}
    (record,) = errors_logged(caplog)
    assert record.exc_info is not None and record.exc_info[1] is bug


def test_an_answer_without_a_field_the_exporter_needs_is_malformed(simulator):
    simulator.add_assessment(REGION, uuid(1), "A1", insights=insights())
    config = config_for(simulator, {"region": REGION, "assessments": [{"id": uuid(1)}]})
    counters = ApiCounters()
    (client,) = clients_for(config, counters)
    simulator.add_fault(
        Fault("body", operation="ListAssessments", body=f'{{"assessmentMetadata": [{{"id": "{uuid(1)}"}}]}}'.encode())
    )
    with pytest.raises(AwsError) as caught:
        client.list_assessments()
    assert caught.value.code == "MalformedResponse"
    assert counters.errors() == {("ListAssessments", REGION, "MalformedResponse"): 1}
