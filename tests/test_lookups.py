"""The look-ups at real size, end to end with the real process and calls counted at the simulator over several
discovery intervals: each framework fetched once (reloads included), statuses from the listing, tags refreshed."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from exporter.simulator import Simulator
from tests.conftest import ExporterProcess, Samples, eventually, insights, series, uuid, write_config

REGION = "us-east-1"
DEADLINE_SECONDS = 60.0
# Real-sized, yet quick to serve 5 of on a loaded machine: about 160 KB of JSON each.
CONTROLS = 200


@pytest.fixture
def sized() -> Iterator[Simulator]:
    with Simulator(framework_controls=CONTROLS) as simulator:
        yield simulator


def config_for(simulator: Simulator, **settings: Any) -> dict[str, Any]:
    return {
        "poll_interval": "1s",
        "discovery_interval": "1s",
        "max_attempts": 1,
        "max_requests_per_second": 100,
        "tag_labels": ["team", "cost-center"],
        **settings,
        "targets": [
            {
                "region": REGION,
                "endpoint_url": simulator.url,
                "discover": True,
                "assessments": [{"id": uuid(0), "name": "Configured"}],
            }
        ],
    }


def wait_until(
    exporter: ExporterProcess,
    condition: Callable[[Samples], bool],
    what: str,
    simulator: Simulator,
    deadline: float = DEADLINE_SECONDS,
) -> Samples:
    return eventually(
        exporter.scrape,
        condition,
        what=what,
        timeout=deadline,
        detail=lambda: f"calls {counts(simulator)}\n{exporter.logs()}",
    )


def counts(simulator: Simulator) -> dict[str, int]:
    operations = ("GetAssessment", "ListAssessments", "ListTagsForResource", "GetInsightsByAssessment")
    return {operation: simulator.count(operation) for operation in operations}


def wait_for_calls(simulator: Simulator, operation: str, at_least: int, exporter: ExporterProcess) -> None:
    eventually(
        lambda: simulator.count(operation) >= at_least,
        what=f"{at_least} {operation} calls",
        timeout=DEADLINE_SECONDS,
        detail=lambda: f"calls {counts(simulator)}\n{exporter.logs()}",
    )


def info(samples: Samples) -> dict[str, tuple[str, str]]:
    return {
        s["assessment_name"]: (s["framework"], s["status"]) for s in series(samples, "auditmanager_assessment_info")
    }


def tags(samples: Samples) -> list[tuple[str, str, str]]:
    return sorted(
        (s["assessment_name"], s["tag_team"], s["tag_cost_center"])
        for s in series(samples, "auditmanager_assessment_tags")
    )


def add_assessments(simulator: Simulator, count: int) -> None:
    simulator.add_assessment(REGION, uuid(0), "A0", framework="NIST SP 800-53 Rev 5", insights=insights())
    for n in range(1, count):
        simulator.add_assessment(
            REGION, uuid(n), f"A{n}", framework="SOC 2", insights=insights(), tags={"team": f"team-{n}"}
        )


def post_reload(exporter: ExporterProcess) -> int:
    request = urllib.request.Request(exporter.url + "/-/reload", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def test_each_framework_is_fetched_once_across_discovery_intervals_and_a_reload(sized, run_exporter):
    add_assessments(sized, 5)
    exporter = run_exporter(config_for(sized))
    wait_until(exporter, lambda s: len(info(s)) == 5, "5 info series", sized)
    listed = sized.count("ListAssessments")

    # Several discovery intervals: each lists again and refreshes the tags, but asks for no framework.
    wait_for_calls(sized, "ListAssessments", listed + 4, exporter)
    wait_for_calls(sized, "ListTagsForResource", 3 * 5, exporter)
    before_reload = sized.count("GetAssessment")
    assert exporter.config_path is not None
    write_config(exporter.config_path, config_for(sized, poll_interval="2s"))
    assert post_reload(exporter) == 200
    listed = sized.count("ListAssessments")
    wait_for_calls(sized, "ListAssessments", listed + 3, exporter)
    samples = exporter.scrape()

    assert before_reload == sized.count("GetAssessment") == 5
    assert {r.assessment_id for r in sized.requests("GetAssessment")} == {uuid(n) for n in range(5)}
    assert info(samples) == {"Configured": ("NIST SP 800-53 Rev 5", "ACTIVE")} | {
        f"A{n}": ("SOC 2", "ACTIVE") for n in range(1, 5)
    }


def test_a_status_change_shows_in_assessment_info_within_a_discovery_interval_between_poll_cycles(sized, run_exporter):
    add_assessments(sized, 3)
    # One poll cycle (at start) and no other in the test: the listings between cycles must bring the change.
    exporter = run_exporter(config_for(sized, poll_interval="1h", discovery_interval="2s"))
    wait_until(exporter, lambda s: len(info(s)) == 3, "3 info series", sized)
    polled = sized.count("GetInsightsByAssessment")

    sized.set_status(REGION, uuid(0), "INACTIVE")
    sized.set_status(REGION, uuid(2), "INACTIVE")
    changed = sized.count("ListAssessments")
    # Generous on a loaded machine, yet counted in discovery intervals: the next listing, not the next cycle.
    samples = wait_until(
        exporter,
        lambda s: info(s).get("Configured", ("", ""))[1] == info(s).get("A2", ("", ""))[1] == "INACTIVE",
        "the INACTIVE statuses",
        sized,
        deadline=15 * 2.0,
    )

    assert info(samples) == {
        "Configured": ("NIST SP 800-53 Rev 5", "INACTIVE"),
        "A1": ("SOC 2", "ACTIVE"),
        "A2": ("SOC 2", "INACTIVE"),
    }
    # Shown by a listing between cycles, not by a poll cycle.
    assert sized.count("GetInsightsByAssessment") == polled
    assert sized.count("ListAssessments") >= changed + 1
    assert sized.count("GetAssessment") == 3


def test_an_inactive_discovered_assessment_leaves_at_the_next_cycle(sized, run_exporter):
    add_assessments(sized, 3)
    exporter = run_exporter(config_for(sized))
    wait_until(exporter, lambda s: len(info(s)) == 3, "3 info series", sized)

    sized.set_status(REGION, uuid(0), "INACTIVE")
    sized.set_status(REGION, uuid(2), "INACTIVE")
    samples = wait_until(exporter, lambda s: "A2" not in info(s), "the INACTIVE A2 leaving", sized)
    samples = wait_until(
        exporter, lambda s: info(s).get("Configured", ("", ""))[1] == "INACTIVE", "the INACTIVE status", sized
    )

    # The configured assessment stays polled with its new status; the discovered one is no longer discovered.
    assert info(samples) == {"Configured": ("NIST SP 800-53 Rev 5", "INACTIVE"), "A1": ("SOC 2", "ACTIVE")}
    assert sized.count("GetAssessment") == 3


def test_a_tag_change_shows_and_the_old_series_goes(sized, run_exporter):
    add_assessments(sized, 3)
    sized.set_tags(REGION, uuid(1), {"team": "payments", "cost-center": "cc-2040", "owner": "ana"})
    exporter = run_exporter(config_for(sized))
    first = wait_until(exporter, lambda s: len(tags(s)) == 3, "3 tags series", sized)

    sized.set_tags(REGION, uuid(1), {"team": "platform"})
    sized.set_tags(REGION, uuid(0), {"cost-center": "cc-1"})
    changed = wait_until(exporter, lambda s: ("A1", "platform", "") in tags(s), "the changed tag", sized)
    changed = wait_until(exporter, lambda s: ("Configured", "", "cc-1") in tags(s), "the new tag", sized)

    assert tags(first) == [("A1", "payments", "cc-2040"), ("A2", "team-2", ""), ("Configured", "", "")]
    assert tags(changed) == [("A1", "platform", ""), ("A2", "team-2", ""), ("Configured", "", "cc-1")]
    assert all("tag_owner" not in s for s in series(changed, "auditmanager_assessment_tags"))
    assert sized.count("GetAssessment") == 3
