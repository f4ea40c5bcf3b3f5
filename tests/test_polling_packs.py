"""The AWS Config part of the poll service in-process: isolation of unexpected errors, what a new poller keeps, the
account from a pack's ARN, sources kept apart, and shards of a target whose account is unknown."""

from __future__ import annotations

import logging
from typing import Any

import boto3

from exporter.aws import AuditManagerClient
from exporter.awsconfig import ConformancePackClient
from exporter.config import Config, parse
from exporter.polling import Poller, PollState, Publisher, Shard, Workers
from exporter.polling.clients import Clients
from exporter.simulator import Fault, Simulator
from exporter.snapshot import ApiCounters, Snapshot, SnapshotStore
from exporter.sources.auditmanager.source import audit_manager_part
from exporter.sources.awsconfig.source import packs_of
from exporter.sources.awsconfig.state import ConformancePackState
from tests.conftest import insights, uuid

REGION = "us-east-1"
ACCOUNT = "123456789012"
RULES = {"rule-a": "COMPLIANT", "rule-b": "NON_COMPLIANT"}


def plain_session(target: Any) -> boto3.Session:
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=target.region)


def config_for(simulator: Simulator, *targets: dict[str, Any]) -> Config:
    return parse(
        {
            "max_attempts": 1,
            "max_requests_per_second": 100,
            "targets": [{"endpoint_url": simulator.url, "region": REGION, **target} for target in targets],
        }
    )


def poller_for(
    config: Config,
    publisher: Publisher | None = None,
    counters: ApiCounters | None = None,
    session: Any = plain_session,
    **options: Any,
) -> Poller:
    """A Poller over real clients of both sources, built as the service builds them."""
    counters = counters or ApiCounters()
    audit = Clients("auditmanager", lambda target, cfg: AuditManagerClient(target, cfg, counters, plain_session))
    packs = Clients("config", lambda target, cfg: ConformancePackClient(target, cfg, counters, session))
    publisher = publisher or Publisher(PollState(), SnapshotStore())
    return Poller(
        config,
        {"auditmanager": audit.build(config)[0], "config": packs.build(config)[0]},
        publisher,
        Workers(config.max_workers),
        counters,
        **options,
    )


def packs(snapshot: Snapshot | None) -> tuple[ConformancePackState, ...]:
    assert snapshot is not None
    return packs_of(snapshot.parts.get("config"))


def test_an_unexpected_exception_in_one_pack_fails_only_it_logged_once_as_exporter_error(simulator, caplog):
    simulator.awsconfig.add_conformance_pack(REGION, "Broken", RULES)
    simulator.awsconfig.add_conformance_pack(REGION, "Fine", RULES)
    config = config_for(simulator, {"sources": ["config"], "conformance_packs": ["Broken", "Fine"]})
    counters = ApiCounters()
    bug = RuntimeError("a bug")

    def session(target: Any) -> boto3.Session:
        made = plain_session(target)

        def hook(params: dict[str, Any], **_: Any) -> None:
            if params.get("ConformancePackName") == "Broken":
                raise bug

        made.events.register("before-parameter-build.config.DescribeConformancePackCompliance", hook)
        return made

    snapshot = poller_for(config, counters=counters, session=session).poll()

    states = {p.name: p for p in packs(snapshot)}
    assert (states["Broken"].poll_success, states["Broken"].rule_counts) == (False, ())
    assert states["Fine"].poll_success and states["Fine"].score == 50.0
    assert counters.errors() == {("DescribeConformancePackCompliance", REGION, "ExporterError"): 1}
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.exc_info is not None and record.exc_info[1] is bug


def test_each_source_calls_only_its_own_service(simulator):
    simulator.add_assessment("eu-west-1", uuid(1), "A1", insights=insights())
    simulator.awsconfig.add_conformance_pack(REGION, "Pack", RULES)
    config = config_for(
        simulator,
        {"sources": ["config"], "conformance_packs": {"discover": True}},
        {"region": "eu-west-1", "assessments": [{"id": uuid(1)}]},
    )

    snapshot = poller_for(config).poll()

    config_operations = {"ListConformancePackComplianceScores", "DescribeConformancePackCompliance"}
    config_operations.add("DescribeConformancePacks")
    by_region = {region: {r.operation for r in simulator.requests(region=region)} for region in (REGION, "eu-west-1")}
    assert by_region[REGION] == config_operations
    assert by_region["eu-west-1"] and not by_region["eu-west-1"] & config_operations
    assert [p.name for p in packs(snapshot)] == ["Pack"]
    assert [a.assessment_id for a in audit_manager_part(snapshot).assessments] == [uuid(1)]


def test_a_new_poller_keeps_the_discovered_packs_and_the_account_and_does_not_list_again(simulator):
    simulator.awsconfig.add_conformance_pack(REGION, "Pack", RULES)
    config = config_for(simulator, {"sources": ["config"], "conformance_packs": {"discover": True}})
    publisher = Publisher(PollState(), SnapshotStore())
    poller_for(config, publisher).poll()
    assert simulator.count("DescribeConformancePacks") == 1
    simulator.reset_stats()

    (state,) = packs(poller_for(config, publisher).poll())

    assert (state.account_id, state.name, state.poll_success) == (ACCOUNT, "Pack", True)
    assert simulator.count("DescribeConformancePacks") == 0


def test_named_packs_of_a_target_whose_listing_fails_are_failed_polls_of_shard_0_only(simulator):
    simulator.awsconfig.add_conformance_pack(REGION, "Pack", RULES)
    simulator.awsconfig.add_fault(Fault("error", code="AccessDeniedException", operation="DescribeConformancePacks"))
    config = config_for(simulator, {"sources": ["config"], "conformance_packs": ["Pack"]})

    shards = [packs(poller_for(config, shard=Shard(i, 2)).poll()) for i in range(2)]

    assert [(p.account_id, p.name, p.poll_success) for p in shards[0]] == [("", "Pack", False)]
    assert shards[1] == ()
    assert simulator.count("DescribeConformancePackCompliance") == 0


def test_a_named_pack_in_an_account_without_packs_is_a_failed_poll_not_silence(simulator):
    config = config_for(simulator, {"sources": ["config"], "conformance_packs": ["Missing"]})

    snapshot = poller_for(config).poll()

    (state,) = packs(snapshot)
    assert (state.account_id, state.name, state.poll_success) == ("", "Missing", False)
    assert state.error_code == "NoSuchConformancePackException"
    assert simulator.count("DescribeConformancePacks") == 1
    assert simulator.count("ListConformancePackComplianceScores") == 0


def test_discovery_in_an_account_without_packs_publishes_no_pack_and_a_successful_listing(simulator):
    config = config_for(simulator, {"sources": ["config"], "conformance_packs": {"discover": True}})

    snapshot = poller_for(config).poll()

    assert snapshot is not None and packs(snapshot) == ()
    assert snapshot.parts["config"].discovery == (("", REGION, True),)
    assert simulator.count("ListConformancePackComplianceScores") == 0


def test_a_reload_keeps_the_pack_client_of_an_unchanged_target_and_replaces_the_others(simulator):
    counters = ApiCounters()
    clients = Clients("config", lambda target, cfg: ConformancePackClient(target, cfg, counters, plain_session))
    audit_only = {"sources": ["auditmanager"], "discover": True}
    first = config_for(simulator, {"sources": ["config"], "conformance_packs": ["A"]}, audit_only)
    second = config_for(
        simulator,
        {"sources": ["config"], "conformance_packs": ["B"]},
        {"sources": ["config"], "conformance_packs": ["C"], "region": "eu-west-1"},
    )

    built, _ = clients.build(first)
    rebuilt, replaced = clients.build(second)

    assert built[1] is None
    assert rebuilt[0] is built[0]
    assert rebuilt[1] is not None and replaced == []


def test_an_unexpected_exception_in_a_targets_scores_fails_its_packs_only_and_keeps_their_values(simulator, caplog):
    # Two targets in the same account and region (say, two teams' configs), polling different packs.
    simulator.awsconfig.add_conformance_pack(REGION, "Mine", RULES)
    simulator.awsconfig.add_conformance_pack(REGION, "Other", RULES)
    config = config_for(
        simulator,
        {"sources": ["config"], "conformance_packs": ["Mine"]},
        {"sources": ["config"], "conformance_packs": ["Other"]},
    )
    publisher, counters = Publisher(PollState(), SnapshotStore()), ApiCounters()
    poller_for(config, publisher).poll()

    def session(target: Any) -> boto3.Session:
        made = plain_session(target)
        if target.conformance_packs.names == ("Mine",):
            made.events.register(
                "before-parameter-build.config.ListConformancePackComplianceScores", _raise(RuntimeError("a bug"))
            )
        return made

    snapshot = poller_for(config, publisher, counters, session).poll()

    states = {p.name: p for p in packs(snapshot)}
    assert (states["Mine"].poll_success, states["Mine"].score) == (False, 50.0)
    assert states["Other"].poll_success
    assert counters.errors() == {("ListConformancePackComplianceScores", REGION, "ExporterError"): 1}
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


def _raise(error: Exception) -> Any:
    def hook(**_: Any) -> None:
        raise error

    return hook
