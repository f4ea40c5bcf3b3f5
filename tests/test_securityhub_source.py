"""The Security Hub source run by hand as the pipeline runs it (list, plan, tasks, part, families, /status rows)
against the simulator: values, faults, caps, named and discovered standards."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.aws import AwsError
from exporter.config import parse
from exporter.sharding import UNSHARDED, Shard
from exporter.simulator import Fault, FindingSet, Simulator
from exporter.simulator.securityhub_data import STANDARD_CONTROL
from exporter.snapshot import ApiCounters
from exporter.sources.base import Context, Failure, Memory, SourcePart
from exporter.sources.securityhub.source import SecurityHubSource
from tests.test_securityhub_client import ACCOUNT, CIS, FSBP, REGION, session, with_standards

NOW = 1_795_000_000.0
PCI = "standards/pci-dss/v/3.2.1"


@pytest.fixture
def sim():
    """AWS's example in FSBP: 12 enabled controls, 6 passed, 2 failed, 2 unknown, 2 without data; one disabled."""
    with Simulator() as simulator:
        hub = with_standards(simulator)
        for n in range(12):
            hub.add_control(REGION, f"C.{n}", {FSBP: True}, severity=("CRITICAL" if n == 6 else "LOW"))
        hub.add_control(REGION, "C.off", {FSBP: False})
        for n, status in enumerate(["PASSED"] * 6 + ["FAILED", "FAILED", "WARNING", "NOT_AVAILABLE"]):
            hub.add_findings(REGION, FindingSet(control_id=f"C.{n}", status=status, count=30, severity="HIGH"))
        yield simulator


class Run:
    """The source's cycles for one target, with the pipeline's bookkeeping: memory, last states, dropped series."""

    def __init__(self, sim: Simulator, shard: Shard = UNSHARDED, **target: Any) -> None:
        self.config = parse(
            {"targets": [{"region": REGION, "endpoint_url": sim.url, "sources": ["securityhub"], **target}]}
        )
        self.target = self.config.expanded_targets()[0]
        self.source = SecurityHubSource()
        self.counters = ApiCounters()
        self.client = self.source.client(self.target, self.config, self.counters, session)
        self.memory = self.source.initial_memory(self.target)
        self.part: SourcePart | None = None
        self.shard = shard

    def cycle(self) -> SourcePart:
        try:
            listing = self.source.list(self.target, self.client, self.memory, time.monotonic())
            self.memory = Memory(account_id=listing.account_id, listing=listing)
        except AwsError as error:
            self.memory = Memory(
                account_id=self.memory.account_id,
                listing=self.memory.listing,
                listing_failure=Failure(code=error.code, message=error.message),
            )
        known = {s.key: s for s in (self.part.states if self.part else ())}
        context = Context(
            shard=self.shard,
            config=self.config,
            known=known,
            wall_clock=lambda: NOW,
            monotonic=time.monotonic,
            counters=self.counters,
            stopped=lambda: False,
        )
        plan = self.source.plan(self.target, self.client, self.memory, context)
        states = list(plan.decided)
        for task in plan.tasks:
            try:
                states += task.run().states
            except AwsError as error:
                states += task.failed(Failure(code=error.code, message=error.message)).states
        self.part = self.source.part(states, self.part, self.config)
        return self.part

    def value(self, metric: str, **labels: str) -> float | None:
        registry = CollectorRegistry()
        part = self.part
        registry.register(type("C", (), {"collect": lambda _: self.source.families(part)})())
        return registry.get_sample_value(metric, labels)

    def rows(self) -> dict[str, Any]:
        return {row.id: row for row in self.source.status_rows(self.part)}


def std(standard: str = FSBP, **labels: str) -> dict[str, str]:
    return {"account_id": ACCOUNT, "region": REGION, "standard": standard, **labels}


def test_awss_example_scores_60_with_every_series_of_the_standard(sim):
    run = Run(sim)

    run.cycle()

    assert run.value("securityhub_standard_score", **std()) == 60.0
    counts = {
        s: run.value("securityhub_standard_controls", **std(status=s))
        for s in ("passed", "failed", "unknown", "no_data", "disabled")
    }
    assert counts == {"passed": 6, "failed": 2, "unknown": 2, "no_data": 2, "disabled": 1}
    assert run.value("securityhub_control_status", **std(control_id="C.6", severity="CRITICAL", status="failed")) == 1
    assert run.value("securityhub_control_status", **std(control_id="C.11", severity="LOW", status="no_data")) == 1
    assert run.value("securityhub_standard_failed_findings", **std(severity="HIGH")) == 60
    assert run.value("securityhub_standard_failed_findings", **std(severity="INFORMATIONAL")) == 0
    name = "AWS Foundational Security Best Practices v1.0.0"
    assert run.value("securityhub_standard_info", **std(name=name, status="READY")) == 1
    assert run.value("securityhub_standard_poll_success", **std()) == 1
    assert run.value("securityhub_standard_last_poll_success_timestamp_seconds", **std()) == NOW
    assert sim.count("GetFindings") == 3


def test_a_legacy_mode_account_scores_the_same(sim):
    sim.securityhub.enable_hub(REGION, STANDARD_CONTROL)
    run = Run(sim)

    run.cycle()

    assert run.value("securityhub_standard_score", **std()) == 60.0
    assert sim.count("DescribeStandardsControls") == 1
    assert sim.count("ListSecurityControlDefinitions") == 0


def test_a_standard_not_ready_or_not_enabled_is_a_failing_unit_saying_why(sim):
    run = Run(sim, standards=[FSBP, CIS, PCI])

    run.cycle()
    rows = run.rows()

    assert run.value("securityhub_standard_poll_success", **std(CIS)) == 0
    assert (
        run.value(
            "securityhub_standard_info", **std(CIS, name="CIS AWS Foundations Benchmark v1.2.0", status="INCOMPLETE")
        )
        == 1
    )
    assert (rows[CIS].error_code, rows[PCI].error_code) == ("StandardNotReady", "StandardNotEnabled")
    assert run.value("securityhub_standard_poll_success", **std(PCI)) == 0
    assert run.value("securityhub_standard_score", **std(PCI)) is None
    assert rows[FSBP].poll_success
    assert rows[FSBP].details[0] == ("score", "60.0%")


def test_a_malformed_finding_fails_its_standard_keeping_the_last_good_values_and_is_counted_once(sim):
    run = Run(sim)
    run.cycle()
    sim.securityhub.add_findings(REGION, FindingSet(control_id="C.0", status="FAILED", severity="SEVERE", count=3))
    sim.securityhub.add_findings(REGION, FindingSet(control_id="C.1", status="FAILED", compliance=False))

    run.cycle()

    assert run.value("securityhub_standard_poll_success", **std()) == 0
    assert run.value("securityhub_standard_score", **std()) == 60.0
    assert run.rows()[FSBP].error_code == "MalformedResponse"
    assert "4 malformed findings" in run.rows()[FSBP].error_message
    assert run.counters.errors() == {("GetFindings", REGION, "MalformedResponse"): 1}


def test_a_throttled_findings_pass_fails_every_standard_and_a_later_cycle_recovers(sim):
    run = Run(sim)
    run.cycle()
    sim.securityhub.add_fault(Fault("throttle_above_rate", rate=0, operation="GetFindings"))

    run.cycle()
    failing = run.rows()[FSBP]
    sim.securityhub.clear_faults()
    run.cycle()

    assert (failing.poll_success, failing.error_code) == (False, "LimitExceededException")
    assert run.rows()[FSBP].poll_success
    assert run.value("securityhub_standard_score", **std()) == 60.0


def test_a_denied_hub_fails_the_named_standards_from_the_first_cycle(sim):
    sim.securityhub.add_fault(Fault("error", code="AccessDeniedException", operation="DescribeHub"))
    run = Run(sim, standards=[FSBP], role_arn=f"arn:aws:iam::{ACCOUNT}:role/reader")

    run.cycle()

    assert run.rows()[FSBP].error_code == "AccessDeniedException"
    assert run.value("securityhub_standard_poll_success", **std()) == 0


def test_the_control_series_cap_leaves_whole_standards_out_and_counts_them(sim):
    sim.securityhub.enable_standard(REGION, CIS)
    sim.securityhub.add_control(REGION, "IAM.1", {CIS: True})
    run = Run(sim)
    run.config = parse({**_raw(run), "max_securityhub_control_series": 5})

    run.cycle()
    run.cycle()

    assert (
        run.value("securityhub_control_status", **std(CIS, control_id="IAM.1", severity="MEDIUM", status="no_data"))
        == 1
    )
    assert run.value("securityhub_control_status", **std(control_id="C.0", severity="LOW", status="passed")) is None
    assert run.value("securityhub_standard_score", **std()) == 60.0
    assert run.value("securityhub_control_series_dropped_total") == 24


def test_a_discovered_standard_that_is_disabled_leaves(sim):
    run = Run(sim)
    run.cycle()
    sim.securityhub.disable_standard(REGION, CIS)

    run.cycle()

    assert CIS not in run.rows()
    assert FSBP in run.rows()


def test_all_of_a_targets_standards_belong_to_one_shard(sim):
    parts = [Run(sim, Shard(index, 2)).cycle() for index in range(2)]

    assert sorted(len(part.states) for part in parts) == [0, 2]
    assert sim.count("GetFindings") == 3


def _raw(run: Run) -> dict[str, Any]:
    target = run.config.targets[0]
    return {"targets": [{"region": REGION, "endpoint_url": target.endpoint_url, "sources": ["securityhub"]}]}
