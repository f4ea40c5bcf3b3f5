"""The Security Hub simulator's operations: each answers one request (`Call`) from the region's hub, in Security Hub's
REST-JSON shapes, with its paging and its errors."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from exporter.simulator.securityhub_data import (
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
from exporter.simulator.wire import SECURITYHUB_ERROR_STATUS, Answer, offset_token, token_offset

# The largest page of every paged call, also its size when MaxResults is absent.
MAX_RESULTS = 100
_SUBSCRIBED_AT = 1_700_000_000.0
_T = TypeVar("_T")


class HubError(Exception):
    """A Security Hub error answer, raised by an operation."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.answer = hub_error_answer(code, message)


def hub_error_answer(code: str, message: str) -> Answer:
    """A Security Hub error: the code in the x-amzn-ErrorType header and in the body's `Code`."""
    return Answer(SECURITYHUB_ERROR_STATUS[code], {"Code": code, "Message": message}, code)


@dataclass
class HubRegion:
    """One region's hub: its control finding generator, standards subscriptions, controls and findings."""

    generator: str
    subscriptions: dict[str, str] = field(default_factory=dict)
    controls: dict[str, Control] = field(default_factory=dict)
    findings: list[FindingSet] = field(default_factory=list)
    # The demo's findings as a function of the clock, instead of `findings`.
    drift: Callable[[float], Sequence[FindingSet]] | None = None


@dataclass(frozen=True, kw_only=True)
class Call:
    """One request to answer: the account, region and hub it reaches, its query, body and the subscription ARN of its
    path, the page cap (None: none) and the time."""

    account_id: str
    region: str
    hub: HubRegion
    query: Mapping[str, str]
    request: dict[str, Any]
    subject: str
    page_size: int | None
    now: float


def describe_hub(call: Call) -> dict[str, Any]:
    return {
        "HubArn": f"arn:aws:securityhub:{call.region}:{call.account_id}:hub/default",
        "SubscribedAt": iso(_SUBSCRIBED_AT),
        "AutoEnableControls": True,
        "ControlFindingGenerator": call.hub.generator,
    }


def enabled_standards(call: Call) -> dict[str, Any]:
    page, token = _page(
        list(call.hub.subscriptions.items()),
        call.request.get("MaxResults"),
        call.request.get("NextToken"),
        call.page_size,
    )
    items = [
        {
            "StandardsSubscriptionArn": subscription_arn(standard, call.region, call.account_id),
            "StandardsArn": standards_arn(standard, call.region),
            "StandardsInput": {},
            "StandardsStatus": status,
            "StandardsControlsUpdatable": "READY_FOR_UPDATES",
        }
        for standard, status in page
    ]
    return _with_token({"StandardsSubscriptions": items}, token)


def describe_standards(call: Call) -> dict[str, Any]:
    page, token = _page(
        list(STANDARDS.items()), _number(call.query.get("MaxResults")), call.query.get("NextToken"), call.page_size
    )
    items = [
        {
            "StandardsArn": arn.format(region=call.region),
            "Name": name,
            "Description": f"The {name} standard.",
            "EnabledByDefault": "foundational" in arn,
            "StandardsManagedBy": {"Company": "AWS", "Product": "Security Hub"},
        }
        for _, (name, arn) in page
    ]
    return _with_token({"Standards": items}, token)


def standards_controls(call: Call) -> dict[str, Any]:
    arn = call.subject
    standard = standard_named(arn)
    if (
        standard is None
        or standard not in call.hub.subscriptions
        or arn != subscription_arn(standard, call.region, call.account_id)
    ):
        raise HubError("ResourceNotFoundException", f"Subscription {arn} not found")
    controls = [c for c in call.hub.controls.values() if standard in c.standards]
    page, token = _page(controls, _number(call.query.get("MaxResults")), call.query.get("NextToken"), call.page_size)
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


def control_definitions(call: Call) -> dict[str, Any]:
    arn = call.query.get("StandardsArn")
    standard = standard_named(arn or "")
    if arn is not None and (standard is None or arn != standards_arn(standard, call.region)):
        raise HubError("InvalidInputException", f"invalid StandardsArn {arn}")
    controls = [c for c in call.hub.controls.values() if standard is None or standard in c.standards]
    page, token = _page(controls, _number(call.query.get("MaxResults")), call.query.get("NextToken"), call.page_size)
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


def control_associations(call: Call) -> dict[str, Any]:
    ids = call.request.get("StandardsControlAssociationIds")
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_RESULTS:
        raise HubError("InvalidInputException", f"StandardsControlAssociationIds must hold 1 to {MAX_RESULTS}")
    details, unprocessed = [], []
    for item in ids:
        control = call.hub.controls.get(item.get("SecurityControlId", ""))
        standard = standard_named(item.get("StandardsArn", ""))
        if control is None or standard is None or standard not in control.standards:
            unprocessed.append({"StandardsControlAssociationId": item, "ErrorCode": "NOT_FOUND"})
            continue
        details.append(
            {
                "StandardsArn": item["StandardsArn"],
                "SecurityControlId": control.control_id,
                "SecurityControlArn": f"arn:aws:securityhub:{call.region}:{call.account_id}:security-control/"
                f"{control.control_id}",
                "AssociationStatus": "ENABLED" if control.standards[standard] else "DISABLED",
                "UpdatedAt": iso(_SUBSCRIBED_AT),
                "StandardsControlTitle": control.title,
            }
        )
    return {"StandardsControlAssociationDetails": details, "UnprocessedAssociations": unprocessed}


def findings(call: Call) -> dict[str, Any]:
    hub = call.hub
    filters = call.request.get("Filters") or {}
    if not isinstance(filters, dict) or (unsupported := unsupported_filters(filters)):
        raise HubError("InvalidInputException", f"the simulator does not apply the filters {unsupported}")
    legacy = call.hub.generator != SECURITY_CONTROL
    sets: list[tuple[FindingSet, int]] = []
    for finding_set in hub.findings if hub.drift is None else hub.drift(call.now):
        if matches(filters, finding_set.fields(call.account_id, call.region)):
            standards = _standards_of(hub, finding_set)
            sets.append((finding_set, finding_set.count * (len(standards) if legacy else 1)))
    total = sum(size for _, size in sets)
    size = _page_size(call.request.get("MaxResults"), call.page_size)
    start = _start(call.request.get("NextToken"), total)
    findings = []
    for finding_set, index, standard in findings_slice(sets, start, size, lambda s: _standards_of(hub, s), legacy):
        findings.append(
            finding_json(
                finding_set,
                index,
                standard,
                control=call.hub.controls.get(finding_set.control_id),
                account_id=call.account_id,
                region=call.region,
                subscription_account=call.account_id,
                updated=call.now,
            )
        )
    end = start + size
    return _with_token({"Findings": findings}, offset_token(end) if end < total else None)


def _standards_of(hub: HubRegion, finding_set: FindingSet) -> tuple[str, ...]:
    if finding_set.standards is not None:
        return finding_set.standards
    control = hub.controls.get(finding_set.control_id)
    return tuple(control.standards) if control else ()


def _number(value: str | None) -> object:
    try:
        return None if value is None else int(value)
    except ValueError:
        return value


def _page_size(requested: object, cap: int | None) -> int:
    if requested is None:
        requested = MAX_RESULTS
    if isinstance(requested, bool) or not isinstance(requested, int) or not 1 <= requested <= MAX_RESULTS:
        raise HubError("InvalidInputException", f"MaxResults must be between 1 and {MAX_RESULTS}")
    return min(requested, cap or MAX_RESULTS)


def _start(token: object, total: int) -> int:
    start = 0 if token is None else token_offset(token) if isinstance(token, str) else -1
    if not 0 <= start <= total:
        raise HubError("InvalidInputException", "The NextToken provided is invalid")
    return start


def _page(items: Sequence[_T], requested: object, token: object, cap: int | None) -> tuple[Sequence[_T], str | None]:
    size = _page_size(requested, cap)
    start = _start(token, len(items))
    end = start + size
    return items[start:end], offset_token(end) if end < len(items) else None


def _with_token(payload: dict[str, Any], token: str | None) -> dict[str, Any]:
    return payload if token is None else payload | {"NextToken": token}


OPERATIONS: Mapping[str, Callable[[Call], dict[str, Any]]] = {
    "DescribeHub": describe_hub,
    "GetEnabledStandards": enabled_standards,
    "DescribeStandards": describe_standards,
    "DescribeStandardsControls": standards_controls,
    "ListSecurityControlDefinitions": control_definitions,
    "BatchGetStandardsControlAssociations": control_associations,
    "GetFindings": findings,
}
