"""The account and control-domain poll status metrics of the real process under injected faults: a failed call
turns its success gauge to 0, keeps the last good values, and never moves its success timestamp."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from exporter.simulator import ControlDomain, Fault, Simulator
from tests.conftest import ExporterProcess, Samples, eventually, insights, sample, uuid
from tests.test_awsconfig_e2e import cycle_failures, status_document

REGION = "us-east-1"
ACCOUNT = "123456789012"
DEADLINE_SECONDS = 60.0
ACCOUNT_LABELS = {"account_id": ACCOUNT, "region": REGION}


def labels(n: int) -> dict[str, str]:
    return {**ACCOUNT_LABELS, "assessment_id": uuid(n), "assessment_name": f"A{n}"}


def wait_for(exporter: ExporterProcess, condition: Callable[[Samples], bool]) -> Samples:
    return eventually(exporter.scrape, condition, what="the scrape", timeout=DEADLINE_SECONDS, detail=exporter.logs)


def domains_success(samples: Samples, n: int) -> float | None:
    return sample(samples, "auditmanager_assessment_control_domains_poll_success", **labels(n))


def domains_last(samples: Samples, n: int) -> float | None:
    return sample(samples, "auditmanager_assessment_control_domains_last_poll_success_timestamp_seconds", **labels(n))


def assessment_last(samples: Samples, n: int) -> float | None:
    return sample(samples, "auditmanager_assessment_last_poll_success_timestamp_seconds", **labels(n))


def account_last(samples: Samples) -> float | None:
    return sample(samples, "auditmanager_account_last_poll_success_timestamp_seconds", **ACCOUNT_LABELS)


def start(simulator: Simulator, run_exporter: Callable[..., ExporterProcess]) -> ExporterProcess:
    updated = insights().last_updated
    for n in (1, 2):
        simulator.add_assessment(
            REGION,
            uuid(n),
            f"A{n}",
            insights=insights(noncompliant=n),
            control_domains=[
                ControlDomain(f"arn:aws:controlcatalog:::domain/D{n}", f"Domain {n}", n, 10, 0, 1, 5, updated)
            ],
        )
    return run_exporter(
        {
            "poll_interval": "1s",
            "max_attempts": 1,
            "max_requests_per_second": 100,
            "targets": [{"region": REGION, "endpoint_url": simulator.url, "discover": True, "control_domains": True}],
        }
    )


def test_a_failing_get_insights_turns_account_poll_success_to_0_and_keeps_values_and_timestamp(simulator, run_exporter):
    exporter = start(simulator, run_exporter)
    before = wait_for(exporter, lambda s: sample(s, "auditmanager_account_poll_success", **ACCOUNT_LABELS) == 1)
    active = sample(before, "auditmanager_account_active_assessments", **ACCOUNT_LABELS)
    assert active == 2
    simulator.add_fault(Fault("error", "InternalServerException", operation="GetInsights"))
    failed = wait_for(exporter, lambda s: sample(s, "auditmanager_account_poll_success", **ACCOUNT_LABELS) == 0)
    stuck = account_last(failed)
    assert stuck is not None and stuck >= account_last(before)
    # Two more cycles (the assessments' own timestamps move on twice): the account's stays where it was.
    moved = wait_for(exporter, lambda s: assessment_last(s, 1) > assessment_last(failed, 1))
    moved = wait_for(exporter, lambda s: assessment_last(s, 1) > assessment_last(moved, 1))
    assert sample(moved, "auditmanager_account_poll_success", **ACCOUNT_LABELS) == 0
    assert account_last(moved) == stuck
    assert sample(moved, "auditmanager_account_active_assessments", **ACCOUNT_LABELS) == active
    simulator.clear_faults()
    recovered = wait_for(exporter, lambda s: sample(s, "auditmanager_account_poll_success", **ACCOUNT_LABELS) == 1)
    assert account_last(recovered) > stuck


def test_failing_control_domains_turn_their_poll_success_to_0_for_that_assessment_only(simulator, run_exporter):
    exporter = start(simulator, run_exporter)
    before = wait_for(exporter, lambda s: domains_success(s, 1) == 1 and domains_success(s, 2) == 1)
    simulator.add_fault(
        Fault(
            "error", "InternalServerException", assessment_id=uuid(1), operation="ListControlDomainInsightsByAssessment"
        )
    )
    failed = wait_for(exporter, lambda s: domains_success(s, 1) == 0)
    stuck = domains_last(failed, 1)
    assert stuck is not None and stuck >= domains_last(before, 1)
    later = wait_for(exporter, lambda s: domains_last(s, 2) > domains_last(failed, 2))
    later = wait_for(exporter, lambda s: domains_last(s, 2) > domains_last(later, 2))
    assert (domains_success(later, 1), domains_success(later, 2)) == (0, 1)
    assert domains_last(later, 1) == stuck
    # The assessment's own insights still succeed, and its last domain values stay published.
    assert sample(later, "auditmanager_assessment_poll_success", **labels(1)) == 1
    domain = {**labels(1), "control_domain": "Domain 1"}
    assert sample(later, "auditmanager_assessment_control_domain_noncompliant_controls", **domain) == 1
    simulator.clear_faults()
    recovered = wait_for(exporter, lambda s: domains_success(s, 1) == 1)
    assert domains_last(recovered, 1) > stuck


def test_a_failing_assessment_poll_also_fails_its_control_domains_without_refreshing_them(simulator, run_exporter):
    exporter = start(simulator, run_exporter)
    wait_for(exporter, lambda s: domains_success(s, 1) == 1)
    simulator.add_fault(
        Fault("error", "InternalServerException", assessment_id=uuid(1), operation="GetInsightsByAssessment")
    )
    failed = wait_for(exporter, lambda s: sample(s, "auditmanager_assessment_poll_success", **labels(1)) == 0)
    later = wait_for(exporter, lambda s: domains_last(s, 2) > domains_last(failed, 2))
    assert domains_success(later, 1) == 0
    assert domains_last(later, 1) == domains_last(failed, 1)


def test_targets_without_control_domains_publish_no_control_domain_status(simulator, run_exporter):
    simulator.add_assessment(REGION, uuid(1), "A1", insights=insights())
    exporter = run_exporter(
        {"poll_interval": "1h", "targets": [{"region": REGION, "endpoint_url": simulator.url, "discover": True}]}
    )
    samples = wait_for(exporter, lambda s: sample(s, "auditmanager_account_poll_success", **ACCOUNT_LABELS) == 1)
    assert domains_success(samples, 1) is None
    assert sample(samples, "auditmanager_assessment_poll_success", **labels(1)) == 1


# ---- nothing configured is silent --------------------------------------------------------------------------------


def audit_manager_config(simulator: Simulator, **target: object) -> dict[str, object]:
    return {
        "poll_interval": "1h",
        "max_attempts": 1,
        "max_requests_per_second": 100,
        "targets": [{"region": REGION, "endpoint_url": simulator.url, **target}],
    }


@pytest.mark.parametrize("beside", [True, False], ids=["beside-an-existing-one", "alone"])
def test_a_configured_assessment_that_does_not_exist_is_failing_from_the_first_cycle(simulator, run_exporter, beside):
    if beside:
        simulator.add_assessment(REGION, uuid(1), "A1", insights=insights())
    configured = [{"id": uuid(1)}] if beside else []
    exporter = run_exporter(audit_manager_config(simulator, assessments=[*configured, {"id": uuid(9), "name": "Typo"}]))
    account = ACCOUNT if beside else ""

    samples = exporter.scrape()

    missing = {"account_id": account, "region": REGION, "assessment_id": uuid(9), "assessment_name": "Typo"}
    assert sample(samples, "auditmanager_assessment_poll_success", **missing) == 0
    rows = {a["id"]: a for a in status_document(exporter)["assessments"]}
    assert (rows[uuid(9)]["state"], rows[uuid(9)]["error_code"]) == ("failing", "ResourceNotFoundException")
    assert cycle_failures(exporter) == 1


def test_a_denied_listing_of_a_discovering_target_has_a_failing_discovery_series(simulator, run_exporter):
    simulator.add_assessment(REGION, uuid(1), "A1", insights=insights())
    simulator.add_fault(Fault("error", "AccessDeniedException", operation="ListAssessments", message="denied"))
    exporter = run_exporter(audit_manager_config(simulator, discover=True))

    samples = exporter.scrape()

    assert sample(samples, "auditmanager_discovery_success", account_id="", region=REGION) == 0
    (target,) = status_document(exporter)["targets"]
    assert (target["source"], target["state"]) == ("auditmanager", "failing")
    assert (target["error_code"], target["error_message"]) == ("AccessDeniedException", "denied")
    assert cycle_failures(exporter) == 1
