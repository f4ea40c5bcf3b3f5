"""/status: the report built from a snapshot, its order and filter, and the page of a real exporter process against
the demo simulator with a failing assessment and a failing target, read as JSON and in a real Chromium."""

from __future__ import annotations

import base64
import html
import json
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from types import MappingProxyType

import bcrypt
import boto3
import pytest
import yaml

from benchmarks import status as status_benchmark
from exporter import __version__
from exporter.config import parse
from exporter.exposition import Exposition
from exporter.server import App, MetricsServer, bind
from exporter.simulator import Fault, Simulator, demo_simulator
from exporter.snapshot import ApiCounters, ReloadStatus, Snapshot, SnapshotStore, TargetCycle
from exporter.sources.auditmanager.source import audit_manager_part
from exporter.sources.auditmanager.state import AssessmentDetails, AssessmentState, Insights
from exporter.status import Query, StatusReport, render_html, render_json, report_from_snapshot, select
from tests.conftest import (
    ExporterProcess,
    audit_manager_snapshot,
    eventually,
    free_port,
    http_get,
    insights,
    require_binary,
    uuid,
    write_config,
)
from tests.test_poller import make_poller
from tests.test_webconfig import make_pki

NOW = 1_790_000_000.0
ACCOUNT = "123456789012"
ROLE_ARN = "arn:aws:iam::210987654321:role/AuditManagerExporter"
# Secrets planted in the config, the environment and the web config; none may reach any page.
EXTERNAL_ID = "ext-id-SECRET-4242"
ACCESS_KEY_ID = "AKIAZZSTATUSKEY42424"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSTATUSSECRET42"
SESSION_TOKEN = "FwoGZXIvYXdzSTATUSSESSIONTOKEN4242//////////wEaD"
PASSWORD = "status-page-password-4242"
DENIED = (
    "User: arn:aws:sts::123456789012:assumed-role/auditmanager-exporter/poller is not authorized to perform: "
    "auditmanager:GetInsightsByAssessment"
)
HIPAA = "HIPAA - Patient portal"
ISO = "ISO 27001 - Payments"


def _report(snapshot: Snapshot, yaml_config: dict[str, object]) -> StatusReport:
    config = parse(yaml_config)
    return report_from_snapshot(
        snapshot,
        config.expanded_targets(),
        ReloadStatus(NOW - 600),
        version="1.2.3",
        started=NOW - 600,
        config_file="/etc/config.yml",
        next_poll=NOW + 60,
        now=NOW,
    )


def _state(n: int, name: str, region: str = "us-east-1", ok: bool = True) -> AssessmentState:
    counts = Insights(1, 2, 3, 4, 5, NOW - 86400)
    if ok:
        return AssessmentState(
            account_id="123456789012",
            region=region,
            assessment_id=uuid(n),
            name=name,
            insights=counts,
            poll_success=True,
            last_success=NOW - 30,
        )
    return AssessmentState(
        account_id="123456789012",
        region=region,
        assessment_id=uuid(n),
        name=name,
        insights=counts,
        poll_success=False,
        last_success=NOW - 3600,
        error_code="Throttling",
        error_message="slow",
    )


def test_the_report_joins_each_configured_target_with_its_latest_cycle():
    raw = {
        "targets": [
            {"region": "us-east-1", "assessments": [{"id": uuid(1)}], "max_requests_per_second": 2},
            {"region": "eu-west-1", "role_arn": ROLE_ARN, "discover": True},
        ]
    }
    polled, _ = parse(raw).expanded_targets()
    cycle = TargetCycle(
        source="auditmanager",
        target=polled,
        account_id="123456789012",
        started=NOW - 40,
        seconds=2.5,
        units=3,
        failures=1,
        requests=7,
        peak_rate=2.0,
        error_code="AccessDeniedException",
        error_message="no",
    )
    details = MappingProxyType({_state(1, "a").key: AssessmentDetails("SOC 2", "ACTIVE")})
    report = _report(
        audit_manager_snapshot(assessments=(_state(1, "a"),), completed_cycles=4, details=details, targets=(cycle,)),
        raw,
    )

    first, second = report.targets
    assert (first.region, first.account_id, first.role_arn, first.discover) == (
        "us-east-1",
        "123456789012",
        None,
        False,
    )
    assert (first.last_cycle_start, first.last_cycle_seconds, first.units, first.failures) == (
        NOW - 40,
        2.5,
        3,
        1,
    )
    assert (first.requests, first.peak_rate, first.rate_limit, first.next_poll) == (7, 2.0, 2.0, NOW + 60)
    assert (first.error_code, first.state) == ("AccessDeniedException", "failing")
    # Not polled yet: its account comes from the role ARN, and it waits.
    assert (second.account_id, second.role_arn, second.discover) == ("210987654321", ROLE_ARN, True)
    assert (second.last_cycle_start, second.state) == (None, "waiting")
    (assessment,) = report.assessments
    assert (assessment.framework, assessment.status, assessment.insights_last_updated) == (
        "SOC 2",
        "ACTIVE",
        NOW - 86400,
    )
    assert report.completed_cycles == 4


def test_every_source_of_every_target_is_listed_aws_config_only_targets_too():
    raw = {
        "targets": [
            {"region": "us-east-1", "assessments": [{"id": uuid(1)}]},
            {"region": "eu-west-1", "sources": ["config"], "conformance_packs": ["Pack"]},
            {
                "region": "eu-west-2",
                "sources": ["auditmanager", "config"],
                "discover": True,
                "conformance_packs": ["P"],
            },
        ]
    }

    report = _report(Snapshot(), raw)

    assert [(t.region, t.source) for t in report.targets] == [
        ("eu-west-1", "config"),
        ("eu-west-2", "auditmanager"),
        ("eu-west-2", "config"),
        ("us-east-1", "auditmanager"),
    ]
    assert all(t.state == "waiting" for t in report.targets)


def test_failing_rows_come_first_then_by_region_and_name():
    states = (_state(1, "b"), _state(2, "Zeta", ok=False), _state(3, "a", "eu-west-1"), _state(4, "c", ok=False))
    report = _report(
        audit_manager_snapshot(assessments=states),
        {"targets": [{"region": "us-east-1", "assessments": [{"id": uuid(1)}]}]},
    )

    shown = select(report, Query())

    assert [a.name for a in shown.assessments] == ["c", "Zeta", "a", "b"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (Query("zeta"), ["Zeta"]),
        (Query(uuid(3)), ["a"]),
        (Query("eu-west"), ["a"]),
        (Query("throttl"), ["c", "Zeta"]),
        (Query(failing=True), ["c", "Zeta"]),
        (Query("b", failing=True), []),
        (Query("nothing like it"), []),
    ],
)
def test_the_filter_matches_any_shown_field_case_insensitively(query, expected):
    states = (_state(1, "b"), _state(2, "Zeta", ok=False), _state(3, "a", "eu-west-1"), _state(4, "c", ok=False))
    report = _report(
        audit_manager_snapshot(assessments=states),
        {"targets": [{"region": "us-east-1", "assessments": [{"id": uuid(1)}]}]},
    )

    assert [a.name for a in select(report, query).assessments] == expected


def test_the_page_escapes_what_aws_returns_and_masks_access_key_ids():
    hostile = AssessmentState(
        account_id="123456789012",
        region="us-east-1",
        assessment_id=uuid(1),
        name="<script>alert(1)</script>",
        insights=None,
        poll_success=False,
        last_success=None,
        error_code="InvalidClientTokenId",
        error_message=f"The security token of {ACCESS_KEY_ID} is invalid <b>",
    )
    report = _report(
        audit_manager_snapshot(assessments=(hostile,)),
        {"targets": [{"region": "us-east-1", "assessments": [{"id": uuid(1)}]}]},
    )

    page = render_html(report, Query("<script>")).decode()
    document = render_json(report, Query()).decode()

    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "is invalid &lt;b&gt;" in page
    assert ACCESS_KEY_ID not in page
    assert ACCESS_KEY_ID not in document
    assert (
        json.loads(document)["assessments"][0]["error_message"]
        == "The security token of [access key id] is invalid <b>"
    )


def test_a_cycle_records_each_target_and_each_failed_assessment_error_until_a_poll_succeeds(simulator):
    for n in (1, 2, 3):
        simulator.add_assessment("us-east-1", uuid(n), f"A{n}", insights=insights())
    simulator.add_fault(
        Fault("error", "ThrottlingException", uuid(2), "GetInsightsByAssessment", message="Rate exceeded")
    )
    poller, _ = make_poller(simulator, [{"id": uuid(n)} for n in (1, 2, 3)])

    failed = poller.poll()

    (cycle,) = failed.targets
    assert (cycle.target.region, cycle.account_id, cycle.units, cycle.failures) == ("us-east-1", ACCOUNT, 3, 1)
    # GetAssessment for the account, ListAssessments for the names, GetInsights, three GetInsightsByAssessment.
    assert cycle.requests == simulator.count() == 6
    assert 0 < cycle.peak_rate <= 5.0 and cycle.seconds > 0 and cycle.error_code is None
    states = {s.assessment_id: s for s in audit_manager_part(failed).assessments}
    assert (states[uuid(2)].error_code, states[uuid(2)].error_message) == ("ThrottlingException", "Rate exceeded")
    assert states[uuid(1)].error_code is None

    simulator.clear_faults()
    recovered = poller.poll()

    assert [(s.poll_success, s.error_code, s.error_message) for s in audit_manager_part(recovered).assessments] == [
        (True, None, None)
    ] * 3
    assert recovered.targets[0].failures == 0


@pytest.mark.parametrize("operation", ["GetInsights", "ListAssessments"])
def test_a_target_wide_failure_is_the_target_error_while_its_assessments_poll(simulator, operation):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    simulator.add_fault(Fault("error", "AccessDeniedException", operation=operation, message="not registered"))
    poller, _ = make_poller(simulator, [{"id": uuid(1)}])

    snapshot = poller.poll()

    (cycle,) = snapshot.targets
    assert (cycle.units, cycle.failures) == (1, 0)
    assert (cycle.error_code, cycle.error_message) == ("AccessDeniedException", "not registered")
    assert [s.poll_success for s in audit_manager_part(snapshot).assessments] == [True]


def test_the_status_benchmark_checks_its_page_and_reports_the_target(capsys):
    assert status_benchmark.main(["--smoke"]) == 0
    output = capsys.readouterr().out
    assert "first /status of a snapshot" in output and "/status over HTTP, p50" in output


@pytest.fixture
def status_server() -> Iterator[str]:
    """A real MetricsServer whose status provider returns a fixed report; its base URL."""
    states = (_state(1, "fine"), _state(2, "broken", ok=False))
    report = _report(
        audit_manager_snapshot(assessments=states),
        {"targets": [{"region": "us-east-1", "assessments": [{"id": uuid(1)}]}]},
    )
    store = SnapshotStore(audit_manager_snapshot(assessments=states))
    server = MetricsServer([bind("127.0.0.1:0")], App(Exposition(store, ApiCounters()), store, status=lambda: report))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()
    server.server_close()


def test_status_is_html_without_scripts_or_external_assets_and_json_on_request(status_server):
    status, body, headers = http_get(status_server + "/status")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    page = body.decode()
    assert "<script" not in page and "src=" not in page and "<link" not in page
    assert page.index("broken") < page.index("fine")

    status, body, headers = http_get(status_server + "/status?format=json&q=fine")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert [a["name"] for a in json.loads(body)["assessments"]] == ["fine"]

    assert http_get(status_server + "/status?format=xml")[0] == 400


def test_the_landing_page_links_every_endpoint_and_shows_the_version(status_server):
    status, body, _ = http_get(status_server + "/")
    page = body.decode()
    assert status == 200
    for path in ("/metrics", "/status", "/healthz", "/readyz"):
        assert f'href="{path}"' in page
    assert __version__ in page


def test_the_telemetry_path_cannot_take_status():
    completed = subprocess.run(
        [sys.executable, "-m", "exporter", "--web.telemetry-path", "/status"], capture_output=True, text=True
    )
    assert completed.returncode == 2
    assert "--web.telemetry-path '/status'" in completed.stderr


# ---- a real exporter against the demo simulator, with faults ---------------------------------------------------


@dataclass
class FaultyDemo:
    exporter: ExporterProcess
    simulator: Simulator
    secrets: tuple[str, ...]
    headers: dict[str, str]

    def get(self, path: str) -> bytes:
        status, body, _ = http_get(self.exporter.url + path, self.headers)
        assert status == 200, body
        return body

    def json(self, query: str = "") -> dict[str, object]:
        return json.loads(self.get("/status?format=json" + query))


@pytest.fixture
def demo_simulator_with_a_denied_assessment() -> Iterator[Simulator]:
    simulator = demo_simulator().start()
    ids = {name: assessment_id for assessment_id, name in _demo_names(simulator)}
    simulator.add_fault(Fault("error", "AccessDeniedException", ids[HIPAA], "GetInsightsByAssessment", message=DENIED))
    yield simulator
    simulator.stop()


def _demo_names(simulator: Simulator) -> list[tuple[str, str]]:
    client = boto3.client(
        "auditmanager",
        region_name="us-east-1",
        endpoint_url=simulator.url,
        aws_access_key_id="demo",
        aws_secret_access_key="demo",
    )
    return [(item["id"], item["name"]) for item in client.list_assessments()["assessmentMetadata"]]


def start_faulty_demo(run_exporter, simulator: Simulator, tmp_path: Path, *, auth: bool) -> FaultyDemo:
    """The demo's assessments polled through a discovering target, with HIPAA denied; and a target whose role
    cannot be assumed (STS refuses connections), so its one assessment fails too."""
    config = {
        "poll_interval": "1h",
        "targets": [
            {"regions": ["us-east-1", "eu-west-1"], "endpoint_url": simulator.url, "discover": True},
            {
                "region": "eu-central-1",
                "endpoint_url": simulator.url,
                "role_arn": ROLE_ARN,
                "external_id": EXTERNAL_ID,
                "assessments": [{"id": uuid(9), "name": ISO}],
            },
        ],
    }
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
        "AWS_ENDPOINT_URL_STS": f"http://127.0.0.1:{free_port()}",
        "AWS_MAX_ATTEMPTS": "1",
    }
    flags: list[str] = []
    headers: dict[str, str] = {}
    secrets = [EXTERNAL_ID, ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN]
    if auth:
        password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        web = tmp_path / "web.yml"
        web.write_text(yaml.safe_dump({"basic_auth_users": {"sre": password_hash}}), encoding="utf-8")
        flags = ["--web.config.file", str(web)]
        credentials = base64.b64encode(f"sre:{PASSWORD}".encode()).decode()
        headers = {"Authorization": f"Basic {credentials}"}
        secrets += [PASSWORD, password_hash, password_hash[7:29], credentials, str(web)]
    exporter = run_exporter(config, *flags, wait="none", env=env)
    demo = FaultyDemo(exporter, simulator, tuple(secrets), headers)
    # Ready once the first cycle is in and the details refresh has named the frameworks.

    def named() -> bool:
        assert exporter.process.poll() is None, exporter.logs()
        document = json.loads(http_get(exporter.url + "/status?format=json", headers, timeout=5)[1] or b"{}")
        assessments = document.get("assessments") or []
        return bool(document.get("completed_cycles")) and all(a["framework"] for a in assessments if a["state"] == "ok")

    eventually(named, what="a cycle and the frameworks", timeout=60, ignoring=(OSError,), detail=exporter.logs)
    return demo


def test_the_json_puts_the_failing_target_and_assessments_first_with_their_errors(
    demo_simulator_with_a_denied_assessment, run_exporter, tmp_path
):
    demo = start_faulty_demo(run_exporter, demo_simulator_with_a_denied_assessment, tmp_path, auth=False)

    document = demo.json()

    targets, assessments = document["targets"], document["assessments"]
    assert isinstance(targets, list) and isinstance(assessments, list)
    # A target with any failure is failing: the one whose role cannot be assumed, and the one polling HIPAA.
    assert [(t["state"], t["region"]) for t in targets] == [
        ("failing", "eu-central-1"),
        ("failing", "us-east-1"),
        ("ok", "eu-west-1"),
    ]
    failing = targets[0]
    assert (failing["account_id"], failing["role_arn"], failing["discover"]) == ("210987654321", ROLE_ARN, False)
    assert (failing["last_cycle_assessments"], failing["last_cycle_failures"]) == (1, 1)
    assert failing["error_code"] == "EndpointConnectionError"
    us_east = targets[1]
    assert us_east["error_code"] is None
    assert us_east["discover"] is True
    assert (us_east["last_cycle_assessments"], us_east["last_cycle_failures"]) == (5, 1)
    assert us_east["last_cycle_requests"] >= 5
    assert 0 < us_east["peak_requests_per_second"] <= us_east["max_requests_per_second"] == 5.0
    assert us_east["last_cycle_start"] <= document["generated"] < us_east["next_poll"]

    names = [(a["state"], a["name"]) for a in assessments]
    assert names[:2] == [("failing", ISO), ("failing", HIPAA)]
    assert all(state == "ok" for state, _ in names[2:]) and len(names) == 8
    hipaa = assessments[1]
    assert (hipaa["error_code"], hipaa["error_message"], hipaa["last_success"]) == (
        "AccessDeniedException",
        DENIED,
        None,
    )
    assert (hipaa["framework"], hipaa["status"]) == ("HIPAA Security Rule: Feb 2003", "ACTIVE")
    soc2 = next(a for a in assessments if a["name"] == "SOC 2 Type II - Production")
    assert soc2["last_success"] and soc2["insights_last_updated"] and soc2["error_code"] is None
    assert document["totals"] == {
        "targets": 3,
        "targets_failing": 2,
        "assessments": 8,
        "assessments_failing": 2,
        "units": 0,
        "units_failing": 0,
    }

    only_pci = demo.json("&q=pci")
    assert sorted(a["name"] for a in only_pci["assessments"]) == [
        "PCI DSS v4.0 - Cardholder data",
        'Prod "PCI", Zürich',
    ]
    only_failing = demo.json("&failing=1")
    assert [a["name"] for a in only_failing["assessments"]] == [ISO, HIPAA]
    assert [t["region"] for t in only_failing["targets"]] == ["eu-central-1", "us-east-1"]


def test_no_secret_from_the_config_environment_or_web_config_reaches_any_page(
    demo_simulator_with_a_denied_assessment, run_exporter, tmp_path
):
    demo = start_faulty_demo(run_exporter, demo_simulator_with_a_denied_assessment, tmp_path, auth=True)

    assert http_get(demo.exporter.url + "/status")[0] == 401
    assert http_get(demo.exporter.url + "/status?format=json")[0] == 401
    pages = [demo.get(path).decode() for path in ("/", "/status", "/status?format=json", "/status?failing=1")]

    # The pages were the real ones: the role target and its error are shown.
    assert all(ROLE_ARN in page and "EndpointConnectionError" in page for page in pages[1:])
    for page in pages:
        for secret in demo.secrets:
            assert secret not in page, secret


def test_a_failed_reload_shows_as_failed_with_the_time_of_the_last_that_worked(simulator, run_exporter):
    simulator.add_assessment("us-east-1", uuid(1), "Only one", insights=insights())
    config = {"targets": [{"region": "us-east-1", "endpoint_url": simulator.url, "assessments": [{"id": uuid(1)}]}]}
    exporter = run_exporter(config)
    before = json.loads(http_get(exporter.url + "/status?format=json")[1])
    assert before["last_reload_successful"] is True and before["config_file"] == str(exporter.config_path)
    assert exporter.config_path is not None
    exporter.config_path.write_text("targets: [", encoding="utf-8")

    request = urllib.request.Request(exporter.url + "/-/reload", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 500

    after = json.loads(http_get(exporter.url + "/status?format=json")[1])
    assert after["last_reload_successful"] is False
    assert after["last_successful_reload"] == before["last_successful_reload"] <= after["last_reload"]
    page = http_get(exporter.url + "/status")[1].decode()
    assert "(failed; the last that worked:" in page


def _reload(exporter: ExporterProcess) -> int:
    request = urllib.request.Request(exporter.url + "/-/reload", data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _shown_reload_problems(page: str) -> list[str]:
    """The problems the page lists under the failed reload, one per list item, as the browser shows them."""
    block = re.search(r"<div id=reload-problems[^>]*>(.*?)</div>", page, re.DOTALL)
    return [] if block is None else [html.unescape(item) for item in re.findall(r"<li>(.*?)</li>", block[1])]


def test_a_failed_reload_shows_its_problems_on_the_page_and_in_the_json_until_a_reload_works(simulator, run_exporter):
    simulator.add_assessment("us-east-1", uuid(1), "Only one", insights=insights())
    config = {"targets": [{"region": "us-east-1", "endpoint_url": simulator.url, "assessments": [{"id": uuid(1)}]}]}
    exporter = run_exporter(config)
    assert exporter.config_path is not None
    assert json.loads(http_get(exporter.url + "/status?format=json")[1])["last_reload_problems"] == []
    # Two problems, one of them with markup in a key the page must escape.
    broken = {**config, "poll_interval": "soon", "targets": [{**config["targets"][0], "<b>bold</b>": 1}]}
    write_config(exporter.config_path, broken)
    problems = [
        f"{exporter.config_path}: poll_interval: not a duration: 'soon' (use a unit, like 90s, 15m or 1h)",
        f"{exporter.config_path}: targets[0].<b>bold</b>: unknown key",
    ]

    assert _reload(exporter) == 500
    failed = json.loads(http_get(exporter.url + "/status?format=json")[1])
    assert failed["last_reload_successful"] is False and failed["last_reload_problems"] == problems
    page = http_get(exporter.url + "/status")[1].decode()
    assert _shown_reload_problems(page) == problems
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page

    write_config(exporter.config_path, config)
    assert _reload(exporter) == 200
    fixed = json.loads(http_get(exporter.url + "/status?format=json")[1])
    assert fixed["last_reload_successful"] is True and fixed["last_reload_problems"] == []
    page = http_get(exporter.url + "/status")[1].decode()
    assert _shown_reload_problems(page) == [] and "The latest reload failed" not in page


def test_status_is_served_over_tls_like_every_endpoint(simulator, run_exporter, tmp_path):
    pki = make_pki(tmp_path)
    web = tmp_path / "web.yml"
    web.write_text(
        yaml.safe_dump({"tls_server_config": {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}}),
        encoding="utf-8",
    )
    simulator.add_assessment("us-east-1", uuid(1), "Only one")
    config = {"targets": [{"region": "us-east-1", "endpoint_url": simulator.url, "assessments": [{"id": uuid(1)}]}]}
    exporter = run_exporter(config, "--web.config.file", str(web), wait="none")
    url = exporter.url.replace("http://", "https://") + "/status?format=json"
    context = ssl.create_default_context(cafile=str(pki.ca))

    def status() -> dict[str, object]:
        with urllib.request.urlopen(url, context=context, timeout=5) as response:
            return json.loads(response.read())

    document = eventually(
        status, lambda d: d["assessments"], what="/status over TLS", ignoring=(OSError,), detail=exporter.logs
    )
    assert [a["name"] for a in document["assessments"]] == ["Only one"]
    with pytest.raises(OSError):
        urllib.request.urlopen(exporter.url + "/status", timeout=5)


# ---- the same page in a real browser ------------------------------------------------------------------------------


class _Page(HTMLParser):
    """What a person sees of the page: the text of each table row by table id, and the filter form."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[list[str]]] = {}
        self.form: dict[str, str] = {}
        self.inputs: dict[str, dict[str, str | None]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table":
            self._table = attributes.get("id") or ""
            self.rows[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.rows[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "form":
            self.form = {key: value or "" for key, value in attributes.items()}
        elif tag == "input" and attributes.get("name"):
            self.inputs[str(attributes["name"])] = attributes

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._table is not None and self._cell is not None:
            self.rows[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def body_rows(self, table: str) -> list[list[str]]:
        return self.rows[table][1:]


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium(tmp_path: Path, *args: str) -> str:
    """Run headless Chromium with a fresh profile; its standard output."""
    binary = require_binary("chromium")
    profile = tmp_path / f"chromium-profile-{time.monotonic_ns()}"
    completed = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")
    return completed.stdout.decode()


def seen_in_chromium(tmp_path: Path, url: str) -> _Page:
    page = _Page()
    page.feed(chromium(tmp_path, "--dump-dom", url))
    return page


def test_a_person_sees_the_failing_target_and_assessments_first_and_can_filter(
    demo_simulator_with_a_denied_assessment, run_exporter, tmp_path
):
    demo = start_faulty_demo(run_exporter, demo_simulator_with_a_denied_assessment, tmp_path, auth=False)

    page = seen_in_chromium(tmp_path, demo.exporter.url + "/status")

    targets = page.body_rows("targets")
    assert [row[0] for row in targets] == ["FAILING", "FAILING", "OK"]
    assert targets[0][1:4] == ["eu-central-1", "210987654321", ROLE_ARN]
    assert targets[0][7] == "1 of 1" and targets[0][-1].startswith("EndpointConnectionError")
    assessments = page.body_rows("assessments")
    assert [(row[0], row[1]) for row in assessments[:2]] == [("FAILING", ISO), ("FAILING", HIPAA)]
    assert [row[0] for row in assessments[2:]] == ["OK"] * 6
    hipaa = assessments[1]
    assert hipaa[5:8] == ["HIPAA Security Rule: Feb 2003", "ACTIVE", "never"]
    assert hipaa[8] == f"AccessDeniedException {DENIED}"

    # Submitting the filter form: a GET of its action with its fields, as the browser sends it.
    assert (page.form.get("method"), page.form.get("action")) == ("get", "/status")
    assert page.inputs["q"]["type"] == "search" and page.inputs["failing"]["type"] == "checkbox"
    filtered = seen_in_chromium(tmp_path, demo.exporter.url + "/status?" + urllib.parse.urlencode({"q": "zürich"}))
    assert [row[1] for row in filtered.body_rows("assessments")] == ['Prod "PCI", Zürich']
    assert filtered.inputs["q"]["value"] == "zürich"
    failing = seen_in_chromium(tmp_path, demo.exporter.url + "/status?q=&failing=1")
    assert [row[1] for row in failing.body_rows("assessments")] == [ISO, HIPAA]
    assert [row[1] for row in failing.body_rows("targets")] == ["eu-central-1", "us-east-1"]
    assert "checked" in failing.inputs["failing"]

    screenshot = tmp_path / "status.png"
    chromium(
        tmp_path,
        "--hide-scrollbars",
        "--window-size=1440,1000",
        f"--screenshot={screenshot}",
        demo.exporter.url + "/status",
    )
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert screenshot.stat().st_size > 20_000


def test_a_person_sees_conformance_packs_and_config_only_targets_and_filters_across_sources(
    simulator, run_exporter, tmp_path
):
    simulator.add_assessment("us-east-1", uuid(1), "SOC 2 audit", insights=insights())
    simulator.awsconfig.add_conformance_pack("eu-west-1", "CIS-Pack", {"a": "COMPLIANT", "b": "NON_COMPLIANT"})
    config = {
        "poll_interval": "1h",
        "max_attempts": 1,
        "targets": [
            {"region": "us-east-1", "endpoint_url": simulator.url, "assessments": [{"id": uuid(1)}]},
            {
                "region": "eu-west-1",
                "endpoint_url": simulator.url,
                "sources": ["config"],
                "conformance_packs": ["CIS-Pack", "Typo-Pack"],
            },
        ],
    }
    exporter = run_exporter(config)

    page = seen_in_chromium(tmp_path, exporter.url + "/status")

    targets = page.body_rows("targets")
    assert [(row[0], row[1], row[-2]) for row in targets] == [
        ("FAILING", "eu-west-1", "config"),
        ("OK", "us-east-1", "auditmanager"),
    ]
    assert targets[0][7] == "1 of 2"
    units = page.body_rows("units")
    assert [(row[0], row[2], row[3]) for row in units] == [
        ("FAILING", "conformance pack", "Typo-Pack"),
        ("OK", "conformance pack", "CIS-Pack"),
    ]
    assert units[0][-1].startswith("NoSuchConformancePackException")
    assert units[1][6] == "score: 50% · rules: 1 compliant, 1 noncompliant"
    failing = seen_in_chromium(tmp_path, exporter.url + "/status?failing=1")
    assert [row[3] for row in failing.body_rows("units")] == ["Typo-Pack"]
    assert [row[1] for row in failing.body_rows("targets")] == ["eu-west-1"]
    assert failing.body_rows("assessments")[0][0] == "No assessment matches."
    by_name = seen_in_chromium(tmp_path, exporter.url + "/status?q=cis")
    assert [row[3] for row in by_name.body_rows("units")] == ["CIS-Pack"]

    document = json.loads(http_get(exporter.url + "/status?format=json&failing=1")[1])
    (unit,) = document["units"]
    assert (unit["source"], unit["name"], unit["poll_success"]) == ("config", "Typo-Pack", False)
    assert document["totals"]["units_failing"] == 1
