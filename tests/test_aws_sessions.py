"""The session and client cache (exporter.aws.sessions): one session per credential source shared by every target,
clients lent one holder at a time and reused, and their builds counted. STS is moto's server, Audit Manager and AWS
Config the simulator."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from exporter.aws.sessions import ClientSettings, SessionCache, build_families
from exporter.config import Config, parse
from exporter.simulator import Simulator
from exporter.snapshot import ApiCounters
from exporter.sources.auditmanager.client import AUDIT_MANAGER_ANSWERS, AuditManagerClient
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


def test_each_holder_gets_a_client_of_its_own_that_closes_when_given_back(simulator, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    config = config_of({"region": "us-east-1", "endpoint_url": simulator.url, "discover": True})
    (target,) = config.expanded_targets()
    cache = SessionCache()
    settings = ClientSettings.of(target, config)
    closed: list[Any] = []

    with (
        cache.lease(target, "auditmanager", settings, AUDIT_MANAGER_ANSWERS) as first,
        cache.lease(target, "auditmanager", settings, AUDIT_MANAGER_ANSWERS) as second,
    ):
        assert first.client is not second.client
        for lease in (first, second):
            monkeypatch.setattr(lease.client, "close", lambda client=lease.client: closed.append(client))
        assert closed == []
    assert {id(client) for client in closed} == {id(first.client), id(second.client)}
    assert cache.builds()["auditmanager"][0] == 2


def test_a_target_borrows_a_client_for_its_work_and_keeps_its_limits_and_counts_across_clients(simulator, monkeypatch):
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
    first = client._client
    client.close_idle_connections()
    client.list_assessments()

    assert client._client is not first
    assert cache.builds()["auditmanager"][0] == 2
    assert counters.requests() == {("ListAssessments", "us-east-1"): 3}
    assert client.requests_started == 3
    # The limiter's window spans both clients: at 2 a second the third call waited for the first's window.
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
