"""Many accounts and regions: region lists, per-target limits, account-level insights, and roles assumed through
STS (moto's server standing in for STS, the simulator for Audit Manager)."""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
import botocore.credentials
import pytest

from exporter.aws import AuditManagerClient, AwsError, SessionCache, SessionFactory, default_session
from exporter.config import parse
from exporter.polling import Poller
from exporter.simulator import AccountInsights, Fault, Simulator
from exporter.simulator.measure import SendTimes
from exporter.snapshot import ApiCounters, SnapshotStore
from exporter.sources.auditmanager.source import audit_manager_part
from tests.conftest import ROLE_ACCOUNT, ROLE_ARN, assumed_roles, insights, new_poller, sample, uuid, within_rate


def session(target):
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=target.region)


def make_poller(raw: dict[str, Any], session_factory: SessionFactory = session) -> tuple[Poller, SnapshotStore]:
    config = parse({"max_attempts": 1, **raw})
    counters = ApiCounters()
    clients = [AuditManagerClient(t, config, counters, session_factory) for t in config.expanded_targets()]
    store = SnapshotStore()
    return new_poller(config, clients, store, counters), store


def test_regions_expand_into_one_target_per_region_with_the_targets_own_limits():
    config = parse(
        {
            "max_concurrency": 4,
            "max_requests_per_second": 5,
            "targets": [
                {"regions": ["us-east-1", "eu-west-1"], "discover": True, "max_requests_per_second": 2},
                {"region": "ap-southeast-2", "discover": True, "max_concurrency": 8},
            ],
        }
    )
    expanded = [(t.region, t.max_concurrency, t.max_requests_per_second) for t in config.expanded_targets()]
    assert expanded == [("us-east-1", 4, 2), ("eu-west-1", 4, 2), ("ap-southeast-2", 8, 5)]


def test_each_region_keeps_its_own_rate_limit_while_polled_in_parallel(simulator):
    for region in ("us-east-1", "eu-west-1"):
        for n in range(4):
            simulator.add_assessment(region, uuid(n), f"{region} {n}", insights=insights())
    sent = SendTimes()
    poller, _ = make_poller(
        {
            "max_requests_per_second": 100,
            "targets": [
                {
                    "regions": ["us-east-1", "eu-west-1"],
                    "endpoint_url": simulator.url,
                    "discover": True,
                    "max_requests_per_second": 3,
                }
            ],
        },
        sent.session,
    )
    snapshot = poller.poll()
    assert sorted((s.region, s.name) for s in audit_manager_part(snapshot).assessments) == sorted(
        (region, f"{region} {n}") for region in ("us-east-1", "eu-west-1") for n in range(4)
    )
    # Measured at the client: each region keeps to its own limit, and the two targets run side by side, not one
    # after the other.
    us, eu = sent.times["us-east-1"], sent.times["eu-west-1"]
    assert within_rate(us, 3) and within_rate(eu, 3)
    assert min(us) < max(eu) and min(eu) < max(us)


def test_two_accounts_are_told_apart_by_their_account_id():
    with Simulator("111111111111") as first, Simulator("222222222222") as second:
        first.add_assessment("us-east-1", uuid(1), "First", insights=insights(noncompliant=1))
        second.add_assessment("us-east-1", uuid(1), "Second", insights=insights(noncompliant=2))
        poller, _ = make_poller(
            {
                "targets": [
                    {"region": "us-east-1", "endpoint_url": sim.url, "assessments": [{"id": uuid(1)}]}
                    for sim in (first, second)
                ]
            }
        )
        snapshot = poller.poll()
    assert [
        (s.account_id, s.name, s.insights.noncompliant_evidence) for s in audit_manager_part(snapshot).assessments
    ] == [
        ("111111111111", "First", 1),
        ("222222222222", "Second", 2),
    ]
    assert [(a.account_id, a.region) for a in audit_manager_part(snapshot).accounts] == [
        ("111111111111", "us-east-1"),
        ("222222222222", "us-east-1"),
    ]


def test_account_insights_are_polled_once_per_target_and_a_failure_keeps_values_but_says_so(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights(7, 70, 3, 2, 40))
    simulator.add_assessment("us-east-1", uuid(2), "A2", insights=insights(1, 10, 0, 1, 20))
    poller, _ = make_poller({"targets": [{"region": "us-east-1", "endpoint_url": simulator.url, "discover": True}]})
    (account,) = audit_manager_part(poller.poll()).accounts
    assert simulator.count("GetInsights") == 1
    values = account.insights
    assert (values.active_assessments, values.noncompliant_evidence, values.compliant_evidence) == (2, 8, 80)
    assert (values.inconclusive_evidence, values.noncompliant_controls, values.total_controls) == (3, 3, 60)
    assert values.last_updated == insights().last_updated.timestamp()
    assert (account.poll_success, account.last_success is not None) == (True, True)
    simulator.add_fault(Fault("error", code="InternalServerException", operation="GetInsights"))
    (failed,) = audit_manager_part(poller.poll()).accounts
    assert (failed.insights, failed.poll_success, failed.last_success) == (values, False, account.last_success)
    simulator.clear_faults()
    (recovered,) = audit_manager_part(poller.poll()).accounts
    assert recovered.poll_success and recovered.last_success > account.last_success


def test_a_malformed_account_insights_answer_is_never_published(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    simulator.add_fault(Fault("no_insights", operation="GetInsights"))
    poller, _ = make_poller({"targets": [{"region": "us-east-1", "endpoint_url": simulator.url, "discover": True}]})
    snapshot = poller.poll()
    assert [(a.insights, a.poll_success, a.last_success) for a in audit_manager_part(snapshot).accounts] == [
        (None, False, None)
    ]
    assert [s.poll_success for s in audit_manager_part(snapshot).assessments] == [True]


def test_the_exporter_publishes_account_level_insights_per_account_and_region(simulator, run_exporter):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights(7, 70, 3, 2, 40))
    simulator.add_assessment("eu-west-1", uuid(2), "A2", insights=insights())
    updated = datetime.datetime(2026, 11, 24, tzinfo=datetime.UTC)
    simulator.set_account_insights("eu-west-1", AccountInsights(4, None, 500, 50, 6, 90, updated))
    exporter = run_exporter(
        {"targets": [{"regions": ["us-east-1", "eu-west-1"], "endpoint_url": simulator.url, "discover": True}]}
    )
    samples = exporter.scrape()
    east = {"account_id": "123456789012", "region": "us-east-1"}
    west = {**east, "region": "eu-west-1"}
    assert sample(samples, "auditmanager_account_active_assessments", **east) == 1
    assert sample(samples, "auditmanager_account_evidence", **east, compliance="noncompliant") == 7
    assert sample(samples, "auditmanager_account_controls", **east) == 40
    assert sample(samples, "auditmanager_account_noncompliant_controls", **east) == 2
    assert sample(samples, "auditmanager_account_active_assessments", **west) == 4
    assert sample(samples, "auditmanager_account_evidence", **west, compliance="noncompliant") is None
    assert sample(samples, "auditmanager_account_evidence", **west, compliance="compliant") == 500
    assert sample(samples, "auditmanager_account_evidence", **west, compliance="inconclusive") == 50
    assert sample(samples, "auditmanager_account_controls", **west) == 90
    assert sample(samples, "auditmanager_account_noncompliant_controls", **west) == 6
    assert sample(samples, "auditmanager_account_insights_last_updated_timestamp_seconds", **west) == (
        updated.timestamp()
    )


# ---- the account of a credential source


def test_the_regions_of_one_credential_source_learn_its_account_with_one_lookup(simulator):
    for n, region in enumerate(("us-east-1", "eu-west-1", "ap-southeast-2")):
        simulator.add_assessment(region, uuid(n), f"A{n}", insights=insights())
    raw = {"targets": [{"regions": ["us-east-1", "eu-west-1", "ap-southeast-2"], "endpoint_url": simulator.url,
                        "discover": True}]}  # fmt: skip
    poller, _ = make_poller(raw, SessionCache(session))

    states = audit_manager_part(poller.poll()).assessments

    assert simulator.count("GetAssessment") == 1
    assert {(s.region, s.account_id, s.poll_success) for s in states} == {
        (region, simulator.account_id, True) for region in ("us-east-1", "eu-west-1", "ap-southeast-2")
    }


def test_an_account_is_learned_once_per_credential_source_and_a_failed_lookup_leaves_it_to_the_next():
    config = parse(
        {
            "targets": [
                {"regions": ["us-east-1", "eu-west-1"], "discover": True},
                {"region": "us-east-1", "profile": "b", "discover": True},
            ]
        }
    )
    first, second, other_source = config.expanded_targets()
    cache = SessionCache(session)
    asked: list[str] = []

    def learn(account: str | None) -> Callable[[], str]:
        def lookup() -> str:
            asked.append(account or "failed")
            if account is None:
                raise AwsError("AccessDeniedException", "denied")
            return account

        return lookup

    with pytest.raises(AwsError):
        cache.account(first, learn(None))
    assert cache.account(second, learn("111122223333")) == "111122223333"
    assert cache.account(first, learn("999999999999")) == "111122223333"
    assert cache.account(other_source, learn("444455556666")) == "444455556666"
    assert asked == ["failed", "111122223333", "444455556666"]


def test_targets_of_one_credential_source_wait_for_the_lookup_in_progress_instead_of_making_their_own():
    config = parse({"targets": [{"regions": ["us-east-1", "eu-west-1"], "discover": True}]})
    first, second = config.expanded_targets()
    cache = SessionCache(session)
    looking, answer = threading.Event(), threading.Event()
    asked: list[str] = []

    def slow() -> str:
        asked.append("first")
        looking.set()
        answer.wait(30)
        return "111122223333"

    learner = threading.Thread(target=cache.account, args=(first, slow))
    learner.start()
    assert looking.wait(30)
    told: list[str] = []
    waiter = threading.Thread(target=lambda: told.append(cache.account(second, lambda: asked.append("second") or "")))
    waiter.start()
    answer.set()
    learner.join(30)
    waiter.join(30)
    assert (asked, told) == (["first"], ["111122223333"])


# ---- roles assumed through STS


def role_target(sim: Simulator, **extra: Any) -> dict[str, Any]:
    return {"region": "us-east-1", "endpoint_url": sim.url, "role_arn": ROLE_ARN, "discover": True, **extra}


def test_a_role_is_assumed_through_sts_and_names_the_account_without_a_lookup(sts, simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    poller, _ = make_poller({"targets": [role_target(simulator, external_id="org-monitoring")]}, default_session)
    (state,) = audit_manager_part(poller.poll()).assessments
    assert (state.account_id, state.poll_success) == (ROLE_ACCOUNT, True)
    assert simulator.count("GetAssessment") == 0
    (role,) = assumed_roles()
    assert (role.role_arn, role.external_id, role.session_name) == (ROLE_ARN, "org-monitoring", "auditmanager-exporter")
    assert {r.access_key for r in simulator.requests()} == {role.access_key_id}
    poller.poll()
    assert len(assumed_roles()) == 1


def test_assumed_credentials_about_to_expire_are_refreshed_before_use(sts, simulator, monkeypatch):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    raw = {"targets": [role_target(simulator, session_name="org-audit")]}
    # The session the poller's client will use, made here: clients are built by the poll, not before.
    (target,) = parse(raw).expanded_targets()
    session = default_session(target)
    poller, _ = make_poller(raw, lambda _: session)
    credentials = session.get_credentials()
    assert isinstance(credentials, botocore.credentials.RefreshableCredentials)
    # STS issues no credentials shorter than 15 minutes; issue them "55 minutes ago" instead, so they expire in 5.
    issued = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(minutes=55)
    with monkeypatch.context() as patch:
        patch.setattr("moto.sts.models.utcnow", lambda: issued)
        credentials.get_frozen_credentials()
    (expiring,) = assumed_roles()
    assert credentials.refresh_needed()
    poller.poll()
    roles = assumed_roles()
    assert [r.session_name for r in roles] == ["org-audit", "org-audit"]
    assert {r.access_key for r in simulator.requests()} == {roles[1].access_key_id} != {expiring.access_key_id}
    assert not credentials.refresh_needed()


def test_missing_source_credentials_become_a_counted_error_not_a_crash(sts, simulator, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    poller, _ = make_poller(
        {"targets": [role_target(simulator, discover=False, assessments=[{"id": uuid(1)}])]}, default_session
    )
    started = time.monotonic()
    (state,) = audit_manager_part(poller.poll()).assessments
    assert (state.poll_success, state.insights) == (False, None)
    assert simulator.count() == 0
    assert time.monotonic() - started < 10
