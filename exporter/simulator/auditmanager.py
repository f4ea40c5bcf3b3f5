"""A loopback HTTP server speaking AWS Audit Manager's REST-JSON protocol, for tests, benchmarks and `--demo`.

Point an unchanged boto3 client at `Simulator.url`; the simulator can also inject faults and count requests. Its
state and answers' shapes are in auditmanager_data, its operations in auditmanager_api.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from exporter.simulator.auditmanager_api import UNKNOWN_OPERATION, Call, answer_call, route
from exporter.simulator.auditmanager_data import ASSESSMENT_ID, STATUSES, Assessment, check_status, checked_tags
from exporter.simulator.awsconfig import AwsConfig
from exporter.simulator.faults import Fault, InjectedFaults, fault_answer
from exporter.simulator.http import SimulatorServer
from exporter.simulator.measure import max_in_window
from exporter.simulator.model import AccountInsights, ControlDomain, Insights, RequestRecord
from exporter.simulator.securityhub import SecurityHub
from exporter.simulator.wire import ERROR_STATUS, Answer, credential_scope

if TYPE_CHECKING:
    from exporter.simulator.demo import Drift

__all__ = ["DEFAULT_REGION", "STATUSES", "UNKNOWN_OPERATION", "Simulator"]

DEFAULT_REGION = "us-east-1"


class Simulator:
    """One AWS account's Audit Manager, per region, served over HTTP on loopback; its AWS Config conformance packs,
    on the same endpoint, are `awsconfig`, and its Security Hub CSPM `securityhub`. Other accounts may share the
    endpoint (`add_account`), told apart by the access key id requests are signed with.

    `latency` may be changed at any time; every request sleeps that long (plus any latency faults) before
    its answer is sent, without holding the simulator's lock. `clock` (epoch seconds) dates new assessments
    and drives the demo's drifting counts. `framework_controls` is how many controls the framework in an
    added assessment's GetAssessment answer has, unless `add_assessment` says otherwise (0: `controlSets: []`;
    a real 1,000-control framework is about 800 KB of JSON). Requests are recorded through `record`, if given,
    instead of in the simulator's own log (an added account records in its endpoint's).
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
        framework_controls: int = 0,
        record: Callable[[RequestRecord], None] | None = None,
    ) -> None:
        self.account_id = account_id
        self.framework_controls = framework_controls
        self.latency = latency
        self.page_size = page_size
        self._host = host
        self._port = port
        self._clock = clock
        self._lock = threading.Lock()
        self._regions: dict[str, dict[str, Assessment]] = {}
        self._account_insights: dict[str, AccountInsights] = {}
        # Each throttling fault keeps, per region, the arrival times of the requests it let through.
        self._faults = InjectedFaults()
        self._records: list[RequestRecord] = []
        self._record = record or self._keep_record
        self._accounts: dict[str, Simulator] = {}
        self._server: SimulatorServer | None = None
        self.awsconfig = AwsConfig(account_id, clock=clock, record=self._record)
        self.securityhub = SecurityHub(account_id, clock=clock, record=self._record)

    @property
    def url(self) -> str:
        """The endpoint URL for boto3, e.g. "http://127.0.0.1:PORT"; the port stays the same across restarts."""
        if not self._port:
            raise RuntimeError("the simulator has not been started")
        return f"http://{self._host}:{self._port}"

    def start(self) -> Simulator:
        """Listen (on the same port as before, if it was ever started) and serve in a background thread."""
        if self._server is None:
            server = SimulatorServer((self._host, self._port), self)
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

    def add_account(self, access_key: str, account_id: str) -> Simulator:
        """Another account on this endpoint: from now on, requests signed with `access_key` (to any of the three
        services) are answered by the returned simulator, which has this one's clock, page size and framework size.

        It is never started itself: its requests arrive here, take this simulator's latency and are recorded in
        this simulator's log, so that `requests()` and the other statistics here count every account's. Accounts
        added to it would never be asked.
        """
        account = Simulator(
            account_id,
            page_size=self.page_size,
            clock=self._clock,
            framework_controls=self.framework_controls,
            record=self._record,
        )
        with self._lock:
            if access_key in self._accounts:
                raise ValueError(f"access key {access_key!r} already has an account")
            self._accounts[access_key] = account
        return account

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
        framework_controls: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Add (or replace, keeping its place in listings) an assessment created now by the simulator's clock.

        Its framework has `framework_controls` controls (default: the simulator's `framework_controls`).
        """
        if not ASSESSMENT_ID.fullmatch(assessment_id):
            raise ValueError(f"not an Audit Manager assessment id: {assessment_id!r}")
        check_status(status)
        controls = self.framework_controls if framework_controls is None else framework_controls
        if controls < 0:
            raise ValueError(f"framework_controls must not be negative, not {controls}")
        created = datetime.fromtimestamp(self._clock(), UTC)
        assessment = Assessment(
            assessment_id,
            name,
            status,
            framework,
            compliance_type,
            created,
            created,
            insights,
            tuple(control_domains),
            controls,
            checked_tags(tags or {}),
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
        check_status(status)
        updated = datetime.fromtimestamp(self._clock(), UTC)
        with self._lock:
            assessment = self._regions[region][assessment_id]
            assessment.status = status
            assessment.updated = updated

    def set_tags(self, region: str, assessment_id: str, tags: Mapping[str, str]) -> None:
        """Replace an assessment's tags, as GetAssessment and ListTagsForResource answer them."""
        checked = checked_tags(tags)
        with self._lock:
            self._regions[region][assessment_id].tags = checked

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
        200, "no_insights" with `{}`, "body" with a 200 whose body is the fault's raw `body` bytes (any JSON, valid or
        not, e.g. values of the wrong type). "throttle_above_rate" fires (429 ThrottlingException) for a request that
        finds `rate` requests it let through in that region during the previous second; throttled requests
        are not counted, so it lets `rate` requests per second through however hard it is pushed.
        """
        if fault.kind == "error" and fault.code not in ERROR_STATUS:
            raise ValueError(f"{fault.code} is not an Audit Manager error code")
        with self._lock:
            self._faults.add(fault)

    def clear_faults(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def requests(self, operation: str | None = None, region: str | None = None) -> list[RequestRecord]:
        """The recorded requests (AWS Config's, Security Hub's and added accounts' included), in arrival order,
        optionally of one operation and/or region.

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
        return max_in_window([r.at for r in self.requests(operation, region)], window)

    def reset_stats(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._records.clear()

    def _keep_record(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def _add_drift(self, region: str, assessment_id: str, drift: Drift) -> None:
        with self._lock:
            self._regions[region][assessment_id].drift = drift

    def _account_for(self, authorization: str) -> Simulator:
        """The account that answers a request signed with this `Authorization` header: the one added for its
        access key id, else this one."""
        access_key, _ = credential_scope(authorization, DEFAULT_REGION)
        with self._lock:
            return self._accounts.get(access_key, self)

    def _answer(self, method: str, target: str, authorization: str, arrived: float) -> tuple[Answer, float]:
        """Decide and record the answer to a request; returns it with the extra delay its faults ask for."""
        access_key, region = credential_scope(authorization, DEFAULT_REGION)
        parts = urlsplit(target)
        query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        operation, assessment_id, resource_arn = route(method, [unquote(s) for s in parts.path.split("/")[1:]], query)
        with self._lock:
            answer, delay = self._faults.decide(
                lambda fault: fault.matches(operation, assessment_id),
                region,
                lambda fault, window: fault_answer(fault, window, arrived, assessment_id),
            )
            if answer is None:
                answer = self._operation(operation, region, assessment_id, query, resource_arn)
        self._record(RequestRecord(arrived, region, operation, assessment_id, answer.status, access_key))
        return answer, delay

    def _operation(
        self, operation: str, region: str, assessment_id: str | None, query: dict[str, str], resource_arn: str | None
    ) -> Answer:
        call = Call(
            operation=operation,
            account_id=self.account_id,
            region=region,
            assessments=self._regions.get(region, {}),
            account_insights=self._account_insights.get(region),
            page_size=self.page_size,
            now=self._clock(),
            assessment_id=assessment_id,
            query=query,
            resource_arn=resource_arn,
        )
        return answer_call(call)
