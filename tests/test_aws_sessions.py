"""The session and client cache (exporter.aws.sessions): one session per credential source shared by every target,
one client per service, Region and endpoint shared by targets of any credentials, each call signed with its own
target's, and their builds counted. STS is moto's server, Audit Manager and AWS
Config the simulator."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from prometheus_client import CollectorRegistry

from exporter.aws import AwsError, new_session
from exporter.aws.sessions import SessionCache, build_families
from exporter.config import Config, Target, parse
from exporter.simulator import Simulator
from exporter.simulator.measure import simulator_session
from exporter.snapshot import ApiCounters
from exporter.sources.auditmanager.client import AuditManagerClient
from exporter.sources.awsconfig.client import ConformancePackClient
from tests.conftest import ROLE_ARN, assumed_roles, uuid


def config_of(*targets: dict[str, Any]) -> Config:
    return parse({"max_attempts": 1, "targets": list(targets)})


def role_targets(sim: Simulator) -> dict[str, Any]:
    return {"regions": ["us-east-1", "eu-west-1"], "endpoint_url": sim.url, "role_arn": ROLE_ARN, "discover": True}


def test_targets_of_one_role_share_one_session_and_assume_the_role_once(sts, simulator):
    config = config_of(role_targets(simulator))
    cache = SessionCache()
    clients = [AuditManagerClient(t, config, ApiCounters(), clients=cache) for t in config.expanded_targets()]

    for client in clients:
        client.list_assessments()

    (role,) = assumed_roles()
    assert {request.access_key for request in simulator.requests()} == {role.access_key_id}
    assert simulator.count("ListAssessments") == 2
    first, second = config.expanded_targets()
    assert cache.session(first) is cache.session(second)


def test_another_external_id_session_name_or_profile_is_another_session(sts, simulator):
    base = role_targets(simulator)
    config = config_of(
        base,
        {**base, "external_id": "org-monitoring"},
        {**base, "session_name": "org-audit"},
        {**base, "profile": "other", "role_arn": None},
    )
    cache = SessionCache()
    sessions = {id(cache.session(target)) for target in config.expanded_targets()}
    assert len(sessions) == 4


def test_targets_of_other_credentials_in_one_region_share_one_client_and_each_signs_with_its_own(sts, simulator):
    # A role's target and the standard chain's in us-east-1, and the chain's in eu-west-1: two clients, not three.
    config = config_of(
        {"region": "us-east-1", "endpoint_url": simulator.url, "role_arn": ROLE_ARN, "discover": True},
        {"regions": ["us-east-1", "eu-west-1"], "endpoint_url": simulator.url, "discover": True},
    )
    cache = SessionCache()
    targets = config.expanded_targets()
    counters = [ApiCounters() for _ in targets]
    clients = [AuditManagerClient(t, config, counters[n], clients=cache) for n, t in enumerate(targets)]
    role, chain, other_region = clients

    for client in (role, chain, role, other_region, chain):
        client.list_assessments()

    assert role._client is chain._client
    assert other_region._client is not role._client
    assert cache.builds()["auditmanager"][0] == 2
    (assumed,) = assumed_roles()
    signed = [(request.region, request.access_key) for request in simulator.requests("ListAssessments")]
    assert signed == [
        ("us-east-1", assumed.access_key_id),
        ("us-east-1", "source-key"),
        ("us-east-1", assumed.access_key_id),
        ("eu-west-1", "source-key"),
        ("us-east-1", "source-key"),
    ]
    # Each target's limits and counts are its own, whoever else calls through the client.
    assert [c.requests() for c in counters] == [
        {("ListAssessments", "us-east-1"): 2},
        {("ListAssessments", "us-east-1"): 2},
        {("ListAssessments", "eu-west-1"): 1},
    ]
    assert [client.requests_started for client in clients] == [2, 2, 1]


def test_a_target_without_credentials_fails_its_calls_and_never_signs_with_another_targets(simulator, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")

    def session(target: Target) -> boto3.Session:
        # The profile-less target has keys; the other one's chain finds none.
        if target.profile is None:
            return new_session(aws_access_key_id="keyed", aws_secret_access_key="s", region_name=target.region)
        return new_session(region_name=target.region)

    config = config_of(
        {"region": "us-east-1", "endpoint_url": simulator.url, "discover": True},
        {"region": "us-east-1", "endpoint_url": simulator.url, "profile": "nobody", "discover": True},
    )
    cache = SessionCache(session)
    keyed, keyless = (AuditManagerClient(t, config, ApiCounters(), clients=cache) for t in config.expanded_targets())

    keyed.list_assessments()
    with pytest.raises(AwsError) as caught:
        keyless.list_assessments()

    assert caught.value.code == "NoCredentialsError"
    assert keyless._client is keyed._client
    assert [request.access_key for request in simulator.requests()] == ["keyed"]


def test_a_shared_client_called_outside_a_targets_call_refuses_to_sign(simulator, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    config = config_of({"region": "us-east-1", "endpoint_url": simulator.url, "discover": True})
    (target,) = config.expanded_targets()
    client = AuditManagerClient(target, config, ApiCounters(), clients=SessionCache())

    with pytest.raises(RuntimeError, match="outside calling_as"):
        client._client.list_assessments()

    assert simulator.count() == 0


def test_the_last_target_to_let_go_of_a_client_closes_its_connections_and_keeps_the_client(simulator, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    config = config_of(
        {"region": "us-east-1", "endpoint_url": simulator.url, "discover": True},
        {"region": "us-east-1", "endpoint_url": simulator.url, "profile": "other", "discover": True},
    )
    cache = SessionCache(simulator_session)
    first, second = (AuditManagerClient(t, config, ApiCounters(), clients=cache) for t in config.expanded_targets())
    first.list_assessments()
    second.list_assessments()
    shared = first._client
    closed: list[Any] = []
    monkeypatch.setattr(shared, "close", lambda: closed.append(shared))

    first.close_idle_connections()
    assert closed == [], "the second target still holds the client"
    second.close_idle_connections()
    assert closed == [shared]

    first.list_assessments()
    assert first._client is shared
    assert cache.builds()["auditmanager"][0] == 1
    assert simulator.count("ListAssessments") == 3


def test_a_target_holds_the_client_for_its_work_and_keeps_its_limits_and_counts_between_holds(simulator, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    simulator.add_assessment("us-east-1", uuid(1), "A1")
    config = config_of(
        {"region": "us-east-1", "endpoint_url": simulator.url, "discover": True, "max_requests_per_second": 2}
    )
    (target,) = config.expanded_targets()
    cache = SessionCache()
    counters = ApiCounters()
    client = AuditManagerClient(target, config, counters, clients=cache)
    assert "auditmanager" not in cache.builds(), "no client before the target's work needs one"

    client.list_assessments()
    client.list_assessments()
    client.close_idle_connections()
    client.list_assessments()

    assert cache.builds()["auditmanager"][0] == 1
    assert counters.requests() == {("ListAssessments", "us-east-1"): 3}
    assert client.requests_started == 3
    # The limiter's window spans both holds: at 2 a second the third call waited for the first's window.
    assert client.take_peak_rate() == 2


def test_client_builds_and_their_seconds_are_counted_by_service(simulator, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    config = parse(
        {
            "targets": [
                {
                    "regions": ["us-east-1", "eu-west-1"],
                    "endpoint_url": simulator.url,
                    "discover": True,
                    "sources": ["auditmanager", "config"],
                    "conformance_packs": {"discover": True},
                }
            ]
        }
    )
    ticks = iter(range(100))
    cache = SessionCache(clock=lambda: float(next(ticks)))
    for target in config.expanded_targets():
        AuditManagerClient(target, config, ApiCounters(), clients=cache).list_assessments()
        ConformancePackClient(target, config, ApiCounters(), clients=cache).conformance_packs()
    registry = CollectorRegistry()
    registry.register(type("Builds", (), {"collect": lambda self: build_families(cache)})())

    def sample(name: str, service: str) -> float | None:
        return registry.get_sample_value(name, {"service": service})

    assert sample("auditmanager_exporter_aws_client_builds_total", "auditmanager") == 2
    assert sample("auditmanager_exporter_aws_client_builds_total", "config") == 2
    # The fake clock ticks once at the start and once at the end of each build.
    assert sample("auditmanager_exporter_aws_client_build_seconds_total", "auditmanager") == 2.0
    assert sample("auditmanager_exporter_aws_client_build_seconds_total", "config") == 2.0


def test_a_client_given_the_cache_as_its_session_factory_shares_its_sessions_and_counts(simulator, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    config = config_of({"regions": ["us-east-1", "eu-west-1"], "endpoint_url": simulator.url, "discover": True})
    cache = SessionCache()
    for target in config.expanded_targets():
        ConformancePackClient(target, config, ApiCounters(), cache).conformance_packs()
    first, second = config.expanded_targets()
    assert cache(first) is cache(second)
    assert cache.builds()["config"][0] == 2
