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
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from exporter.simulator.faults import Fault, admits
from exporter.simulator.model import RequestRecord
from exporter.simulator.securityhub_data import (
    GENERATORS,
    SECURITY_CONTROL,
    STANDARDS,
    Control,
    FindingSet,
    finding_json,
    findings_slice,
    iso,
    matches,
    standard_named,
    standards_arn,
    subscription_arn,
    unsupported_filters,
)
from exporter.simulator.wire import SECURITYHUB_ERROR_STATUS, Answer, credential_scope, offset_token, token_offset

UNKNOWN_SECURITYHUB_OPERATION = "UnknownSecurityHubOperation"
# The largest page of every paged call, also its size when MaxResults is absent.
MAX_RESULTS = 100
_DEFAULT_REGION = "us-east-1"
_SIGNED_FOR_SECURITYHUB = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/,\s]+/securityhub/")
_SUBSCRIBED_AT = 1_700_000_000.0
_T = TypeVar("_T")


class _HubError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.answer = hub_error_answer(code, message)


def hub_error_answer(code: str, message: str) -> Answer:
    """A Security Hub error: the code in the x-amzn-ErrorType header and in the body's `Code`."""
    return Answer(SECURITYHUB_ERROR_STATUS[code], {"Code": code, "Message": message}, code)


def signed_for_securityhub(authorization: str) -> bool:
    """Whether a SigV4 `Authorization` header was signed for Security Hub (whose requests this module answers)."""
    return _SIGNED_FOR_SECURITYHUB.search(authorization) is not None


@dataclass
class _Region:
    generator: str
    subscriptions: dict[str, str] = field(default_factory=dict)
    controls: dict[str, Control] = field(default_factory=dict)
    findings: list[FindingSet] = field(default_factory=list)
    # The demo's findings as a function of the clock, instead of `findings`.
    drift: Callable[[float], Sequence[FindingSet]] | None = None


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
        self._regions: dict[str, _Region] = {}
        self._serial = 0
        self._faults: list[tuple[Fault, dict[str, deque[float]]]] = []

    def enable_hub(self, region: str, generator: str = SECURITY_CONTROL) -> None:
        """Enable Security Hub in a region with this control finding generator (keeping anything it holds)."""
        if generator not in GENERATORS:
            raise ValueError(f"not a control finding generator: {generator!r}")
        with self._lock:
            hub = self._regions.setdefault(region, _Region(generator))
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
            self._faults.append((fault, {}))

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
        delay = 0.0
        with self._lock:
            answer = None
            for fault, windows in self._faults:
                if not fault.matches(operation, None) or fault.standard not in (None, standard):
                    continue
                if fault.kind == "latency":
                    delay += fault.seconds
                elif answer is None:
                    answer = _fault_answer(fault, windows.setdefault(region, deque()), arrived)
            if answer is None:
                answer = self._operation(operation, region, subject, query, request)
        self._record(RequestRecord(arrived, region, operation, None, answer.status, access_key, None))
        return answer, delay

    def _operation(
        self, operation: str, region: str, subject: str | None, query: dict[str, str], request: object
    ) -> Answer:
        try:
            if operation == UNKNOWN_SECURITYHUB_OPERATION:
                raise _HubError("InvalidInputException", "no such operation")
            if not isinstance(request, dict):
                raise _HubError("InvalidInputException", "the body is not a JSON object")
            hub = self._regions.get(region)
            if hub is None:
                raise _HubError(
                    "InvalidAccessException", f"Account {self.account_id} is not subscribed to AWS Security Hub"
                )
            handlers: dict[str, Callable[[], dict[str, Any]]] = {
                "DescribeHub": lambda: self._hub(region, hub),
                "GetEnabledStandards": lambda: self._subscriptions(region, hub, request),
                "DescribeStandards": lambda: self._standards(region, query),
                "DescribeStandardsControls": lambda: self._standards_controls(region, hub, subject or "", query),
                "ListSecurityControlDefinitions": lambda: self._definitions(region, hub, query),
                "BatchGetStandardsControlAssociations": lambda: self._associations(region, hub, request),
                "GetFindings": lambda: self._findings(region, hub, request),
            }
            return Answer(200, handlers[operation]())
        except _HubError as error:
            return error.answer

    def _hub(self, region: str, hub: _Region) -> dict[str, Any]:
        return {
            "HubArn": f"arn:aws:securityhub:{region}:{self.account_id}:hub/default",
            "SubscribedAt": iso(_SUBSCRIBED_AT),
            "AutoEnableControls": True,
            "ControlFindingGenerator": hub.generator,
        }

    def _subscriptions(self, region: str, hub: _Region, request: dict[str, Any]) -> dict[str, Any]:
        page, token = _page(
            list(hub.subscriptions.items()), request.get("MaxResults"), request.get("NextToken"), self.page_size
        )
        items = [
            {
                "StandardsSubscriptionArn": subscription_arn(standard, region, self.account_id),
                "StandardsArn": standards_arn(standard, region),
                "StandardsInput": {},
                "StandardsStatus": status,
                "StandardsControlsUpdatable": "READY_FOR_UPDATES",
            }
            for standard, status in page
        ]
        return _with_token({"StandardsSubscriptions": items}, token)

    def _standards(self, region: str, query: dict[str, str]) -> dict[str, Any]:
        page, token = _page(
            list(STANDARDS.items()), _number(query.get("MaxResults")), query.get("NextToken"), self.page_size
        )
        items = [
            {
                "StandardsArn": arn.format(region=region),
                "Name": name,
                "Description": f"The {name} standard.",
                "EnabledByDefault": "foundational" in arn,
                "StandardsManagedBy": {"Company": "AWS", "Product": "Security Hub"},
            }
            for _, (name, arn) in page
        ]
        return _with_token({"Standards": items}, token)

    def _standards_controls(self, region: str, hub: _Region, arn: str, query: dict[str, str]) -> dict[str, Any]:
        standard = standard_named(arn)
        if (
            standard is None
            or standard not in hub.subscriptions
            or arn != subscription_arn(standard, region, self.account_id)
        ):
            raise _HubError("ResourceNotFoundException", f"Subscription {arn} not found")
        controls = [c for c in hub.controls.values() if standard in c.standards]
        page, token = _page(controls, _number(query.get("MaxResults")), query.get("NextToken"), self.page_size)
        items: list[dict[str, Any]] = []
        for control in page:
            item: dict[str, Any] = {
                "StandardsControlArn": f"{arn.replace(':subscription/', ':control/')}/{control.control_id}",
                "ControlStatus": "ENABLED" if control.standards[standard] else "DISABLED",
                "ControlStatusUpdatedAt": iso(_SUBSCRIBED_AT),
                "ControlId": control.control_id,
                "Title": control.title,
                "Description": f"This control checks: {control.title.lower()}.",
                "SeverityRating": control.severity,
                "RelatedRequirements": [],
            }
            if not control.standards[standard]:
                item["DisabledReason"] = "Disabled by the simulator"
            items.append(item)
        return _with_token({"Controls": items}, token)

    def _definitions(self, region: str, hub: _Region, query: dict[str, str]) -> dict[str, Any]:
        arn = query.get("StandardsArn")
        standard = standard_named(arn or "")
        if arn is not None and (standard is None or arn != standards_arn(standard, region)):
            raise _HubError("InvalidInputException", f"invalid StandardsArn {arn}")
        controls = [c for c in hub.controls.values() if standard is None or standard in c.standards]
        page, token = _page(controls, _number(query.get("MaxResults")), query.get("NextToken"), self.page_size)
        items = [
            {
                "SecurityControlId": control.control_id,
                "Title": control.title,
                "Description": f"This control checks: {control.title.lower()}.",
                "RemediationUrl": f"https://docs.aws.amazon.com/console/securityhub/{control.control_id}/remediation",
                "SeverityRating": control.severity,
                "CurrentRegionAvailability": "AVAILABLE",
            }
            for control in page
        ]
        return _with_token({"SecurityControlDefinitions": items}, token)

    def _associations(self, region: str, hub: _Region, request: dict[str, Any]) -> dict[str, Any]:
        ids = request.get("StandardsControlAssociationIds")
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_RESULTS:
            raise _HubError("InvalidInputException", f"StandardsControlAssociationIds must hold 1 to {MAX_RESULTS}")
        details, unprocessed = [], []
        for item in ids:
            control = hub.controls.get(item.get("SecurityControlId", ""))
            standard = standard_named(item.get("StandardsArn", ""))
            if control is None or standard is None or standard not in control.standards:
                unprocessed.append({"StandardsControlAssociationId": item, "ErrorCode": "NOT_FOUND"})
                continue
            details.append(
                {
                    "StandardsArn": item["StandardsArn"],
                    "SecurityControlId": control.control_id,
                    "SecurityControlArn": f"arn:aws:securityhub:{region}:{self.account_id}:security-control/"
                    f"{control.control_id}",
                    "AssociationStatus": "ENABLED" if control.standards[standard] else "DISABLED",
                    "UpdatedAt": iso(_SUBSCRIBED_AT),
                    "StandardsControlTitle": control.title,
                }
            )
        return {"StandardsControlAssociationDetails": details, "UnprocessedAssociations": unprocessed}

    def _findings(self, region: str, hub: _Region, request: dict[str, Any]) -> dict[str, Any]:
        filters = request.get("Filters") or {}
        if not isinstance(filters, dict) or (unsupported := unsupported_filters(filters)):
            raise _HubError("InvalidInputException", f"the simulator does not apply the filters {unsupported}")
        legacy = hub.generator != SECURITY_CONTROL
        sets: list[tuple[FindingSet, int]] = []
        for finding_set in hub.findings if hub.drift is None else hub.drift(self._clock()):
            if matches(filters, finding_set.fields(self.account_id, region)):
                standards = self._standards_of(hub, finding_set)
                sets.append((finding_set, finding_set.count * (len(standards) if legacy else 1)))
        total = sum(size for _, size in sets)
        size = _page_size(request.get("MaxResults"), self.page_size)
        start = _start(request.get("NextToken"), total)
        findings = []
        for finding_set, index, standard in findings_slice(
            sets, start, size, lambda s: self._standards_of(hub, s), legacy
        ):
            findings.append(
                finding_json(
                    finding_set,
                    index,
                    standard,
                    control=hub.controls.get(finding_set.control_id),
                    account_id=self.account_id,
                    region=region,
                    subscription_account=self.account_id,
                    updated=self._clock(),
                )
            )
        end = start + size
        return _with_token({"Findings": findings}, offset_token(end) if end < total else None)

    @staticmethod
    def _standards_of(hub: _Region, finding_set: FindingSet) -> tuple[str, ...]:
        if finding_set.standards is not None:
            return finding_set.standards
        control = hub.controls.get(finding_set.control_id)
        return tuple(control.standards) if control else ()


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


def _number(value: str | None) -> object:
    try:
        return None if value is None else int(value)
    except ValueError:
        return value


def _page_size(requested: object, cap: int | None) -> int:
    if requested is None:
        requested = MAX_RESULTS
    if isinstance(requested, bool) or not isinstance(requested, int) or not 1 <= requested <= MAX_RESULTS:
        raise _HubError("InvalidInputException", f"MaxResults must be between 1 and {MAX_RESULTS}")
    return min(requested, cap or MAX_RESULTS)


def _start(token: object, total: int) -> int:
    start = 0 if token is None else token_offset(token) if isinstance(token, str) else -1
    if not 0 <= start <= total:
        raise _HubError("InvalidInputException", "The NextToken provided is invalid")
    return start


def _page(items: Sequence[_T], requested: object, token: object, cap: int | None) -> tuple[Sequence[_T], str | None]:
    size = _page_size(requested, cap)
    start = _start(token, len(items))
    end = start + size
    return items[start:end], offset_token(end) if end < len(items) else None


def _with_token(payload: dict[str, Any], token: str | None) -> dict[str, Any]:
    return payload if token is None else payload | {"NextToken": token}


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
