"""AWS Security Hub CSPM in its REST-JSON protocol (API 2018-10-26), answered on the Audit Manager simulator's
endpoint as `Simulator.securityhub` for requests signed for the `securityhub` service.

Each region holds a hub (its control finding generator), its standards subscriptions, its controls and their
findings. Findings are kept as `FindingSet`s and built a page at a time, so 100,000 of them cost a few records.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from urllib.parse import parse_qs, unquote, urlsplit

from exporter.simulator.faults import Fault, InjectedFaults, admits
from exporter.simulator.model import RequestRecord
from exporter.simulator.securityhub_api import OPERATIONS, Call, HubError, HubRegion, hub_error_answer
from exporter.simulator.securityhub_data import (
    GENERATORS,
    SECURITY_CONTROL,
    STANDARDS,
    Control,
    FindingSet,
    standard_named,
)
from exporter.simulator.wire import SECURITYHUB_ERROR_STATUS, Answer, credential_scope

UNKNOWN_SECURITYHUB_OPERATION = "UnknownSecurityHubOperation"
_DEFAULT_REGION = "us-east-1"
_SIGNED_FOR_SECURITYHUB = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/,\s]+/securityhub/")


def signed_for_securityhub(authorization: str) -> bool:
    """Whether a SigV4 `Authorization` header was signed for Security Hub (whose requests this module answers)."""
    return _SIGNED_FOR_SECURITYHUB.search(authorization) is not None


class SecurityHub:
    """One account's Security Hub CSPM, per region.

    `page_size` caps every page below the request's MaxResults (None: no cap), so that tests can make the exporter
    page. Requests are recorded through `record` (the owning Simulator's request log).
    """

    def __init__(self, account_id: str, *, clock: Callable[[], float], record: Callable[[RequestRecord], None]) -> None:
        self.account_id = account_id
        self.page_size: int | None = None
        self._clock = clock
        self._record = record
        self._lock = threading.Lock()
        self._regions: dict[str, HubRegion] = {}
        self._serial = 0
        self._faults = InjectedFaults()

    def enable_hub(self, region: str, generator: str = SECURITY_CONTROL) -> None:
        """Enable Security Hub in a region with this control finding generator (keeping anything it holds)."""
        if generator not in GENERATORS:
            raise ValueError(f"not a control finding generator: {generator!r}")
        with self._lock:
            hub = self._regions.setdefault(region, HubRegion(generator))
            hub.generator = generator

    def enable_standard(self, region: str, standard_id: str, status: str = "READY") -> None:
        """Subscribe the region's hub to a standard of the catalogue (STANDARDS), with this subscription status."""
        if standard_id not in STANDARDS:
            raise ValueError(f"not a standard of the simulator's catalogue: {standard_id!r}")
        with self._lock:
            self._regions[region].subscriptions[standard_id] = status

    def disable_standard(self, region: str, standard_id: str) -> None:
        with self._lock:
            del self._regions[region].subscriptions[standard_id]

    def add_control(
        self, region: str, control_id: str, standards: Mapping[str, bool], *, severity: str = "MEDIUM", title: str = ""
    ) -> None:
        """Add (or replace) a control, enabled (True) or disabled in each of the standards named."""
        control = Control(
            control_id=control_id, title=title or f"Control {control_id}", severity=severity, standards=dict(standards)
        )
        with self._lock:
            self._regions[region].controls[control_id] = control

    def add_findings(self, region: str, findings: FindingSet) -> None:
        """Add a set of alike findings to a region (see FindingSet for what may be left to the control)."""
        with self._lock:
            self._serial += 1
            self._regions[region].findings.append(replace(findings, serial=self._serial))

    def clear_findings(self, region: str) -> None:
        with self._lock:
            self._regions[region].findings.clear()

    def _set_drift(self, region: str, drift: Callable[[float], Sequence[FindingSet]]) -> None:
        with self._lock:
            self._regions[region].drift = drift

    def add_fault(self, fault: Fault) -> None:
        """Inject a fault into the Security Hub requests it matches (its operation and `standard`, None meaning any),
        as `Simulator.add_fault` does, with Security Hub's error codes: throttling answers LimitExceededException."""
        if fault.assessment_id is not None or fault.conformance_pack is not None:
            raise ValueError("Security Hub requests name no assessment or conformance pack")
        if fault.kind == "error" and fault.code not in SECURITYHUB_ERROR_STATUS:
            raise ValueError(f"{fault.code} is not a Security Hub error code")
        with self._lock:
            self._faults.add(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _answer(
        self, method: str, target: str, body: bytes, authorization: str, arrived: float
    ) -> tuple[Answer, float]:
        """Decide and record the answer to a request; returns it with the extra delay its faults ask for."""
        access_key, region = credential_scope(authorization, _DEFAULT_REGION)
        parts = urlsplit(target)
        query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        operation, subject = _route(method, unquote(parts.path))
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = None
        standard = standard_named(subject or query.get("StandardsArn") or "")
        with self._lock:
            answer, delay = self._faults.decide(
                lambda fault: fault.matches(operation, None) and fault.standard in (None, standard),
                region,
                lambda fault, window: _fault_answer(fault, window, arrived),
            )
            if answer is None:
                answer = self._operation(operation, region, subject, query, request)
        self._record(RequestRecord(arrived, region, operation, None, answer.status, access_key, None))
        return answer, delay

    def _operation(
        self, operation: str, region: str, subject: str | None, query: dict[str, str], request: object
    ) -> Answer:
        try:
            if operation == UNKNOWN_SECURITYHUB_OPERATION:
                raise HubError("InvalidInputException", "no such operation")
            if not isinstance(request, dict):
                raise HubError("InvalidInputException", "the body is not a JSON object")
            hub = self._regions.get(region)
            if hub is None:
                raise HubError(
                    "InvalidAccessException", f"Account {self.account_id} is not subscribed to AWS Security Hub"
                )
            call = Call(
                account_id=self.account_id,
                region=region,
                hub=hub,
                query=query,
                request=request,
                subject=subject or "",
                page_size=self.page_size,
                now=self._clock(),
            )
            return Answer(200, OPERATIONS[operation](call))
        except HubError as error:
            return error.answer


def _route(method: str, path: str) -> tuple[str, str | None]:
    """The operation a request calls, and the subscription ARN that DescribeStandardsControls names."""
    routes = {
        ("GET", "/accounts"): "DescribeHub",
        ("POST", "/standards/get"): "GetEnabledStandards",
        ("GET", "/standards"): "DescribeStandards",
        ("GET", "/securityControls/definitions"): "ListSecurityControlDefinitions",
        ("POST", "/associations/batchGet"): "BatchGetStandardsControlAssociations",
        ("POST", "/findings"): "GetFindings",
    }
    if method == "GET" and path.startswith("/standards/controls/"):
        return "DescribeStandardsControls", path.removeprefix("/standards/controls/")
    return routes.get((method, path), UNKNOWN_SECURITYHUB_OPERATION), None


def _fault_answer(fault: Fault, window: deque[float], arrived: float) -> Answer | None:
    if fault.kind == "throttle_above_rate":
        return (
            None if admits(fault.rate, window, arrived) else hub_error_answer("LimitExceededException", "Rate exceeded")
        )
    if fault.kind == "error":
        return hub_error_answer(fault.code, fault.message)
    if fault.kind == "reset":
        return Answer(200, json.dumps({"Findings": [{"Id": "x"}] * 8}).encode(), reset=True)
    if fault.kind == "body":
        return Answer(200, fault.body)
    return Answer(200, {"malformed_json": b'{"Findings": [', "empty_body": b"", "no_insights": b"{}"}[fault.kind])
