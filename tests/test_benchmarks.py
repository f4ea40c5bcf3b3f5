"""What the benchmark harness relies on: call counts per cycle, per-target rate limits, percentiles."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import boto3
import pytest

from benchmarks.harness import PER_TARGET_CALLS
from benchmarks.organisation import OrganisationSettings, organisation_accounts, organisation_config
from benchmarks.polling import INSIGHTS, poll_cycles
from benchmarks.processes import SimulatorProcess, access_key, assessment_id
from benchmarks.scraping import percentile
from exporter.config import parse
from exporter.simulator.measure import max_in_window


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
    assert all(max_in_window(times, 0.5) <= 5 for times in cycle.sent.values())
    # Side by side, not one after the other.
    us, eu = cycle.sent["us-east-1"], cycle.sent["eu-west-1"]
    assert min(us) < max(eu) and min(eu) < max(us)


def test_percentile_is_the_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile([3.0], 0.99) == 3


def test_the_quota_bound_is_set_by_the_rate_limit_for_few_targets_and_by_the_workers_for_many():
    settings = OrganisationSettings.full()
    # 10 targets of 200 assessments: 203 calls at 10 per 1.02 s window, the last one answered after 0.1 s.
    assert settings.quota_bound(10) == (pytest.approx(20 * 1.02 + 0.1), "rate")
    # 1000 targets of 2: 5000 calls on 28 poll-cycle threads (4 of 32 are the look-ups'), 0.1 s each.
    assert settings.quota_bound(1000) == (pytest.approx(179 * 0.1), "workers")
    # The baseline, one target of 2000 at 16 at once and no rate limit to speak of.
    assert settings.quota_bound(1) == (pytest.approx((1 + 126) * 0.1), "concurrency")


@pytest.mark.parametrize("targets", [1, 4, 10, 100, 1000])
def test_organisation_targets_are_an_account_and_region_each_sharing_the_same_assessments(targets):
    settings = OrganisationSettings.full()
    config = parse(organisation_config(settings, "http://127.0.0.1:9", targets))
    expanded = config.expanded_targets()
    ids = [a.id for target in expanded for a in target.assessments]
    assert len(ids) == len(set(ids)) == settings.assessments
    assert len({(target.profile, target.region) for target in expanded}) == targets
    assert len({target.region for target in expanded}) == min(targets, 10)
    assert len({target.profile for target in expanded}) == -(-targets // 10)
    assert len({target.endpoint_url for target in expanded}) == 1
    assert config.poll_interval >= 2 * settings.quota_bound(targets)[0]


def test_the_organisation_simulator_lists_each_targets_assessments_to_its_own_account_and_region():
    settings = dataclasses.replace(OrganisationSettings.smoke(), assessments=60)
    targets = 20
    simulator = SimulatorProcess({}, latency=0.0, accounts=organisation_accounts(settings, targets))
    try:
        config = parse(organisation_config(settings, simulator.url, targets))
        accounts = set()
        for target in config.expanded_targets():
            am = boto3.client(
                "auditmanager",
                region_name=target.region,
                endpoint_url=simulator.url,
                aws_access_key_id=access_key(int(target.profile.removeprefix("p"))),
                aws_secret_access_key="benchmark",
            )
            listed = [a["id"] for a in am.list_assessments()["assessmentMetadata"]]
            assert listed == [a.id for a in target.assessments]
            accounts.add(am.get_assessment(assessmentId=listed[0])["assessment"]["awsAccount"]["id"])
        assert len(accounts) == 2
        assert simulator.count("ListAssessments") == targets
    finally:
        simulator.stop()


def test_the_baseline_comparison_runs_both_revisions_and_reports_every_measure_as_a_ratio():
    from benchmarks.baseline import BaselineSettings, compare

    table, missed = compare("HEAD", BaselineSettings.smoke(), lambda message: None)
    rows = [line for line in table.splitlines()[2:] if line.startswith("| ")]
    measures = [row.split(" | ")[0] for row in rows]
    assert len(rows) == 6, table
    assert any("poll cycle" in m for m in measures) and any("VmHWM" in m for m in measures), table
    for row in rows:
        ratio = row.split(" | ")[3]
        assert ratio.endswith("x") and float(ratio[:-1]) > 0, row
    assert missed == [], "the smoke settings judge no bound"
