"""The Security Hub CSPM client of one target: the hub, its standards and their controls as validated plain data, and
one pass over the account's control findings folded page by page, each operation under its own rate limit.

It shares `ServiceClient`'s counting, error mapping and model check (exporter.answers) with the other services'
clients. AWS's quotas are per operation (GetFindings 3 per second with bursts of 6, the others 10), so each
operation waits for its own token bucket instead of the target's one limiter.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from exporter.answers import AnswerRules
from exporter.aws import (
    MALFORMED,
    AnswerError,
    AwsError,
    RequestRateLimiter,
    ServiceClient,
    SessionFactory,
    default_session,
    pages,
)
from exporter.config import SECURITYHUB_OPERATIONS, Config, Target
from exporter.snapshot import ApiCounters
from exporter.sources.securityhub.score import ControlInfo, standard_id

# Security Hub was announced on 28 November 2018: no timestamp in its answers is older.
SECURITYHUB_ANSWERS = AnswerRules(launched=datetime(2018, 11, 28, tzinfo=UTC))
PAGE_SIZE = 100
BURST_SECONDS = 2.0
"""A bucket holds this many seconds of its rate: AWS allows GetFindings bursts of 6 at 3 per second."""
CONTROL_FINDINGS_FILTERS: Mapping[str, Any] = {
    "RecordState": [{"Value": "ACTIVE", "Comparison": "EQUALS"}],
    "WorkflowStatus": [{"Value": "SUPPRESSED", "Comparison": "NOT_EQUALS"}],
    "ProductName": [{"Value": "Security Hub", "Comparison": "EQUALS"}],
}
SEVERITY_RATINGS = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
_GENERATORS = ("SECURITY_CONTROL", "STANDARD_CONTROL")
_HUB_ARN = re.compile(r"arn:aws[-a-z]*:securityhub:[a-z0-9-]+:(\d{12}):hub/.+")


class TokenBucket:
    """Lets requests start at `rate` per second on average, and up to `burst` at once after a quiet spell: the
    quota model AWS applies to Security Hub's operations."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = max(1.0, burst)
        self._tokens = self._burst
        self._clock = clock
        self._updated = clock()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until a request may start, and take its token."""
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self._rate
            time.sleep(wait)


@dataclass(frozen=True, kw_only=True)
class Hub:
    """DescribeHub: the account its ARN names, and whether control findings are consolidated or legacy."""

    account_id: str
    legacy: bool


@dataclass(frozen=True, kw_only=True)
class Subscription:
    """A standard the hub is subscribed to (GetEnabledStandards)."""

    standard_id: str
    standards_arn: str
    subscription_arn: str
    status: str


class SecurityHubClient(ServiceClient):
    """Security Hub CSPM's read-only calls for one target."""

    SERVICE = "securityhub"
    ANSWERS = SECURITYHUB_ANSWERS

    def __init__(
        self, target: Target, config: Config, counters: ApiCounters, session_factory: SessionFactory = default_session
    ) -> None:
        limits = dict(config.securityhub_rate_limits)
        self._buckets = {
            operation: TokenBucket(rate, rate * BURST_SECONDS)
            for operation in SECURITYHUB_OPERATIONS
            for rate in (limits.get(operation, limits["default"]),)
        }
        super().__init__(target, config, counters, session_factory)
        # Never waited on (its limit is above what the buckets let through): it counts the requests and measures the
        # peak rate for the pipeline, as the target's limiter does for the other clients.
        self._limiter = RequestRateLimiter(sum(rate * (1 + BURST_SECONDS) for rate in limits.values()) * 2 + 1)

    def _before_send(self, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        bucket = self._buckets.get(operation)
        if bucket is not None:
            bucket.acquire()
        self._limiter.acquire()
        self._counters.count_request(operation, self.region)

    def hub(self) -> Hub:
        """DescribeHub."""

        def request() -> dict[str, Any]:
            return self._client.describe_hub()

        return self._call("DescribeHub", request, _hub)

    def subscriptions(self) -> tuple[Subscription, ...]:
        """GetEnabledStandards, every page."""
        return self._call(
            "GetEnabledStandards",
            lambda: pages(
                lambda **paging: self._client.get_enabled_standards(MaxResults=PAGE_SIZE, **paging), "NextToken"
            ),
            lambda answers: tuple(_subscription(item) for item in _items(answers, "StandardsSubscriptions")),
        )

    def standard_names(self) -> Mapping[str, str]:
        """DescribeStandards, every page: each standard's display name by its id."""
        return self._call(
            "DescribeStandards",
            lambda: pages(
                lambda **paging: self._client.describe_standards(MaxResults=PAGE_SIZE, **paging), "NextToken"
            ),
            lambda answers: {
                standard_id(_text(item, "StandardsArn")): _text(item, "Name") for item in _items(answers, "Standards")
            },
        )

    def legacy_controls(self, subscription_arn: str) -> tuple[ControlInfo, ...]:
        """DescribeStandardsControls, every page: the standard's controls, keyed as legacy findings name them (the
        last segment of the StandardsControlArn)."""
        return self._call(
            "DescribeStandardsControls",
            lambda: pages(
                lambda **paging: self._client.describe_standards_controls(
                    StandardsSubscriptionArn=subscription_arn, MaxResults=PAGE_SIZE, **paging
                ),
                "NextToken",
            ),
            lambda answers: tuple(_legacy_control(item) for item in _items(answers, "Controls")),
        )

    def consolidated_controls(self, standards_arn: str) -> tuple[ControlInfo, ...]:
        """ListSecurityControlDefinitions of the standard, every page, then BatchGetStandardsControlAssociations
        (100 at a time) for whether each is enabled in it."""
        definitions = self._call(
            "ListSecurityControlDefinitions",
            lambda: pages(
                lambda **paging: self._client.list_security_control_definitions(
                    StandardsArn=standards_arn, MaxResults=PAGE_SIZE, **paging
                ),
                "NextToken",
            ),
            lambda answers: {
                _text(item, "SecurityControlId"): _severity(item)
                for item in _items(answers, "SecurityControlDefinitions")
            },
        )
        enabled: dict[str, bool] = {}
        ids = list(definitions)
        for start in range(0, len(ids), PAGE_SIZE):
            enabled |= self._associations(standards_arn, ids[start : start + PAGE_SIZE])
        missing = [control for control in ids if control not in enabled]
        if missing:
            raise AwsError(MALFORMED, f"no association of {missing[0]} with {standards_arn}")
        return tuple(
            ControlInfo(key=control, control_id=control, severity=severity, enabled=enabled[control])
            for control, severity in definitions.items()
        )

    def _associations(self, standards_arn: str, controls: list[str]) -> dict[str, bool]:
        """BatchGetStandardsControlAssociations: whether each control is enabled in the standard."""
        batch = [{"SecurityControlId": control, "StandardsArn": standards_arn} for control in controls]
        return self._call(
            "BatchGetStandardsControlAssociations",
            lambda: self._client.batch_get_standards_control_associations(StandardsControlAssociationIds=batch),
            _associations,
        )

    def fold_findings(self, account_id: str, fold: Callable[[list[Any]], None]) -> int:
        """GetFindings, every page of the account's active, unsuppressed Security Hub control findings in this
        region, each page handed to `fold` as it arrives and then dropped; returns how many pages it read."""
        filters = {
            **CONTROL_FINDINGS_FILTERS,
            "AwsAccountId": [{"Value": account_id, "Comparison": "EQUALS"}],
            "Region": [{"Value": self.region, "Comparison": "EQUALS"}],
        }

        def every_page() -> int:
            return _fold_pages(
                lambda **paging: self._client.get_findings(Filters=filters, MaxResults=PAGE_SIZE, **paging), fold
            )

        return self._call("GetFindings", every_page, lambda count: count)


def _fold_pages(request: Callable[..., dict[str, Any]], fold: Callable[[list[Any]], None]) -> int:
    """Every page of GetFindings (`request()`, then `request(NextToken=...)`), each page's findings handed to `fold`
    before the next page is asked for; how many pages. A token that repeats is a malformed answer, not a loop."""
    seen: set[str] = set()
    paging: dict[str, str] = {}
    count = 0
    while True:
        page = request(**paging)
        count += 1
        findings = page.get("Findings")
        if not isinstance(findings, list):
            raise AwsError(MALFORMED, "Findings is missing or not a list")
        fold(findings)
        token = page.get("NextToken")
        if not token:
            return count
        if token in seen:
            raise AwsError(MALFORMED, f"NextToken {token!r} repeats")
        seen.add(token)
        paging = {"NextToken": token}


def _items(answers: Iterable[dict[str, Any]], key: str) -> Iterator[dict[str, Any]]:
    for answer in answers:
        items = answer.get(key)
        if not isinstance(items, list):
            raise AnswerError(f"{key} is missing or not a list")
        yield from items


def _text(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise AnswerError(f"{key}={value!r}")
    return value


def _severity(item: dict[str, Any]) -> str:
    severity = item.get("SeverityRating")
    if severity not in SEVERITY_RATINGS:
        raise AnswerError(f"SeverityRating={severity!r} of {item.get('SecurityControlId') or item.get('ControlId')}")
    return severity


def _hub(answer: dict[str, Any]) -> Hub:
    arn = _text(answer, "HubArn")
    match = _HUB_ARN.fullmatch(arn)
    if match is None:
        raise AnswerError(f"HubArn={arn!r}")
    generator = answer.get("ControlFindingGenerator")
    if generator not in _GENERATORS:
        raise AnswerError(f"ControlFindingGenerator={generator!r}")
    return Hub(account_id=match.group(1), legacy=generator == "STANDARD_CONTROL")


def _subscription(item: dict[str, Any]) -> Subscription:
    arn = _text(item, "StandardsArn")
    return Subscription(
        standard_id=standard_id(arn),
        standards_arn=arn,
        subscription_arn=_text(item, "StandardsSubscriptionArn"),
        status=_text(item, "StandardsStatus"),
    )


def _legacy_control(item: dict[str, Any]) -> ControlInfo:
    status = item.get("ControlStatus")
    if status not in ("ENABLED", "DISABLED"):
        raise AnswerError(f"ControlStatus={status!r} of {item.get('ControlId')}")
    return ControlInfo(
        key=_text(item, "StandardsControlArn").rsplit("/", 1)[-1],
        control_id=_text(item, "ControlId"),
        severity=_severity(item),
        enabled=status == "ENABLED",
    )


def _associations(answer: dict[str, Any]) -> dict[str, bool]:
    unprocessed = answer.get("UnprocessedAssociations") or []
    if unprocessed:
        first = unprocessed[0]
        raise AnswerError(f"association not processed: {first.get('ErrorCode')} {first.get('ErrorReason') or ''}")
    enabled = {}
    for item in _items([answer], "StandardsControlAssociationDetails"):
        status = item.get("AssociationStatus")
        if status not in ("ENABLED", "DISABLED"):
            raise AnswerError(f"AssociationStatus={status!r} of {item.get('SecurityControlId')}")
        enabled[_text(item, "SecurityControlId")] = status == "ENABLED"
    return enabled
