from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from exporter.aws import MALFORMED, AwsError, RequestRateLimiter
from exporter.config import parse
from exporter.simulator import ControlDomain, Fault, Simulator
from exporter.snapshot import ApiCounters
from exporter.sources.auditmanager.client import ASSESSMENT_ANSWERS_AT_ONCE, AuditManagerClient
from tests.conftest import InFlight, insights, uuid, within_rate


def client_for(
    sim: Simulator, counters: ApiCounters | None = None, session_factory: Any = None, **settings: object
) -> AuditManagerClient:
    config = parse(
        {
            "max_attempts": 1,
            **settings,
            "targets": [{"region": "us-east-1", "endpoint_url": sim.url, "assessments": [{"id": uuid(1)}]}],
        }
    )

    def session(target):
        return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=target.region)

    return AuditManagerClient(
        config.expanded_targets()[0], config, counters or ApiCounters(), session_factory or session
    )


def test_insights_arrive_as_plain_numbers_and_unix_time(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "SOC 2", insights=insights())
    result = client_for(simulator).assessment_insights(uuid(1))
    assert (result.noncompliant_evidence, result.compliant_evidence, result.inconclusive_evidence) == (5, 50, 2)
    assert (result.noncompliant_controls, result.total_controls) == (3, 40)
    assert result.last_updated == insights().last_updated.timestamp()


def test_null_counts_stay_none(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "SOC 2", insights=insights(noncompliant=None, total_controls=None))
    result = client_for(simulator).assessment_insights(uuid(1))
    assert result.noncompliant_evidence is None
    assert result.total_controls is None
    assert result.compliant_evidence == 50


@pytest.mark.parametrize("kind", ["malformed_json", "empty_body", "no_insights"])
def test_an_answer_without_insights_is_a_malformed_response(simulator, kind):
    simulator.add_assessment("us-east-1", uuid(1), "SOC 2", insights=insights())
    simulator.add_fault(Fault(kind))
    counters = ApiCounters()
    with pytest.raises(AwsError) as caught:
        client_for(simulator, counters).assessment_insights(uuid(1))
    assert caught.value.code == MALFORMED
    assert counters.errors() == {("GetInsightsByAssessment", "us-east-1", MALFORMED): 1}


@pytest.mark.parametrize(
    "code", ["AccessDeniedException", "InternalServerException", "ResourceNotFoundException", "ValidationException"]
)
def test_aws_errors_keep_their_code_and_are_counted_once(simulator, code):
    simulator.add_assessment("us-east-1", uuid(1), "SOC 2", insights=insights())
    simulator.add_fault(Fault("error", code=code))
    counters = ApiCounters()
    with pytest.raises(AwsError) as caught:
        client_for(simulator, counters, max_attempts=2).assessment_insights(uuid(1))
    assert caught.value.code == code
    assert counters.errors() == {("GetInsightsByAssessment", "us-east-1", code): 1}


def test_retries_are_counted_as_requests(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "SOC 2", insights=insights())
    simulator.add_fault(Fault("error", code="InternalServerException"))
    counters = ApiCounters()
    with pytest.raises(AwsError):
        client_for(simulator, counters, max_attempts=2).assessment_insights(uuid(1))
    assert counters.requests() == {("GetInsightsByAssessment", "us-east-1"): 2}
    assert simulator.count("GetInsightsByAssessment") == 2


def test_a_read_timeout_is_reported_as_read_timeout(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "SOC 2", insights=insights())
    simulator.add_fault(Fault("latency", seconds=2.0))
    with pytest.raises(AwsError) as caught:
        client_for(simulator, read_timeout="200ms").assessment_insights(uuid(1))
    assert caught.value.code == "ReadTimeout"


def test_a_refused_connection_is_an_endpoint_connection_error(simulator):
    simulator.refuse_connections()
    with pytest.raises(AwsError) as caught:
        client_for(simulator).assessment_insights(uuid(1))
    assert caught.value.code == "EndpointConnectionError"


def test_list_assessments_follows_every_page(monkeypatch):
    monkeypatch.setattr("exporter.sources.auditmanager.client.PAGE_SIZE", 2)
    with Simulator() as sim:
        for n in range(5):
            sim.add_assessment("us-east-1", uuid(n), f"A{n}", status="ACTIVE" if n % 2 else "INACTIVE")
        client = client_for(sim)
        assert sorted(m.name for m in client.list_assessments()) == ["A0", "A1", "A2", "A3", "A4"]
        assert sorted(m.name for m in client.list_assessments("ACTIVE")) == ["A1", "A3"]
        assert sim.count("ListAssessments") == 3 + 1


class FakeClock:
    """A clock that moves only when the limiter sleeps on it (or the test moves it)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def start_times(limiter_rate: float, count: int) -> list[float]:
    """When `count` requests asked for back to back start through a limiter of `limiter_rate`, on a fake clock."""
    clock = FakeClock()
    limiter = RequestRateLimiter(limiter_rate, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(count):
        limiter.acquire()
        times.append(clock.now)
    return times


@pytest.mark.parametrize("per_second", [0.5, 1, 2.5, 4, 5, 20])
def test_rate_limiter_keeps_requests_asked_back_to_back_within_its_rate(per_second):
    times = start_times(per_second, 40)
    assert within_rate(times, per_second)
    # Not slower than it must be either: each window lets its whole limit through at once.
    limit = max(1, int(per_second))
    window = (1.0 if per_second >= 1 else 1.0 / per_second) + RequestRateLimiter.MARGIN
    assert times[-1] - times[0] == pytest.approx((39 // limit) * window)


def test_the_rate_check_fails_a_limiter_letting_through_twice_the_rate_evenly_spaced():
    evenly = [100.0 + n / 8 for n in range(40)]
    assert within_rate(evenly, 8)
    assert not within_rate(evenly, 4)
    assert not within_rate([100.0 + n for n in range(10)], 0.5)
    assert not within_rate(start_times(8, 40), 4)


def test_rate_limiter_never_lets_more_than_the_limit_start_in_any_window_across_threads():
    limiter = RequestRateLimiter(5)
    starts: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(3):
            limiter.acquire()
            with lock:
                starts.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(starts) == limiter.acquired == 12
    assert within_rate(starts, 5)


def test_rate_limiter_below_one_per_second_spaces_single_requests():
    clock = FakeClock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.sleep(seconds)

    limiter = RequestRateLimiter(0.5, clock=clock, sleep=sleep)
    limiter.acquire()
    clock.now += 1.99
    limiter.acquire()
    assert slept == [pytest.approx(2.0 + RequestRateLimiter.MARGIN - 1.99)]


def test_rate_limiter_reports_the_peak_rate_it_let_through_since_last_asked():
    clock = FakeClock()
    limiter = RequestRateLimiter(5, clock=clock)
    for step in (0.0, 0.1, 0.2, 2.0):
        clock.now += step
        limiter.acquire()
    assert limiter.acquired == 4
    assert limiter.take_peak_rate() == 3.0
    assert limiter.take_peak_rate() == 0.0
    slow = RequestRateLimiter(0.5, clock=clock)
    slow.acquire()
    assert slow.take_peak_rate() == 0.5


def test_account_insights_arrive_as_plain_numbers(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights(7, 70, 3, 2, 40))
    simulator.add_assessment("us-east-1", uuid(2), "A2", status="INACTIVE", insights=insights())
    result = client_for(simulator).account_insights()
    assert (result.active_assessments, result.noncompliant_evidence, result.compliant_evidence) == (1, 7, 70)
    assert (result.inconclusive_evidence, result.noncompliant_controls, result.total_controls) == (3, 2, 40)
    assert result.last_updated == insights().last_updated.timestamp()


@pytest.mark.parametrize("operation", ["GetInsights", "ListControlDomainInsightsByAssessment"])
def test_a_malformed_account_or_domain_answer_is_a_malformed_response(simulator, operation):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    simulator.add_fault(Fault("no_insights", operation=operation))
    counters = ApiCounters()
    client = client_for(simulator, counters)
    with pytest.raises(AwsError) as caught:
        client.account_insights() if operation == "GetInsights" else client.control_domain_insights(uuid(1))
    assert caught.value.code == MALFORMED
    assert counters.errors() == {(operation, "us-east-1", MALFORMED): 1}


def test_control_domain_insights_follow_every_page(monkeypatch, simulator):
    monkeypatch.setattr("exporter.sources.auditmanager.client.PAGE_SIZE", 2)
    updated = insights().last_updated
    domains = [
        ControlDomain(f"arn:aws:controlcatalog:::domain/D{n}", f"Domain {n}", n, 10 * n, None, 1, 5, updated)
        for n in range(5)
    ]
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights(), control_domains=domains)
    result = client_for(simulator).control_domain_insights(uuid(1))
    assert [(d.name, d.noncompliant_evidence, d.compliant_evidence, d.inconclusive_evidence) for d in result] == [
        (f"Domain {n}", n, 10 * n, None) for n in range(5)
    ]
    assert {(d.noncompliant_controls, d.total_controls, d.last_updated) for d in result} == {
        (1, 5, updated.timestamp())
    }
    assert simulator.count("ListControlDomainInsightsByAssessment") == 3


def test_calls_from_several_threads_share_the_targets_concurrency_limit():
    with Simulator(latency=0.3) as sim:
        for n in range(6):
            sim.add_assessment("us-east-1", uuid(n), f"A{n}", insights=insights())
        inflight = InFlight()
        client = client_for(sim, max_concurrency=2, max_requests_per_second=100, session_factory=inflight.session)
        threads = [threading.Thread(target=client.assessment_insights, args=(uuid(n),)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Counted at the client: six threads calling at once, two of them at most in flight.
        assert inflight.peak_total == 2


def resident_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_targets_share_the_parsed_service_data(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    regions = [
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "eu-west-1",
        "eu-west-2",
        "eu-central-1",
        "ap-south-1",
        "ap-northeast-1",
        "sa-east-1",
        "ca-central-1",
        "eu-north-1",
    ]
    config = parse({"targets": [{"regions": regions, "discover": True}]})
    first, *others = config.expanded_targets()
    clients = [AuditManagerClient(first, config, ApiCounters())]
    before = resident_kib()
    clients += [AuditManagerClient(target, config, ApiCounters()) for target in others]
    # Each session parsing its own service models and endpoint rules would cost about 9 MB per target.
    assert resident_kib() - before < 11 * 3000
    assert {client.region for client in clients} == set(regions)


def test_a_repeating_next_token_is_a_malformed_answer_not_an_endless_loop(simulator):
    client = client_for(simulator)
    page = {"assessmentMetadata": [], "nextToken": "same"}
    with Stubber(client._client) as stub:
        stub.add_response("list_assessments", page, {"maxResults": 1000})
        stub.add_response("list_assessments", page, {"maxResults": 1000, "nextToken": "same"})
        with pytest.raises(AwsError) as caught:
            client.list_assessments()
    assert caught.value.code == MALFORMED


def test_describe_assessment_keeps_only_the_assessments_own_facts_of_a_real_sized_answer():
    with Simulator("210987654321", framework_controls=1000) as sim:
        sim.add_assessment("eu-west-1", uuid(1), "NIST prod", framework="NIST SP 800-53 Rev 5", tags={"team": "sec"})
        config = parse({"targets": [{"region": "eu-west-1", "endpoint_url": sim.url, "discover": True}]})
        am = AuditManagerClient(
            config.expanded_targets()[0],
            config,
            ApiCounters(),
            lambda target: boto3.Session(
                aws_access_key_id="testing", aws_secret_access_key="testing", region_name=target.region
            ),
        )

        described = am.describe_assessment(uuid(1))

    assert {field.name: getattr(described, field.name) for field in dataclasses.fields(described)} == {
        "assessment_id": uuid(1),
        "name": "NIST prod",
        "status": "ACTIVE",
        "account_id": "210987654321",
        "arn": f"arn:aws:auditmanager:eu-west-1:210987654321:assessment/{uuid(1)}",
        "framework_id": described.framework_id,
        "framework_name": "NIST SP 800-53 Rev 5",
        "tags": {"team": "sec"},
    }
    assert len(described.framework_id) == 36


def test_list_tags_reads_the_resources_tags_and_counts_failures(simulator):
    simulator.add_assessment("us-east-1", uuid(1), "SOC 2", tags={"team": "payments", "cost-center": "cc-1"})
    counters = ApiCounters()
    am = client_for(simulator, counters)
    arn = am.describe_assessment(uuid(1)).arn

    tags = am.list_tags(arn)
    simulator.set_tags("us-east-1", uuid(1), {})
    emptied = am.list_tags(arn)
    with pytest.raises(AwsError) as caught:
        am.list_tags(arn.replace(uuid(1), uuid(2)))

    assert (dict(tags), dict(emptied)) == ({"team": "payments", "cost-center": "cc-1"}, {})
    assert caught.value.code == "ResourceNotFoundException"
    assert counters.requests()[("ListTagsForResource", "us-east-1")] == 3
    assert counters.errors() == {("ListTagsForResource", "us-east-1", "ResourceNotFoundException"): 1}


def test_an_assessment_answer_without_its_framework_is_a_malformed_response(simulator):
    am = client_for(simulator)
    assessment = {
        "arn": f"arn:aws:auditmanager:us-east-1:123456789012:assessment/{uuid(1)}",
        "awsAccount": {"id": "123456789012"},
        "metadata": {"id": uuid(1), "name": "SOC 2", "status": "ACTIVE"},
    }
    with Stubber(am._client) as stubber:
        stubber.add_response("get_assessment", {"assessment": assessment})
        with pytest.raises(AwsError) as caught:
            am.describe_assessment(uuid(1))
    assert caught.value.code == MALFORMED


def test_at_most_a_fixed_number_of_assessment_answers_are_read_at_once(simulator):
    latency = 0.3
    for n in range(8):
        simulator.add_assessment("us-east-1", uuid(n), f"A{n}", framework_controls=50)
    simulator.latency = latency
    am = client_for(simulator, max_concurrency=8, max_requests_per_second=100)

    threads = [threading.Thread(target=am.describe_assessment, args=(uuid(n),)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # A request can only start once an earlier one's answer is read, which the simulator sends `latency` after
    # that request arrived: so no window shorter than `latency` sees more arrivals than there are slots.
    assert simulator.count("GetAssessment") == 8
    assert simulator.max_requests_in_window(latency * 0.9, operation="GetAssessment") == ASSESSMENT_ANSWERS_AT_ONCE
