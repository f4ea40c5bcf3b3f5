"""The Security Hub source end to end: the real exporter process against the simulator's hub, for values (AWS's
12/6/2 -> 60 example, a legacy-mode account), faults, malformed findings, named standards, reload, sharding and the
demo."""

from __future__ import annotations

import json

from exporter.simulator import Fault, FindingSet, Simulator
from exporter.simulator.securityhub_data import STANDARD_CONTROL
from tests.conftest import ExporterProcess, Samples, eventually, http_get, sample, series, write_config
from tests.test_reload import post_reload

REGION = "us-east-1"
ACCOUNT = "123456789012"
FSBP = "standards/aws-foundational-security-best-practices/v/1.0.0"
CIS = "ruleset/cis-aws-foundations-benchmark/v/1.2.0"
PCI = "standards/pci-dss/v/3.2.1"
STATUSES = ("passed", "failed", "unknown", "no_data", "disabled")


def example_hub(simulator: Simulator, generator: str = "SECURITY_CONTROL") -> None:
    """AWS's example in FSBP (12 enabled controls: 6 passed, 2 failed, 2 unknown, 2 without data; one disabled) and
    CIS 1.2 with one passed control, 250 findings in all, and findings the server-side filters must leave out."""
    hub = simulator.securityhub
    hub.enable_hub(REGION, generator)
    hub.enable_standard(REGION, FSBP)
    hub.enable_standard(REGION, CIS)
    for n in range(12):
        standards = {FSBP: True, CIS: True} if n == 0 else {FSBP: True}
        hub.add_control(REGION, f"C.{n}", standards, severity="CRITICAL" if n == 6 else "LOW")
    hub.add_control(REGION, "C.off", {FSBP: False})
    for n, status in enumerate(["PASSED"] * 6 + ["FAILED", "FAILED", "WARNING", "NOT_AVAILABLE"]):
        hub.add_findings(REGION, FindingSet(control_id=f"C.{n}", status=status, count=25, severity="HIGH"))
    for other in ({"account_id": "210987654321"}, {"region": "eu-west-1"}, {"workflow": "SUPPRESSED"}):
        hub.add_findings(REGION, FindingSet(control_id="C.0", status="FAILED", count=5, **other))


def config_for(simulator: Simulator, poll_interval: str = "1h", **target: object) -> dict[str, object]:
    return {
        "poll_interval": poll_interval,
        "max_attempts": 1,
        "securityhub_rate_limits": {"GetFindings": 50, "default": 50},
        "targets": [{"region": REGION, "endpoint_url": simulator.url, "sources": ["securityhub"], **target}],
    }


def std(standard: str = FSBP, **labels: str) -> dict[str, str]:
    return {"account_id": ACCOUNT, "region": REGION, "standard": standard, **labels}


def standards_of(samples: Samples) -> set[str]:
    return {s["standard"] for s in series(samples, "securityhub_standard_poll_success")}


def wait_for(exporter: ExporterProcess, condition, what: str) -> Samples:
    return eventually(exporter.scrape, condition, what=what, detail=exporter.logs)


def status_rows(exporter: ExporterProcess) -> dict[str, dict[str, object]]:
    document = json.loads(http_get(exporter.url + "/status?format=json")[1])
    return {str(row["id"]): row for row in document["units"] if row["source"] == "securityhub"}


def test_awss_example_scores_60_from_one_findings_pass_per_cycle(simulator, run_exporter):
    example_hub(simulator)

    samples = run_exporter(config_for(simulator)).scrape()

    assert sample(samples, "securityhub_standard_score", **std()) == 60.0
    assert {s: sample(samples, "securityhub_standard_controls", **std(status=s)) for s in STATUSES} == {
        "passed": 6,
        "failed": 2,
        "unknown": 2,
        "no_data": 2,
        "disabled": 1,
    }
    assert sample(samples, "securityhub_standard_score", **std(CIS)) == 100.0
    failed = {"control_id": "C.6", "severity": "CRITICAL", "status": "failed"}
    assert sample(samples, "securityhub_control_status", **std(**failed)) == 1
    assert sample(samples, "securityhub_standard_failed_findings", **std(severity="HIGH")) == 50
    assert sample(samples, "securityhub_standard_failed_findings", **std(CIS, severity="HIGH")) == 0
    info = std(name="AWS Foundational Security Best Practices v1.0.0", status="READY")
    assert samples.get(("securityhub_standard_info", frozenset(info.items()))) == 1
    assert sample(samples, "securityhub_standard_poll_success", **std()) == 1
    assert sample(samples, "securityhub_standard_last_poll_success_timestamp_seconds", **std())
    # 250 findings of the account and region: three pages, whatever the number of standards.
    assert simulator.count("GetFindings") == 3
    requests = sample(samples, "auditmanager_api_requests_total", operation="GetFindings", region=REGION)
    assert requests == 3


def test_a_legacy_mode_account_scores_the_same_from_its_per_standard_findings(simulator, run_exporter):
    example_hub(simulator, STANDARD_CONTROL)

    samples = run_exporter(config_for(simulator)).scrape()

    assert sample(samples, "securityhub_standard_score", **std()) == 60.0
    assert sample(samples, "securityhub_standard_score", **std(CIS)) == 100.0
    assert simulator.count("DescribeStandardsControls") == 2
    assert simulator.count("ListSecurityControlDefinitions") == 0


def test_throttled_findings_fail_every_standard_keeping_its_values_until_security_hub_answers(simulator, run_exporter):
    example_hub(simulator)
    exporter = run_exporter(config_for(simulator, poll_interval="1s"))

    simulator.securityhub.add_fault(Fault("throttle_above_rate", rate=0, operation="GetFindings"))
    failing = wait_for(exporter, lambda s: sample(s, "securityhub_standard_poll_success", **std(CIS)) == 0, "failing")
    simulator.securityhub.clear_faults()
    recovered = wait_for(exporter, lambda s: sample(s, "securityhub_standard_poll_success", **std()) == 1, "recovery")

    assert sample(failing, "securityhub_standard_score", **std()) == 60.0
    assert sample(failing, "securityhub_standard_poll_success", **std()) == 0
    errors = {"operation": "GetFindings", "region": REGION, "error_code": "LimitExceededException"}
    assert sample(failing, "auditmanager_api_errors_total", **errors)
    assert sample(recovered, "securityhub_standard_score", **std()) == 60.0


def test_a_malformed_finding_is_never_published_and_fails_its_standard(simulator, run_exporter):
    example_hub(simulator)
    simulator.securityhub.add_findings(REGION, FindingSet(control_id="C.11", status="FAILED", severity="SEVERE"))

    exporter = run_exporter(config_for(simulator))
    samples = exporter.scrape()

    assert sample(samples, "securityhub_standard_poll_success", **std()) == 0
    assert series(samples, "securityhub_standard_score") == [std(CIS)]
    assert "malformed Security Hub findings" in exporter.logs()
    assert status_rows(exporter)[FSBP]["error_code"] == "MalformedResponse"


def test_a_named_standard_that_is_not_enabled_is_failing_from_the_first_cycle_saying_why(simulator, run_exporter):
    example_hub(simulator)

    exporter = run_exporter(config_for(simulator, standards=[FSBP, PCI]))
    samples = exporter.scrape()

    assert standards_of(samples) == {FSBP, PCI}
    assert sample(samples, "securityhub_standard_poll_success", **std(PCI)) == 0
    assert sample(samples, "securityhub_standard_poll_success", **std()) == 1
    assert status_rows(exporter)[PCI]["error_code"] == "StandardNotEnabled"


def test_a_reload_polls_added_standards_and_stops_publishing_removed_ones(simulator, run_exporter):
    example_hub(simulator)
    exporter = run_exporter(config_for(simulator, standards=[FSBP]))

    write_config(exporter.config_path, config_for(simulator, standards=[CIS]))
    assert post_reload(exporter)[0] == 200
    samples = wait_for(exporter, lambda s: standards_of(s) == {CIS}, "the reloaded standards")

    assert sample(samples, "securityhub_standard_score", **std(CIS)) == 100.0


def test_two_exporter_processes_poll_a_targets_standards_once(simulator, run_exporter):
    example_hub(simulator)
    config = config_for(simulator)

    shards = [run_exporter(config, "--shard.index", str(i), "--shard.count", "2").scrape() for i in range(2)]

    assert sorted(len(standards_of(samples)) for samples in shards) == [0, 2]
    assert simulator.count("GetFindings") == 3


def test_the_demo_shows_two_standards_with_a_control_failing_every_day(run_exporter):
    samples = run_exporter(None, "--demo").scrape()

    scores = series(samples, "securityhub_standard_score")
    assert sorted(s["standard"] for s in scores) == [CIS, FSBP]
    failing = {
        (s["control_id"], s["severity"])
        for s in series(samples, "securityhub_control_status")
        if s["status"] == "failed"
    }
    assert ("S3.8", "HIGH") in failing
    assert not [control for control, severity in failing if severity == "CRITICAL"]
