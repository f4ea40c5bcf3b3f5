"""AWS Config's conformance packs in AWS Config's JSON 1.1 protocol (POST / naming the operation in X-Amz-Target),
answered on the Audit Manager simulator's endpoint as `Simulator.awsconfig`.

Each region holds its packs and its configuration aggregators; an aggregator holds the rules' compliance types of
packs of any source account and region, as DescribeAggregateComplianceByConformancePacks counts them. A pack holds
its rules' compliance types and, unless set, a score computed from them.
Compliance types and scores are strings, as on the wire, so that tests can store malformed ones.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from exporter.simulator.faults import Fault, InjectedFaults, admits
from exporter.simulator.model import RequestRecord
from exporter.simulator.wire import (
    CONFIG_ERROR_STATUS,
    JSON_1_1,
    Answer,
    config_error_answer,
    credential_scope,
    encode,
    offset_token,
    token_offset,
)

TARGET_PREFIX = "StarlingDoveService."
COMPLIANCE_TYPES = ("COMPLIANT", "NON_COMPLIANT", "INSUFFICIENT_DATA")
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
UNKNOWN_CONFIG_OPERATION = "UnknownConfigOperation"
# The largest Limit of each operation, as botocore's model declares it; also its page size when Limit is 0.
MAX_LIMIT = {
    "ListConformancePackComplianceScores": 20,
    "DescribeConformancePackCompliance": 1000,
    "DescribeConformancePacks": 20,
    "DescribeAggregateComplianceByConformancePacks": 100,
}
_DEFAULT_REGION = "us-east-1"
_PACK_NAME = re.compile(r"[a-zA-Z][-a-zA-Z0-9]*")
_AGGREGATOR_NAME = re.compile(r"[\w\-]{1,256}", re.ASCII)
_T = TypeVar("_T")

# The demo's drifting packs: their rules' compliance types at a time, and when they were last evaluated.
RulesAt = Callable[[float], tuple[Mapping[str, str], datetime]]
# An aggregator's packs: (source account, source region, pack) to the pack's rules' compliance types, fixed or
# drifting (the demo's aggregator mirrors its drifting packs).
_Aggregate = dict[tuple[str, str, str], Mapping[str, str] | RulesAt]


class _ConfigError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.answer = config_error_answer(code, message)


@dataclass
class _Pack:
    name: str
    pack_id: str
    rules: dict[str, str]
    score: str | None
    updated: datetime
    drift: RulesAt | None = None

    def current(self, now: float) -> tuple[Mapping[str, str], str, datetime]:
        """The rules' compliance types, the score and when they were last evaluated, at `now`."""
        rules: Mapping[str, str] = self.rules
        updated = self.updated
        if self.drift is not None:
            rules, updated = self.drift(now)
        return rules, computed_score(rules) if self.score is None else self.score, updated


def computed_score(rules: Mapping[str, str]) -> str:
    """The score a pack answers unless one is set: the percentage of its evaluated rules that are COMPLIANT, or
    INSUFFICIENT_DATA when none is evaluated (AWS weighs rule-resource pairs; rules are enough for a stand-in)."""
    evaluated = [compliance for compliance in rules.values() if compliance != INSUFFICIENT_DATA]
    if not evaluated:
        return INSUFFICIENT_DATA
    return str(round(100 * evaluated.count("COMPLIANT") / len(evaluated), 2))


class AwsConfig:
    """One account's AWS Config conformance packs, per region.

    `page_size` caps every page below the operation's own maximum (None: no cap), so that tests can make the
    exporter page. Requests are recorded through `record` (the owning Simulator's request log).
    """

    def __init__(self, account_id: str, *, clock: Callable[[], float], record: Callable[[RequestRecord], None]) -> None:
        self.account_id = account_id
        self.page_size: int | None = None
        self._clock = clock
        self._record = record
        self._lock = threading.Lock()
        self._regions: dict[str, dict[str, _Pack]] = {}
        self._aggregators: dict[str, dict[str, _Aggregate]] = {}
        self._faults = InjectedFaults()

    def add_conformance_pack(
        self, region: str, name: str, rules: Mapping[str, str] | None = None, *, score: str | None = None
    ) -> None:
        """Add (or replace, keeping its place in listings) a pack whose rules have these compliance types.

        `score` fixes ListConformancePackComplianceScores's answer for the pack (any string, malformed ones too);
        None computes it from the rules.
        """
        if not _PACK_NAME.fullmatch(name):
            raise ValueError(f"not a conformance pack name: {name!r}")
        digest = hashlib.sha256(f"{region}/{name}".encode()).hexdigest()[:6]
        pack = _Pack(name, f"conformance-pack-{digest}", dict(rules or {}), score, self._now())
        with self._lock:
            self._regions.setdefault(region, {})[name] = pack

    def set_rules(self, region: str, name: str, rules: Mapping[str, str]) -> None:
        """Replace a pack's rules (ending any demo drift); they count as evaluated now."""
        updated = self._now()
        with self._lock:
            pack = self._regions[region][name]
            pack.rules, pack.updated, pack.drift = dict(rules), updated, None

    def set_score(self, region: str, name: str, score: str | None) -> None:
        """Fix the pack's score (any string), or with None compute it from its rules again."""
        updated = self._now()
        with self._lock:
            pack = self._regions[region][name]
            pack.score, pack.updated = score, updated

    def remove_conformance_pack(self, region: str, name: str) -> None:
        """Delete a pack; requests naming it get NoSuchConformancePackException."""
        with self._lock:
            del self._regions[region][name]

    def set_aggregate_pack(
        self, region: str, aggregator: str, source: tuple[str, str, str], rules: Mapping[str, str]
    ) -> None:
        """Add (or replace) in the region's aggregator, created if new, the pack `source` (account, region, name)
        whose rules have these compliance types."""
        with self._lock:
            self._aggregators.setdefault(region, {}).setdefault(aggregator, {})[source] = dict(rules)

    def _set_aggregate_drift(self, region: str, aggregator: str, source: tuple[str, str, str], drift: RulesAt) -> None:
        """As set_aggregate_pack, with rules that drift as the demo's packs do."""
        with self._lock:
            self._aggregators.setdefault(region, {}).setdefault(aggregator, {})[source] = drift

    def remove_aggregator(self, region: str, aggregator: str) -> None:
        """Delete an aggregator; requests naming it get NoSuchConfigurationAggregatorException."""
        with self._lock:
            del self._aggregators[region][aggregator]

    def conformance_pack_names(self, region: str) -> list[str]:
        """The names of a region's packs, in listing order."""
        with self._lock:
            return list(self._regions.get(region, {}))

    def add_fault(self, fault: Fault) -> None:
        """Inject a fault into the AWS Config requests it matches (its operation and `conformance_pack`, None
        meaning any), as `Simulator.add_fault` does for Audit Manager's, with AWS Config's error codes: errors
        and throttling answer in AWS Config's JSON 1.1 form, "no_insights" answers `{}` and "body" its bytes."""
        if fault.assessment_id is not None:
            raise ValueError("AWS Config requests name no assessment")
        if fault.kind == "error" and fault.code not in CONFIG_ERROR_STATUS:
            raise ValueError(f"{fault.code} is not an AWS Config error code")
        with self._lock:
            self._faults.add(fault)

    def clear_faults(self) -> None:
        """Remove every AWS Config fault."""
        with self._lock:
            self._faults.clear()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _set_drift(self, region: str, name: str, drift: RulesAt) -> None:
        with self._lock:
            self._regions[region][name].drift = drift

    def _answer(self, amz_target: str, body: bytes, authorization: str, arrived: float) -> tuple[Answer, float]:
        """Decide and record the answer to a request; returns it with the extra delay its faults ask for."""
        access_key, region = credential_scope(authorization, _DEFAULT_REGION)
        operation = amz_target.removeprefix(TARGET_PREFIX)
        if not amz_target.startswith(TARGET_PREFIX) or operation not in MAX_LIMIT:
            operation = UNKNOWN_CONFIG_OPERATION
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = None
        pack_name = request.get("ConformancePackName") if isinstance(request, dict) else None
        pack = pack_name if isinstance(pack_name, str) else None
        with self._lock:
            answer, delay = self._faults.decide(
                lambda fault: fault.matches(operation, None, pack),
                region,
                lambda fault, window: _fault_answer(fault, window, arrived),
            )
            if answer is None:
                answer = self._operation(operation, region, request)
        self._record(RequestRecord(arrived, region, operation, None, answer.status, access_key, pack))
        return answer, delay

    def _operation(self, operation: str, region: str, request: object) -> Answer:
        packs = self._regions.get(region, {})
        now = self._clock()
        try:
            if operation == UNKNOWN_CONFIG_OPERATION:
                raise _ConfigError("UnknownOperationException", "no such operation")
            if not isinstance(request, dict):
                raise _ConfigError("SerializationException", "the body is not a JSON object")
            if operation == "ListConformancePackComplianceScores":
                payload = self._scores(packs, request, now)
            elif operation == "DescribeConformancePackCompliance":
                payload = self._compliance(packs, request, now)
            elif operation == "DescribeAggregateComplianceByConformancePacks":
                payload = self._aggregate(self._aggregators.get(region, {}), request, now)
            else:
                payload = self._details(region, packs, request)
            return Answer(200, payload, content_type=JSON_1_1)
        except _ConfigError as error:
            return error.answer

    def _scores(self, packs: dict[str, _Pack], request: dict[str, Any], now: float) -> dict[str, Any]:
        names = _strings(_filters(request).get("ConformancePackNames"), "ConformancePackNames", 1, 25)
        matching = [p for p in packs.values() if names is None or p.name in names]
        page, token = self._page(matching, request, "ListConformancePackComplianceScores")
        scores = []
        for pack in page:
            _, score, updated = pack.current(now)
            scores.append({"Score": score, "ConformancePackName": pack.name, "LastUpdatedTime": updated.timestamp()})
        return _with_token({"ConformancePackComplianceScores": scores}, token)

    def _compliance(self, packs: dict[str, _Pack], request: dict[str, Any], now: float) -> dict[str, Any]:
        name = request.get("ConformancePackName")
        if not isinstance(name, str) or not _PACK_NAME.fullmatch(name):
            raise _ConfigError("ValidationException", "ConformancePackName must match [a-zA-Z][-a-zA-Z0-9]*")
        pack = packs.get(name)
        if pack is None:
            raise _ConfigError("NoSuchConformancePackException", f"Cannot find conformance pack with name {name}.")
        filters = _filters(request)
        rules, _, _ = pack.current(now)
        wanted = _strings(filters.get("ConfigRuleNames"), "ConfigRuleNames", 0, 10)
        if wanted is not None and (missing := [rule for rule in wanted if rule not in rules]):
            raise _ConfigError("NoSuchConfigRuleInConformancePackException", f"{missing[0]} is not in {name}.")
        compliance = filters.get("ComplianceType")
        if compliance is not None and compliance not in COMPLIANCE_TYPES:
            raise _ConfigError("InvalidParameterValueException", f"invalid ComplianceType {compliance!r}")
        matching = [
            (rule, kind)
            for rule, kind in rules.items()
            if (wanted is None or rule in wanted) and compliance in (None, kind)
        ]
        page, token = self._page(matching, request, "DescribeConformancePackCompliance")
        items = [{"ConfigRuleName": rule, "ComplianceType": kind, "Controls": []} for rule, kind in page]
        return _with_token({"ConformancePackName": name, "ConformancePackRuleComplianceList": items}, token)

    def _aggregate(self, aggregators: dict[str, _Aggregate], request: dict[str, Any], now: float) -> dict[str, Any]:
        name = request.get("ConfigurationAggregatorName")
        if not isinstance(name, str) or not _AGGREGATOR_NAME.fullmatch(name):
            raise _ConfigError("ValidationException", "ConfigurationAggregatorName must match [\\w\\-]+")
        aggregate = aggregators.get(name)
        if aggregate is None:
            raise _ConfigError(
                "NoSuchConfigurationAggregatorException", f"The configuration aggregator {name} does not exist."
            )
        page, token = self._page(list(aggregate.items()), request, "DescribeAggregateComplianceByConformancePacks")
        items = []
        for (account_id, region, pack), rules in page:
            kinds = list((rules(now)[0] if callable(rules) else rules).values())
            compliant, noncompliant = kinds.count("COMPLIANT"), kinds.count("NON_COMPLIANT")
            overall = "NON_COMPLIANT" if noncompliant else "COMPLIANT" if compliant else INSUFFICIENT_DATA
            compliance = {
                "ComplianceType": overall,
                "CompliantRuleCount": compliant,
                "NonCompliantRuleCount": noncompliant,
                "TotalRuleCount": len(kinds),
            }
            items.append(
                {"ConformancePackName": pack, "Compliance": compliance, "AccountId": account_id, "AwsRegion": region}
            )
        return _with_token({"AggregateComplianceByConformancePacks": items}, token)

    def _details(self, region: str, packs: dict[str, _Pack], request: dict[str, Any]) -> dict[str, Any]:
        names = _strings(request.get("ConformancePackNames"), "ConformancePackNames", 0, 25)
        if names and (missing := [name for name in names if name not in packs]):
            raise _ConfigError(
                "NoSuchConformancePackException", f"Cannot find conformance pack with name {missing[0]}."
            )
        matching = [p for p in packs.values() if not names or p.name in names]
        page, token = self._page(matching, request, "DescribeConformancePacks")
        arn = f"arn:aws:config:{region}:{self.account_id}:conformance-pack"
        details = [
            {
                "ConformancePackName": pack.name,
                "ConformancePackArn": f"{arn}/{pack.name}/{pack.pack_id}",
                "ConformancePackId": pack.pack_id,
                "ConformancePackInputParameters": [],
                "LastUpdateRequestedTime": pack.updated.timestamp(),
            }
            for pack in page
        ]
        return _with_token({"ConformancePackDetails": details}, token)

    def _page(self, items: Sequence[_T], request: dict[str, Any], operation: str) -> tuple[Sequence[_T], str | None]:
        maximum = MAX_LIMIT[operation]
        limit = request.get("Limit", 0)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= maximum:
            raise _ConfigError("InvalidLimitException", f"Limit must be between 0 and {maximum}")
        size = min(limit or maximum, self.page_size or maximum)
        token = request.get("NextToken")
        start = 0 if token is None else token_offset(token) if isinstance(token, str) else -1
        if not 0 <= start <= len(items):
            raise _ConfigError("InvalidNextTokenException", "The nextToken provided is invalid")
        end = start + size
        return items[start:end], offset_token(end) if end < len(items) else None


def _filters(request: dict[str, Any]) -> dict[str, Any]:
    filters = request.get("Filters", {})
    if not isinstance(filters, dict):
        raise _ConfigError("ValidationException", "Filters must be an object")
    return filters


def _strings(value: object, key: str, least: int, most: int) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not least <= len(value) <= most or not all(isinstance(v, str) for v in value):
        raise _ConfigError("ValidationException", f"{key} must be a list of {least} to {most} names")
    return value


def _with_token(payload: dict[str, Any], token: str | None) -> dict[str, Any]:
    return payload if token is None else payload | {"NextToken": token}


def _fault_answer(fault: Fault, window: deque[float], arrived: float) -> Answer | None:
    if fault.kind == "throttle_above_rate":
        return (
            None if admits(fault.rate, window, arrived) else config_error_answer("ThrottlingException", "Rate exceeded")
        )
    if fault.kind == "error":
        return config_error_answer(fault.code, "injected fault")
    if fault.kind == "reset":
        scores = [{"ConformancePackName": f"Pack-{n}", "Score": "100.0"} for n in range(4)]
        return Answer(200, encode({"ConformancePackComplianceScores": scores}), reset=True, content_type=JSON_1_1)
    if fault.kind == "body":
        return Answer(200, fault.body, content_type=JSON_1_1)
    body = {"malformed_json": b'{"ConformancePackComplianceScores": [', "empty_body": b"", "no_insights": b"{}"}
    return Answer(200, body[fault.kind], content_type=JSON_1_1)
