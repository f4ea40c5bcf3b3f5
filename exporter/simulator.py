"""A loopback HTTP server speaking AWS Audit Manager's REST-JSON protocol, for tests, benchmarks and `--demo`.

Point an unchanged boto3 client at `Simulator.url`; the simulator can also inject faults and count requests.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import re
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_REGION = "us-east-1"
# HTTP status of each error code, as botocore's service model declares it (checked by the tests).
ERROR_STATUS = {
    "ValidationException": 400,
    "ServiceQuotaExceededException": 402,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ThrottlingException": 429,
    "InternalServerException": 500,
}
UNKNOWN_OPERATION = "UnknownOperation"
FAULT_KINDS = frozenset(
    {"error", "throttle_above_rate", "latency", "reset", "malformed_json", "empty_body", "no_insights"}
)
STATUSES = frozenset({"ACTIVE", "INACTIVE"})

_ASSESSMENT_ID = re.compile(r"[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}")
_CREDENTIAL_REGION = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/")
_TOKEN_PREFIX = "offset:"
_MAX_RESULTS = 1000

_EVIDENCE_KEYS = (
    ("noncompliantEvidenceCount", "noncompliant_evidence"),
    ("compliantEvidenceCount", "compliant_evidence"),
    ("inconclusiveEvidenceCount", "inconclusive_evidence"),
)
_CONTROL_KEYS = (
    ("assessmentControlsCountByNoncompliantEvidence", "noncompliant_controls"),
    ("totalAssessmentControlsCount", "total_controls"),
)
_DOMAIN_CONTROL_KEYS = (
    ("controlsCountByNoncompliantEvidence", "noncompliant_controls"),
    ("totalControlsCount", "total_controls"),
)
_ACTIVE_KEY = (("activeAssessmentsCount", "active_assessments"),)
_T = TypeVar("_T")


@dataclass(frozen=True)
class Insights:
    """GetInsightsByAssessment's counts for one assessment; None counts are omitted from the response."""

    noncompliant_evidence: int | None
    compliant_evidence: int | None
    inconclusive_evidence: int | None
    noncompliant_controls: int | None
    total_controls: int | None
    last_updated: datetime


@dataclass(frozen=True)
class AccountInsights:
    """GetInsights's counts for one region of the account."""

    active_assessments: int | None
    noncompliant_evidence: int | None
    compliant_evidence: int | None
    inconclusive_evidence: int | None
    noncompliant_controls: int | None
    total_controls: int | None
    last_updated: datetime


@dataclass(frozen=True)
class ControlDomain:
    """One entry of ListControlDomainInsightsByAssessment."""

    id: str
    name: str
    noncompliant_evidence: int | None
    compliant_evidence: int | None
    inconclusive_evidence: int | None
    noncompliant_controls: int | None
    total_controls: int | None
    last_updated: datetime


@dataclass(frozen=True)
class Fault:
    """An injected misbehaviour; see `Simulator.add_fault`."""

    kind: str
    code: str = ""
    assessment_id: str | None = None
    operation: str | None = None
    rate: float = 0.0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.kind == "error" and self.code not in ERROR_STATUS:
            raise ValueError(f"unknown error code {self.code!r}")

    def matches(self, operation: str, assessment_id: str | None) -> bool:
        """Whether a request for `operation` naming `assessment_id` is subject to this fault."""
        return (self.operation is None or self.operation == operation) and (
            self.assessment_id is None or self.assessment_id == assessment_id
        )


@dataclass(frozen=True)
class RequestRecord:
    """One request the simulator answered; `at` is `time.monotonic()` when its request line was read, and
    `access_key` the access key id it was signed with."""

    at: float
    region: str
    operation: str
    assessment_id: str | None
    status: int
    access_key: str = ""


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes | dict[str, Any]
    error_code: str | None = None
    reset: bool = False


class _ApiError(Exception):
    def __init__(self, code: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.answer = _error(code, message, **fields)


@dataclass(frozen=True)
class _Drift:
    """The daily counts of a demo assessment as a function of wall-clock time."""

    origin: float
    day_seconds: float
    seed: str
    index: int
    population: int
    total_controls: int
    noncompliant: int
    compliant: int
    inconclusive: int
    noncompliant_controls: int
    domains: tuple[tuple[str, str, float], ...]

    def at(self, now: float) -> tuple[Insights, tuple[ControlDomain, ...]]:
        day, elapsed = divmod(now - self.origin, self.day_seconds)
        # Seeded by strings, which Random hashes with SHA-512, so a day looks the same in every process.
        daily = random.Random(f"demo-spike/{int(day)}")
        spiking = daily.random() < 1 / 3 and daily.randrange(self.population) == self.index
        rng = random.Random(f"{self.seed}/{int(day)}")
        scale = (0.02 + 0.98 * elapsed / self.day_seconds) * rng.uniform(0.8, 1.2)
        spike = rng.uniform(3.0, 6.0) if spiking else 1.0
        updated = datetime.fromtimestamp(self.origin + day * self.day_seconds, UTC)

        def counts(share: float, total: int) -> tuple[int, int, int, int]:
            return (
                round(self.noncompliant * share * scale * spike),
                round(self.compliant * share * scale),
                round(self.inconclusive * share * scale),
                min(total, round(self.noncompliant_controls * share * scale * spike)),
            )

        noncompliant, compliant, inconclusive, failing = counts(1.0, self.total_controls)
        insights = Insights(noncompliant, compliant, inconclusive, failing, self.total_controls, updated)
        domains = []
        for domain_id, name, share in self.domains:
            total = round(self.total_controls * share)
            noncompliant, compliant, inconclusive, failing = counts(share, total)
            domains.append(
                ControlDomain(domain_id, name, noncompliant, compliant, inconclusive, failing, total, updated)
            )
        return insights, tuple(domains)


@dataclass
class _Assessment:
    id: str
    name: str
    status: str
    framework: str
    compliance_type: str
    created: datetime
    updated: datetime
    insights: Insights | None
    control_domains: tuple[ControlDomain, ...]
    drift: _Drift | None = None
    per_request: Callable[[int], Insights] | None = None
    served: int = 0

    def current(self, now: float) -> tuple[Insights | None, tuple[ControlDomain, ...]]:
        if self.drift is None:
            return self.insights, self.control_domains
        return self.drift.at(now)


class Simulator:
    """One AWS account's Audit Manager, per region, served over HTTP on loopback.

    `latency` may be changed at any time; every request sleeps that long (plus any latency faults) before
    its answer is sent, without holding the simulator's lock. `clock` (epoch seconds) dates new assessments
    and drives the demo's drifting counts.
    """

    def __init__(
        self,
        account_id: str = "123456789012",
        *,
        latency: float = 0.0,
        page_size: int = 100,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account_id = account_id
        self.latency = latency
        self.page_size = page_size
        self._host = host
        self._port = port
        self._clock = clock
        self._lock = threading.Lock()
        self._regions: dict[str, dict[str, _Assessment]] = {}
        self._account_insights: dict[str, AccountInsights] = {}
        # Each throttling fault keeps, per region, the arrival times of the requests it let through.
        self._faults: list[tuple[Fault, dict[str, deque[float]]]] = []
        self._records: list[RequestRecord] = []
        self._server: _Server | None = None

    @property
    def url(self) -> str:
        """The endpoint URL for boto3, e.g. "http://127.0.0.1:PORT"; the port stays the same across restarts."""
        if not self._port:
            raise RuntimeError("the simulator has not been started")
        return f"http://{self._host}:{self._port}"

    def start(self) -> Simulator:
        """Listen (on the same port as before, if it was ever started) and serve in a background thread."""
        if self._server is None:
            server = _Server((self._host, self._port), self)
            self._port = server.server_address[1]
            # serve_forever notices shutdown() only between polls; a short poll keeps stop() and
            # refuse_connections() quick.
            threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="auditmanager-simulator", daemon=True
            ).start()
            self._server = server
        return self

    def stop(self) -> None:
        """Close the listening socket and every open connection."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.drop_connections()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def refuse_connections(self) -> None:
        """Behave like a dead endpoint: close open connections and refuse new ones (ECONNREFUSED)."""
        self.stop()

    def accept_connections(self) -> None:
        """Listen again on the same port after `refuse_connections`."""
        self.start()

    def add_assessment(
        self,
        region: str,
        assessment_id: str,
        name: str,
        *,
        status: str = "ACTIVE",
        framework: str = "SOC 2",
        compliance_type: str = "SOC2",
        insights: Insights | None = None,
        control_domains: Sequence[ControlDomain] = (),
    ) -> None:
        """Add (or replace, keeping its place in listings) an assessment created now by the simulator's clock."""
        if not _ASSESSMENT_ID.fullmatch(assessment_id):
            raise ValueError(f"not an Audit Manager assessment id: {assessment_id!r}")
        _check_status(status)
        created = datetime.fromtimestamp(self._clock(), UTC)
        assessment = _Assessment(
            assessment_id, name, status, framework, compliance_type, created, created, insights, tuple(control_domains)
        )
        with self._lock:
            self._regions.setdefault(region, {})[assessment_id] = assessment

    def set_insights(self, region: str, assessment_id: str, insights: Insights | None) -> None:
        """Replace an assessment's insights (ending any demo drift or per-request answers).

        None means the assessment has no insights yet: GetInsightsByAssessment answers `{"insights": {}}`.
        """
        with self._lock:
            assessment = self._regions[region][assessment_id]
            assessment.insights = insights
            assessment.drift = None
            assessment.per_request = None

    def set_insights_per_request(self, region: str, assessment_id: str, insights: Callable[[int], Insights]) -> None:
        """Answer the assessment's nth successful GetInsightsByAssessment (counting from 1) with `insights(n)`.

        A test can so tell which request, and hence which poll cycle, a published value came from.
        """
        with self._lock:
            assessment = self._regions[region][assessment_id]
            assessment.per_request = insights
            assessment.served = 0

    def set_status(self, region: str, assessment_id: str, status: str) -> None:
        """Change an assessment's status; its lastUpdated becomes now."""
        _check_status(status)
        updated = datetime.fromtimestamp(self._clock(), UTC)
        with self._lock:
            assessment = self._regions[region][assessment_id]
            assessment.status = status
            assessment.updated = updated

    def remove_assessment(self, region: str, assessment_id: str) -> None:
        """Delete an assessment; requests naming it get ResourceNotFoundException."""
        with self._lock:
            del self._regions[region][assessment_id]

    def assessment_ids(self, region: str) -> list[str]:
        """The ids of a region's assessments, of every status, in listing order."""
        with self._lock:
            return list(self._regions.get(region, {}))

    def set_account_insights(self, region: str, insights: AccountInsights | None) -> None:
        """Fix GetInsights's answer for a region; None returns to computing it from the ACTIVE assessments.

        The computed answer counts the ACTIVE assessments and sums their non-null counts (a count that is null
        in all of them is omitted); lastUpdated is the latest of theirs, omitted when none has insights.
        """
        with self._lock:
            if insights is None:
                self._account_insights.pop(region, None)
            else:
                self._account_insights[region] = insights

    def add_fault(self, fault: Fault) -> None:
        """Inject a fault into the requests it matches (its operation and assessment, None meaning any).

        All matching "latency" faults add their delay. Among the other matching faults, the first added that
        fires replaces the normal answer: "error" with that AWS error, "reset" with a connection reset midway
        through the body, "malformed_json" with a 200 whose body is truncated JSON, "empty_body" with an empty
        200, "no_insights" with `{}`. "throttle_above_rate" fires (429 ThrottlingException) for a request that
        finds `rate` requests it let through in that region during the previous second; throttled requests
        are not counted, so it lets `rate` requests per second through however hard it is pushed.
        """
        with self._lock:
            self._faults.append((fault, {}))

    def clear_faults(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def requests(self, operation: str | None = None, region: str | None = None) -> list[RequestRecord]:
        """The recorded requests, in arrival order, optionally of one operation and/or region.

        A request is recorded, with the status its answer carries, before that answer is sent. Requests to
        unknown routes are recorded under the operation "UnknownOperation".
        """
        with self._lock:
            records = list(self._records)
        return sorted(
            (r for r in records if operation in (None, r.operation) and region in (None, r.region)),
            key=lambda r: r.at,
        )

    def count(self, operation: str | None = None, region: str | None = None) -> int:
        """How many requests were recorded, optionally of one operation and/or region."""
        return len(self.requests(operation, region))

    def max_requests_in_window(
        self, window: float = 1.0, region: str | None = None, operation: str | None = None
    ) -> int:
        """The most recorded requests whose arrival times fall in any half-open interval [t, t + window)."""
        times = [r.at for r in self.requests(operation, region)]
        best = first = 0
        for last, arrived in enumerate(times):
            while times[first] + window <= arrived:
                first += 1
            best = max(best, last - first + 1)
        return best

    def reset_stats(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._records.clear()

    def _add_drift(self, region: str, assessment_id: str, drift: _Drift) -> None:
        with self._lock:
            self._regions[region][assessment_id].drift = drift

    def _answer(self, method: str, target: str, authorization: str, arrived: float) -> tuple[_Answer, float]:
        """Decide and record the answer to a request; returns it with the extra delay its faults ask for."""
        match = _CREDENTIAL_REGION.search(authorization)
        access_key, region = match.groups() if match else ("", DEFAULT_REGION)
        parts = urlsplit(target)
        query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        operation, assessment_id = _route(method, [unquote(s) for s in parts.path.split("/")[1:]], query)
        delay = 0.0
        with self._lock:
            answer = None
            for fault, windows in self._faults:
                if not fault.matches(operation, assessment_id):
                    continue
                if fault.kind == "latency":
                    delay += fault.seconds
                elif answer is None:
                    answer = _fault_answer(fault, windows.setdefault(region, deque()), arrived, assessment_id)
            if answer is None:
                answer = self._operation(operation, region, assessment_id, query)
            self._records.append(RequestRecord(arrived, region, operation, assessment_id, answer.status, access_key))
        return answer, delay

    def _operation(self, operation: str, region: str, assessment_id: str | None, query: dict[str, str]) -> _Answer:
        assessments = self._regions.get(region, {})
        now = self._clock()
        try:
            if operation == "GetInsights":
                return _Answer(200, {"insights": self._region_insights(region, now)})
            if operation == "ListAssessments":
                return _Answer(200, self._list_assessments(assessments, query))
            if operation == UNKNOWN_OPERATION:
                raise _ApiError("UnknownOperationException", "no such operation", status=404)
            assessment = _find(assessments, assessment_id)
            if operation == "GetAssessment":
                return _Answer(200, {"assessment": self._assessment_json(region, assessment)})
            insights, domains = assessment.current(now)
            if operation == "GetInsightsByAssessment" and assessment.per_request is not None:
                assessment.served += 1
                insights = assessment.per_request(assessment.served)
            if operation == "GetInsightsByAssessment":
                return _Answer(200, {"insights": {} if insights is None else _insights_json(insights)})
            page, token = _page(domains, query, self.page_size)
            return _Answer(200, _with_token({"controlDomainInsights": [_domain_json(d) for d in page]}, token))
        except _ApiError as error:
            return error.answer

    def _region_insights(self, region: str, now: float) -> dict[str, Any]:
        fixed = self._account_insights.get(region)
        if fixed is not None:
            return _counts_json(fixed, _ACTIVE_KEY + _EVIDENCE_KEYS + _CONTROL_KEYS, fixed.last_updated)
        active = [a for a in self._regions.get(region, {}).values() if a.status == "ACTIVE"]
        present = [insights for a in active if (insights := a.current(now)[0]) is not None]
        payload: dict[str, Any] = {"activeAssessmentsCount": len(active)}
        for key, attribute in _EVIDENCE_KEYS + _CONTROL_KEYS:
            values = [value for i in present if (value := getattr(i, attribute)) is not None]
            if values:
                payload[key] = sum(values)
        if present:
            payload["lastUpdated"] = max(i.last_updated for i in present).timestamp()
        return payload

    def _list_assessments(self, assessments: dict[str, _Assessment], query: dict[str, str]) -> dict[str, Any]:
        status = query.get("status")
        if status is not None and status not in STATUSES:
            raise _ApiError("ValidationException", f"invalid status {status!r}", **_field("status", "invalid"))
        matching = [a for a in assessments.values() if status in (None, a.status)]
        page, token = _page(matching, query, self.page_size)
        return _with_token({"assessmentMetadata": [_metadata_json(a) for a in page]}, token)

    def _assessment_json(self, region: str, assessment: _Assessment) -> dict[str, Any]:
        account = {
            "id": self.account_id,
            "name": f"Account {self.account_id}",
            "emailAddress": f"aws+{self.account_id}@example.com",
        }
        framework_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"auditmanager-framework/{assessment.framework}"))
        arn_prefix = f"arn:aws:auditmanager:{region}:{self.account_id}"
        metadata = _metadata_json(assessment) | {"scope": {"awsAccounts": [account], "awsServices": []}}
        return {
            "arn": f"{arn_prefix}:assessment/{assessment.id}",
            "awsAccount": account,
            "metadata": metadata,
            "framework": {
                "id": framework_id,
                "arn": f"{arn_prefix}:assessmentFramework/{framework_id}",
                "metadata": {"name": assessment.framework, "complianceType": assessment.compliance_type},
                "controlSets": [],
            },
        }


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall for seconds without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (timeouts, resets, refuse_connections) are routine here, not worth a traceback.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def drop_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm the body would wait for the client's
    # delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: _Server
    arrived = 0.0

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        self.server.untrack(self.connection)
        super().finish()

    def parse_request(self) -> bool:
        self.arrived = time.monotonic()
        return super().parse_request()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        answer, delay = self.server.simulator._answer(
            self.command, self.path, self.headers.get("Authorization", ""), self.arrived
        )
        delay += self.server.simulator.latency
        if delay > 0:
            time.sleep(delay)
        body = answer.body if isinstance(answer.body, bytes) else _encode(answer.body)
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if answer.error_code:
            self.send_header("x-amzn-ErrorType", answer.error_code)
        self.end_headers()
        if answer.reset:
            self.wfile.write(body[: len(body) // 2])
            self._reset()
        else:
            self.wfile.write(body)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _reset(self) -> None:
        # Closing with a zero linger timeout sends RST instead of FIN; the makefile must go first or the
        # socket's file descriptor stays open.
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()


def _route(method: str, segments: list[str], query: dict[str, str]) -> tuple[str, str | None]:
    if method == "GET":
        match segments:
            case ["insights"]:
                return "GetInsights", None
            case ["insights", "assessments", assessment_id]:
                return "GetInsightsByAssessment", assessment_id
            case ["insights", "control-domains-by-assessment"]:
                return "ListControlDomainInsightsByAssessment", query.get("assessmentId")
            case ["assessments"]:
                return "ListAssessments", None
            case ["assessments", assessment_id]:
                return "GetAssessment", assessment_id
    return UNKNOWN_OPERATION, None


def _fault_answer(fault: Fault, window: deque[float], arrived: float, assessment_id: str | None) -> _Answer | None:
    """The answer `fault` replaces the normal one with, or None if it does not fire for this request."""
    if fault.kind == "throttle_above_rate":
        while window and window[0] <= arrived - 1.0:
            window.popleft()
        if len(window) < fault.rate:
            window.append(arrived)
            return None
        return _error("ThrottlingException", "Rate exceeded")
    if fault.kind == "error":
        if fault.code == "ResourceNotFoundException":
            return _error(fault.code, "injected fault", resourceId=assessment_id or "", resourceType="ASSESSMENT")
        return _error(fault.code, "injected fault")
    if fault.kind == "reset":
        return _Answer(
            200, _encode({"insights": {"noncompliantEvidenceCount": 0, "compliantEvidenceCount": 0}}), reset=True
        )
    return _Answer(200, {"malformed_json": b'{"insights": {', "empty_body": b"", "no_insights": b"{}"}[fault.kind])


def _error(code: str, message: str, *, status: int | None = None, **fields: Any) -> _Answer:
    return _Answer(ERROR_STATUS[code] if status is None else status, {"message": message, **fields}, code)


def _field(name: str, message: str) -> dict[str, Any]:
    return {"reason": "fieldValidationFailed", "fields": [{"name": name, "message": message}]}


def _find(assessments: dict[str, _Assessment], assessment_id: str | None) -> _Assessment:
    if assessment_id is None:
        raise _ApiError("ValidationException", "assessmentId is required", **_field("assessmentId", "required"))
    if not _ASSESSMENT_ID.fullmatch(assessment_id):
        raise _ApiError(
            "ValidationException",
            f"assessmentId {assessment_id!r} does not match the UUID pattern",
            **_field("assessmentId", "invalid"),
        )
    assessment = assessments.get(assessment_id)
    if assessment is None:
        raise _ApiError(
            "ResourceNotFoundException",
            f"assessment {assessment_id} not found",
            resourceId=assessment_id,
            resourceType="ASSESSMENT",
        )
    return assessment


def _page(items: Sequence[_T], query: dict[str, str], default_size: int) -> tuple[Sequence[_T], str | None]:
    size = default_size
    if "maxResults" in query:
        try:
            size = int(query["maxResults"])
        except ValueError:
            size = 0
        if not 1 <= size <= _MAX_RESULTS:
            raise _ApiError(
                "ValidationException", "maxResults must be between 1 and 1000", **_field("maxResults", "invalid")
            )
    start = 0
    if "nextToken" in query:
        try:
            start = int(base64.b32decode(query["nextToken"]).decode().removeprefix(_TOKEN_PREFIX))
        except ValueError:
            start = -1
        if not 0 <= start <= len(items):
            raise _ApiError("ValidationException", "invalid nextToken", **_field("nextToken", "invalid"))
    end = start + size
    # Base32 keeps the token within the model's pattern and free of "+", which query parsing turns into a space.
    token = base64.b32encode(f"{_TOKEN_PREFIX}{end}".encode()).decode() if end < len(items) else None
    return items[start:end], token


def _with_token(payload: dict[str, Any], token: str | None) -> dict[str, Any]:
    return payload if token is None else payload | {"nextToken": token}


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"assessment status must be ACTIVE or INACTIVE, not {status!r}")


def _counts_json(source: object, keys: tuple[tuple[str, str], ...], last_updated: datetime) -> dict[str, Any]:
    payload = {key: value for key, attribute in keys if (value := getattr(source, attribute)) is not None}
    payload["lastUpdated"] = last_updated.timestamp()
    return payload


def _insights_json(insights: Insights) -> dict[str, Any]:
    return _counts_json(insights, _EVIDENCE_KEYS + _CONTROL_KEYS, insights.last_updated)


def _domain_json(domain: ControlDomain) -> dict[str, Any]:
    evidence = {key: value for key, attribute in _EVIDENCE_KEYS if (value := getattr(domain, attribute)) is not None}
    payload = {"name": domain.name, "id": domain.id, "evidenceInsights": evidence}
    return payload | _counts_json(domain, _DOMAIN_CONTROL_KEYS, domain.last_updated)


def _metadata_json(assessment: _Assessment) -> dict[str, Any]:
    return {
        "name": assessment.name,
        "id": assessment.id,
        "complianceType": assessment.compliance_type,
        "status": assessment.status,
        "creationTime": assessment.created.timestamp(),
        "lastUpdated": assessment.updated.timestamp(),
        "roles": [],
        "delegations": [],
    }


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


_DEMO_DOMAINS = (
    ("arn:aws:controlcatalog:::domain/IDENTITY_AND_ACCESS_MANAGEMENT", "Identity and access management", 0.4),
    ("arn:aws:controlcatalog:::domain/LOGGING_AND_MONITORING", "Logging and monitoring", 0.35),
    ("arn:aws:controlcatalog:::domain/DATA_PROTECTION", "Data protection", 0.25),
)
# region, name, status, framework, compliance type, then the total controls and, on an ordinary day, the daily
# noncompliant, compliant and inconclusive evidence and the controls with noncompliant evidence.
_DEMO_ASSESSMENTS = (
    ("us-east-1", "SOC 2 Type II - Production", "ACTIVE", "SOC 2", "SOC2", 61, 40, 2200, 300, 9),
    ("us-east-1", "PCI DSS v4.0 - Cardholder data", "ACTIVE", "PCI DSS V4.0", "PCI DSS", 264, 120, 5400, 800, 31),
    ("us-east-1", "CIS - All accounts", "ACTIVE", "CIS AWS Foundations Benchmark v1.4.0", "CIS", 58, 25, 1800, 90, 6),
    ("us-east-1", "HIPAA - Patient portal", "ACTIVE", "HIPAA Security Rule: Feb 2003", "HIPAA", 77, 18, 950, 140, 5),
    ("us-east-1", "NIST 800-53 - Shared services", "ACTIVE", "NIST SP 800-53 Rev 5", "NIST", 322, 210, 7600, 1300, 44),
    ("us-east-1", "SOC 2 Type II - FY2024 audit", "INACTIVE", "SOC 2", "SOC2", 61, 12, 600, 70, 3),
    ("eu-west-1", 'Prod "PCI", Zürich', "ACTIVE", "PCI DSS V4.0", "PCI DSS", 264, 95, 4100, 620, 27),
    ("eu-west-1", "GDPR - Customer data platform", "ACTIVE", "GDPR 2016", "GDPR", 62, 30, 1500, 210, 8),
)


def demo_simulator(
    *, start_time: float | None = None, day_seconds: float = 300.0, clock: Callable[[], float] = time.time
) -> Simulator:
    """A simulator (not started) holding a few realistic assessments whose counts drift with `clock`.

    Time is compressed into days of `day_seconds` starting at `start_time` (default: the Unix epoch, so days
    start at multiples of `day_seconds`). The counts are the current day's: they rise through the day and drop
    at the rollover, when lastUpdated moves to the start of the new day. On about one day in three, one
    assessment sees a spike of several times its usual noncompliant evidence.
    """
    simulator = Simulator(clock=clock)
    origin = 0.0 if start_time is None else start_time
    for index, row in enumerate(_DEMO_ASSESSMENTS):
        region, name, status, framework, compliance, controls, noncompliant, compliant, inconclusive, failing = row
        assessment_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"auditmanager-exporter-demo/{name}"))
        simulator.add_assessment(
            region, assessment_id, name, status=status, framework=framework, compliance_type=compliance
        )
        drift = _Drift(
            origin,
            day_seconds,
            assessment_id,
            index,
            len(_DEMO_ASSESSMENTS),
            controls,
            noncompliant,
            compliant,
            inconclusive,
            failing,
            _DEMO_DOMAINS,
        )
        simulator._add_drift(region, assessment_id, drift)
    return simulator
