"""Property-based tests (Hypothesis): arbitrary AWS answers never publish a value the model forbids, and arbitrary
config and web-config YAML ends in exit 0 or 2 with one line per problem, never a traceback.

The example database is off (`database=None`) and every test bounds its examples, so the suite stays fast in CI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import bcrypt
import boto3
import botocore.session
import pytest
import yaml
from botocore.model import Shape
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from exporter import cli
from exporter.aws import AUDIT_MANAGER_ANSWERS, AuditManagerClient, AwsError
from exporter.config import parse
from exporter.simulator import ControlDomain, Fault, Simulator
from exporter.snapshot import ApiCounters
from tests.conftest import (
    ROOT,
    ExporterProcess,
    aws_env,
    eventually,
    free_port,
    http_get,
    insights,
    require_binary,
    uuid,
)

REGION = "us-east-1"
MODEL = botocore.session.get_session().get_service_model("auditmanager")
LAUNCH = AUDIT_MANAGER_ANSWERS.launched.timestamp()
INT_MAX = 2**31 - 1
OPERATIONS = (
    "GetInsightsByAssessment",
    "GetInsights",
    "ListControlDomainInsightsByAssessment",
    "GetAssessment",
    "ListAssessments",
)
INSIGHT_OPERATIONS = OPERATIONS[:3]
DOMAINS = [
    ControlDomain("arn:aws:controlcatalog:::domain/DATA", "Data protection", 1, 2, 3, 4, 5, insights().last_updated),
    ControlDomain("UNCATEGORIZED", "Uncategorized", 6, None, 7, 8, 9, insights().last_updated),
]


def quick(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ---- answers: strategies drawn from the service model


JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["7", "1.5", "-1", "2020-12-08T00:00:00Z", "", "\x00", "NaN"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


def _json_name(name: str, shape: Shape) -> str:
    return shape.serialization.get("name", name)


def _valid(shape: Shape, depth: int = 0) -> st.SearchStrategy[Any]:
    """JSON values the model allows for `shape` (kept small: lists of at most 3, strings of at most 30)."""
    kind = shape.type_name
    if kind == "structure":
        members = {_json_name(n, m): _valid(m, depth + 1) for n, m in shape.members.items()} if depth < 6 else {}
        required = {_json_name(n, shape.members[n]) for n in shape.required_members} if depth < 6 else set()
        return st.fixed_dictionaries(
            {k: v for k, v in members.items() if k in required},
            optional={k: v for k, v in members.items() if k not in required},
        )
    if kind == "list":
        return st.lists(_valid(shape.member, depth + 1), min_size=shape.metadata.get("min", 0), max_size=3)
    if kind == "map":
        return st.dictionaries(_valid(shape.key, depth + 1), _valid(shape.value, depth + 1), max_size=2)
    if kind == "integer":
        extremes = st.sampled_from([shape.metadata.get("min", 0), shape.metadata.get("max", INT_MAX)])
        return st.integers(shape.metadata.get("min", 0), shape.metadata.get("max", INT_MAX)) | extremes
    if kind == "timestamp":
        return st.floats(LAUNCH, time.time()) | st.integers(int(LAUNCH) + 1, int(time.time()))
    if kind == "boolean":
        return st.booleans()
    low = shape.metadata.get("min", 0)
    return st.text(min_size=low, max_size=max(low, min(30, shape.metadata.get("max", 30))))


def _confused(shape: Shape, depth: int = 0) -> st.SearchStrategy[Any]:
    """Like `_valid`, but any value at any level may be junk of another type or range."""
    kind = shape.type_name
    if kind == "structure" and depth < 6:
        members = {_json_name(n, m): _confused(m, depth + 1) for n, m in shape.members.items()}
        return st.fixed_dictionaries({}, optional=members) | JUNK
    if kind == "list":
        return st.lists(_confused(shape.member, depth + 1), max_size=3) | JUNK
    return _valid(shape, depth) | JUNK


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


EDGES = st.sampled_from(
    [0, INT_MAX, INT_MAX + 1, -1, 1.0, LAUNCH - 1, LAUNCH, time.time() + 2 * 86_400, None, "", "x" * 3000, [], {}]
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from _paths(item, (*path, key))


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    key = path[0]
    present = key in value if isinstance(value, dict) else isinstance(value, list) and isinstance(key, int)
    if not present or (isinstance(value, list) and key >= len(value)):
        return value
    copy = value.copy()
    copy[key] = _replaced(value[key], path[1:], new)
    return copy


def _mutated(good: Any) -> st.SearchStrategy[Any]:
    """`good` with one to three of its values (leaves or whole subtrees) replaced by edge values or junk."""

    def apply(changes: list[tuple[tuple[Any, ...], Any]]) -> Any:
        value = good
        for path, new in changes:
            value = _replaced(value, path, new)
        return value

    changes = st.tuples(st.sampled_from(list(_paths(good))), EDGES | JUNK)
    return st.lists(changes, min_size=1, max_size=3).map(apply)


def bodies(operation: str, good: Any) -> st.SearchStrategy[bytes]:
    """Answers for `operation`: valid by the model, the simulator's `good` answer with values changed,
    type-confused, truncated, huge, or not JSON at all."""
    shape = MODEL.operation_model(operation).output_shape
    valid = _valid(shape).map(_encode) | st.just(_encode(good))
    changed = _mutated(good).map(_encode)
    confused = _confused(shape).map(_encode)
    truncated = st.tuples(valid | changed, st.floats(0, 1)).map(lambda b: b[0][: int(len(b[0]) * b[1])])
    huge = st.sampled_from(
        [
            b'{"insights": {"noncompliantEvidenceCount": ' + b"9" * 5000 + b"}}",
            b'{"insights": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
            _encode({"insights": {"compliantEvidenceCount": 1, "pad": "x" * 1_000_000}}),
            _encode({"controlDomainInsights": [{"name": f"D{n}", "id": "UNCATEGORIZED"} for n in range(3000)]}),
            _encode({"controlDomainInsights": [{"name": "x" * 3000, "id": "UNCATEGORIZED"}]}),
        ]
    )
    return st.one_of(valid, changed, changed, confused, truncated, huge, st.binary(max_size=64))


PATHS = {
    "GetInsightsByAssessment": f"/insights/assessments/{uuid(1)}",
    "GetInsights": "/insights",
    "ListControlDomainInsightsByAssessment": f"/insights/control-domains-by-assessment?assessmentId={uuid(1)}",
    "GetAssessment": f"/assessments/{uuid(1)}",
    "ListAssessments": "/assessments",
}


def good_answers(simulator: Simulator) -> dict[str, Any]:
    """The simulator's own answer to each operation, as JSON."""
    simulator.clear_faults()
    answers = {}
    for operation, path in PATHS.items():
        status, body, _ = http_get(simulator.url + path)
        assert status == 200, body
        answers[operation] = json.loads(body)
    return answers


# ---- answers through the real client


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Simulator, AuditManagerClient]]:
    with Simulator() as simulator:
        simulator.add_assessment(REGION, uuid(1), "A", insights=insights(), control_domains=DOMAINS)
        config = parse(
            {
                "max_attempts": 1,
                "max_requests_per_second": 1000,
                "targets": [{"region": REGION, "endpoint_url": simulator.url, "assessments": [{"id": uuid(1)}]}],
            }
        )

        def session(target):
            return boto3.Session(aws_access_key_id="t", aws_secret_access_key="t", region_name=target.region)

        yield simulator, AuditManagerClient(config.expanded_targets()[0], config, ApiCounters(), session)


CALLS: dict[str, Callable[[AuditManagerClient], Any]] = {
    "GetInsightsByAssessment": lambda client: [client.assessment_insights(uuid(1))],
    "GetInsights": lambda client: [client.account_insights()],
    "ListControlDomainInsightsByAssessment": lambda client: list(client.control_domain_insights(uuid(1))),
    "GetAssessment": lambda client: [client.describe_assessment(uuid(1))],
    "ListAssessments": lambda client: client.list_assessments(),
}
COUNT_FIELDS = {
    "noncompliant_evidence",
    "compliant_evidence",
    "inconclusive_evidence",
    "noncompliant_controls",
    "total_controls",
    "active_assessments",
}


def _assert_allowed(result: Any) -> None:
    present = {item.name for item in dataclasses.fields(result)}
    for name in COUNT_FIELDS & present:
        count = getattr(result, name)
        assert count is None or (type(count) is int and 0 <= count <= INT_MAX), (name, count)
    if "last_updated" in present and result.last_updated is not None:
        assert LAUNCH <= result.last_updated <= time.time() + 86_400, result.last_updated
    for name in ("name", "assessment_id", "status", "account_id", "arn", "framework_id", "framework_name"):
        assert name not in present or isinstance(getattr(result, name), str)
    if "tags" in present:
        assert all(isinstance(key, str) and isinstance(value, str) for key, value in result.tags.items())


@pytest.mark.parametrize("operation", OPERATIONS)
def test_any_answer_is_either_a_aws_error_or_values_the_model_allows(served, operation):
    simulator, client = served

    @quick(60)
    @example(body=b"null")
    @example(body=b'{"controlDomainInsights": [null], "assessmentMetadata": [null]}')
    @example(body=b'{"insights": {"lastUpdated": 1e400}, "assessment": {"metadata": null}}')
    @given(body=bodies(operation, good_answers(simulator)[operation]))
    def check(body: bytes) -> None:
        simulator.clear_faults()
        simulator.add_fault(Fault("body", operation=operation, body=body))
        try:
            results = CALLS[operation](client)
        except AwsError:
            return
        for result in results:
            _assert_allowed(result)

    check()


# ---- answers through the real exporter process


@dataclass
class Exporter:
    simulator: Simulator
    process: ExporterProcess


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exporter]:
    directory = tmp_path_factory.mktemp("answers")
    with Simulator() as simulator:
        simulator.add_assessment(REGION, uuid(1), "A", insights=insights(), control_domains=DOMAINS)
        config = directory / "config.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "poll_interval": "1s",
                    "max_attempts": 1,
                    "targets": [
                        {
                            "region": REGION,
                            "endpoint_url": simulator.url,
                            "assessments": [{"id": uuid(1)}],
                            "control_domains": True,
                        }
                    ],
                }
            ),
            encoding="utf-8",
        )
        port = free_port()
        log_path = directory / "exporter.log"
        args = [sys.executable, "-m", "exporter", "--web.listen-address", f"127.0.0.1:{port}", "--config.file"]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [*args, str(config)], stdout=log, stderr=subprocess.STDOUT, env=aws_env(directory), cwd=ROOT
            )
        handle = ExporterProcess(process, f"http://127.0.0.1:{port}", log_path, config)
        try:
            handle.wait_ready(timeout=60)
            yield Exporter(simulator, handle)
        finally:
            process.kill()
            process.wait()


# Families whose samples are counts from AWS, and those that are timestamps from AWS.
COUNT_FAMILIES = (
    "auditmanager_assessment_evidence",
    "auditmanager_assessment_controls",
    "auditmanager_assessment_noncompliant_controls",
    "auditmanager_assessment_control_domain_evidence",
    "auditmanager_assessment_control_domain_noncompliant_controls",
    "auditmanager_account_active_assessments",
    "auditmanager_account_evidence",
    "auditmanager_account_controls",
    "auditmanager_account_noncompliant_controls",
)
AWS_TIMESTAMP_FAMILIES = (
    "auditmanager_assessment_insights_last_updated_timestamp_seconds",
    "auditmanager_account_insights_last_updated_timestamp_seconds",
)


def _wait_for_a_full_cycle(exporter: Exporter) -> None:
    """Wait until the exporter polled twice after now: the first of those cycles has then been published."""
    start = exporter.simulator.count("GetInsightsByAssessment")

    def polled_twice() -> bool:
        assert exporter.process.process.poll() is None, exporter.process.logs()
        return exporter.simulator.count("GetInsightsByAssessment") >= start + 2

    eventually(polled_twice, what="two more polls", timeout=60, interval=0.05, detail=exporter.process.logs)


def test_any_answers_give_an_exposition_that_parses_and_holds_only_allowed_values(exporter):
    promtool = require_binary("promtool")
    good = good_answers(exporter.simulator)

    domain = {"name": "D", "id": "UNCATEGORIZED", "controlsCountByNoncompliantEvidence": 1}

    @quick(5)
    @example(answers={"ListControlDomainInsightsByAssessment": _encode({"controlDomainInsights": [domain, domain]})})
    @given(answers=st.fixed_dictionaries({op: bodies(op, good[op]) for op in INSIGHT_OPERATIONS}))
    def check(answers: dict[str, bytes]) -> None:
        exporter.simulator.clear_faults()
        for operation, body in answers.items():
            exporter.simulator.add_fault(Fault("body", operation=operation, body=body))
        _wait_for_a_full_cycle(exporter)
        status, text, _ = http_get(exporter.process.url + "/metrics")
        assert status == 200
        seen = set()
        for family in text_string_to_metric_families(text.decode()):
            for metric in family.samples:
                series = (metric.name, tuple(sorted(metric.labels.items())))
                assert series not in seen, f"{series} twice"
                seen.add(series)
                if family.name in COUNT_FAMILIES:
                    assert metric.value == int(metric.value) and 0 <= metric.value <= INT_MAX, metric
                if family.name in AWS_TIMESTAMP_FAMILIES:
                    assert LAUNCH <= metric.value <= time.time() + 86_400, metric
        linted = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
        assert linted.returncode == 0, linted.stdout + linted.stderr

    check()


# ---- config and web-config YAML


CONFIG_KEYS = [
    "poll_interval",
    "discovery_interval",
    "max_concurrency",
    "max_requests_per_second",
    "connect_timeout",
    "read_timeout",
    "max_attempts",
    "max_control_domain_series",
    "targets",
]
TARGET_KEYS = [
    "region",
    "regions",
    "endpoint_url",
    "profile",
    "role_arn",
    "external_id",
    "session_name",
    "assessments",
    "discover",
    "include",
    "exclude",
    "control_domains",
    "max_concurrency",
    "max_requests_per_second",
]
PLAUSIBLE = st.sampled_from(
    [
        "1m",
        "500ms",
        "15 minutes",
        "us-east-1",
        "eu-west-1",
        "nowhere-1",
        uuid(1),
        "0A1B",
        "http://127.0.0.1:9",
        "arn:aws:iam::123456789012:role/r",
        "[",
        "(?P<",
        ".*",
        0,
        -1,
        1.5,
        1e308,
        float("inf"),
        float("nan"),
        True,
        None,
        2**70,
        "",
    ]
)
VALUE = st.recursive(
    PLAUSIBLE | JUNK,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)


def _mapping(keys: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[Any, Any]]:
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), values, max_size=len(keys))


ASSESSMENT = _mapping(["id", "name"], PLAUSIBLE | JUNK)
TARGET = _mapping(TARGET_KEYS, VALUE | st.lists(ASSESSMENT, max_size=3))
CONFIG = _mapping(CONFIG_KEYS, VALUE | st.lists(TARGET, max_size=2))


def _dump(value: Any) -> str:
    return yaml.safe_dump(value, allow_unicode=True)


GOOD = {"targets": [{"region": REGION, "assessments": [{"id": uuid(1)}]}]}
DURATIONS = st.sampled_from(["1s", "90s", "15m", "1h"])
VALID_TOP = {
    "poll_interval": DURATIONS,
    "discovery_interval": DURATIONS,
    "max_concurrency": st.integers(1, 16),
    "max_requests_per_second": st.floats(0.1, 100),
    "connect_timeout": DURATIONS,
    "read_timeout": DURATIONS,
    "max_attempts": st.integers(1, 10),
    "max_control_domain_series": st.integers(0, 10_000),
}
VALID_TARGET = {
    "endpoint_url": st.just("http://127.0.0.1:9"),
    "control_domains": st.booleans(),
    "max_concurrency": st.integers(1, 16),
    "max_requests_per_second": st.floats(0.1, 100),
}
# A valid config with optional keys set, and then perhaps a few values changed: about half are valid.
NEAR_GOOD = st.builds(
    lambda top, target, changes: _replaced(GOOD, ("targets", 0), GOOD["targets"][0] | target) | top | changes,
    st.fixed_dictionaries({}, optional=VALID_TOP),
    st.fixed_dictionaries({}, optional=VALID_TARGET),
    st.just({}) | _mapping(CONFIG_KEYS, PLAUSIBLE),
)

# Raw text too: YAML that is malformed, tagged, aliased or binary.
CONFIG_TEXT = st.one_of(
    NEAR_GOOD.map(_dump),
    NEAR_GOOD.map(_dump),
    CONFIG.map(_dump),
    VALUE.map(_dump),
    st.text(max_size=200),
    st.sampled_from(["targets: [\n", "!!python/object:os.system {}\n", "a: &x [*x]\n", "\ufeff", "- - - -\n"]),
)
WEB_KEYS = ["tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"]
TLS_KEYS = ["cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version"]
WEB_VALUE = VALUE | st.sampled_from(["TLS12", "TLS13", "RequireAndVerifyClientCert", "$2b$04$" + "a" * 53, "x.pem"])
# bcrypt's cheapest cost, so that checking the hash costs nothing.
VALID_WEB = {"basic_auth_users": {"alice": bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()}}
WEB_CONFIG_TEXT = st.one_of(
    st.builds(lambda changes: VALID_WEB | changes, st.just({}) | _mapping(WEB_KEYS, WEB_VALUE)).map(_dump),
    _mapping(
        WEB_KEYS,
        WEB_VALUE | _mapping(TLS_KEYS, WEB_VALUE) | st.dictionaries(st.text(max_size=6), WEB_VALUE, max_size=2),
    ).map(_dump),
    VALUE.map(_dump),
    st.text(max_size=200),
)
GOOD_CONFIG = f"targets:\n  - region: {REGION}\n    assessments: [{{id: {uuid(1)}}}]\n"


@contextlib.contextmanager
def _in_process() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Run cli.main in this process, restoring the signal handlers and logging it sets up."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    root = logging.getLogger()
    log_handlers, log_level = list(root.handlers), root.level
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield out, err
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        root.handlers[:] = log_handlers
        root.setLevel(log_level)


def _check_outcome(code: int, stdout: str, stderr: str, prefix: str) -> None:
    assert code in (0, 2), (code, stderr)
    assert "Traceback" not in stderr
    if code == 0:
        assert stdout == "config OK\n"
        assert stderr == ""
    else:
        lines = stderr.splitlines()
        assert lines, "exit 2 without a problem"
        for line in lines:
            assert line.startswith(prefix) and line[len(prefix) :].strip(), line


@quick(150)
@given(text=CONFIG_TEXT)
def test_any_config_yaml_is_ok_or_one_line_per_problem_and_exit_2(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("config") / "config.yml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    with _in_process() as (out, err):
        code = cli.main(["--config.file", str(path), "--config.check"])
    _check_outcome(code, out.getvalue(), err.getvalue(), f"{path}: ")


@quick(100)
@given(text=WEB_CONFIG_TEXT)
def test_any_web_config_yaml_is_ok_or_one_line_per_problem_and_exit_2(tmp_path_factory, text):
    directory = tmp_path_factory.mktemp("web")
    (directory / "config.yml").write_text(GOOD_CONFIG, encoding="utf-8")
    web = directory / "web.yml"
    web.write_text(text, encoding="utf-8", errors="surrogatepass")
    with _in_process() as (out, err):
        code = cli.main(
            ["--config.file", str(directory / "config.yml"), "--web.config.file", str(web), "--config.check"]
        )
    _check_outcome(code, out.getvalue(), err.getvalue(), f"auditmanager-exporter: web config {web}: ")


# A few of the shapes above through the real process, where stderr, the exit code and the interpreter are real.
PROCESS_CASES = {
    "binary config": ("config", b"\xff\xfe\x00targets"),
    "deeply nested config": ("config", b"targets: " + b"[" * 5000 + b"]" * 5000 + b"\n"),
    "every key the wrong type": ("config", _dump({key: [{"x": None}] for key in CONFIG_KEYS}).encode()),
    "target keys of every wrong type": ("config", _dump({"targets": [{key: 1.5 for key in TARGET_KEYS}]}).encode()),
    "binary web config": ("web", b"\xff\xfe\x00tls"),
    "web config of wrong types": ("web", _dump({key: [1.5] for key in WEB_KEYS}).encode()),
}


@pytest.fixture(scope="module")
def process_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, str, str]]:
    def run(name: str, kind: str, content: bytes) -> tuple[int, str, str, str]:
        directory = tmp_path_factory.mktemp("process")
        config, web = directory / "config.yml", directory / "web.yml"
        config.write_bytes(content if kind == "config" else GOOD_CONFIG.encode())
        args = [sys.executable, "-m", "exporter", "--config.file", str(config), "--config.check"]
        if kind == "web":
            web.write_bytes(content)
            args += ["--web.config.file", str(web)]
        result = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT, env=aws_env(directory))
        prefix = f"{config}: " if kind == "config" else f"auditmanager-exporter: web config {web}: "
        return result.returncode, result.stdout, result.stderr, prefix

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run, name, *case) for name, case in PROCESS_CASES.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", PROCESS_CASES)
def test_the_real_process_gives_exit_2_and_one_line_per_problem(process_outcomes, name):
    code, stdout, stderr, prefix = process_outcomes[name]
    assert code == 2
    _check_outcome(code, stdout, stderr, prefix)
