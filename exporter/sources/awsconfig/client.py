"""The AWS Config client of one target: conformance-pack scores, rule compliance and packs as validated plain data.

It shares `ServiceClient`'s rate limiting, counting, error mapping and model check (exporter.answers: types,
required fields, lengths) with the Audit Manager client, under limits of its own: AWS throttles AWS Config apart from
Audit Manager. On top of the model, a score must be a percentage, a compliance type one of the three, and no pack
or rule may come twice; an answer that breaks any of it raises `AwsError(MalformedResponse)` and is never published
as a number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from exporter.answers import AnswerRules
from exporter.aws.client import ServiceClient, pages
from exporter.aws.errors import AnswerError
from exporter.config import REGION_PATTERN
from exporter.conformance import (
    COMPLIANCE_TYPES,
    INSUFFICIENT_DATA,
    AggregatePackCompliance,
    PackMeta,
    PackScore,
    RuleCompliance,
)

# AWS Config became generally available on 12 November 2014: no timestamp in its answers is older.
CONFIG_ANSWERS = AnswerRules(launched=datetime(2014, 11, 12, tzinfo=UTC))
# The largest page each operation allows (botocore's model).
SCORES_PAGE_SIZE = 20
RULES_PAGE_SIZE = 1000
PACKS_PAGE_SIZE = 20
AGGREGATE_PAGE_SIZE = 100

_PACK_NAME = re.compile(r"[a-zA-Z][-a-zA-Z0-9]{0,255}")
# AWS sends a score as a decimal string ("87.5"); exponents, signs, spaces, NaN and infinities are malformed.
_SCORE = re.compile(r"\d{1,3}(\.\d+)?")
_ACCOUNT_ID = re.compile(r"\d{12}")
_PACK_ARN = re.compile(r"arn:aws[-a-z]*:config:[a-z0-9-]+:(\d{12}):conformance-pack/.+")
_T = TypeVar("_T")


class ConformancePackClient(ServiceClient):
    """AWS Config's conformance-pack calls for one target."""

    SERVICE = "config"
    ANSWERS = CONFIG_ANSWERS

    def compliance_scores(self) -> tuple[PackScore, ...]:
        """ListConformancePackComplianceScores, every page: the score of every pack of the account and region."""
        return self._call(
            "ListConformancePackComplianceScores",
            lambda: pages(
                lambda **paging: self._client.list_conformance_pack_compliance_scores(Limit=SCORES_PAGE_SIZE, **paging),
                "NextToken",
            ),
            lambda answers: _unique(
                (_score(item) for item in _items(answers, "ConformancePackComplianceScores")), lambda s: s.name
            ),
        )

    def rule_compliance(self, pack: str) -> tuple[RuleCompliance, ...]:
        """DescribeConformancePackCompliance, every page: the compliance of each of the pack's rules."""

        def parse(answers: list[dict[str, Any]]) -> tuple[RuleCompliance, ...]:
            for answer in answers:
                if answer.get("ConformancePackName") != pack:
                    raise AnswerError(f"answer for pack {answer.get('ConformancePackName')!r}, not {pack!r}")
            return _unique(
                (_rule(item) for item in _items(answers, "ConformancePackRuleComplianceList")), lambda r: r.rule
            )

        return self._call(
            "DescribeConformancePackCompliance",
            lambda: pages(
                lambda **paging: self._client.describe_conformance_pack_compliance(
                    ConformancePackName=pack, Limit=RULES_PAGE_SIZE, **paging
                ),
                "NextToken",
            ),
            parse,
        )

    def conformance_packs(self) -> tuple[PackMeta, ...]:
        """DescribeConformancePacks, every page: the account and region's packs, with the account their ARN names."""
        return self._call(
            "DescribeConformancePacks",
            lambda: pages(
                lambda **paging: self._client.describe_conformance_packs(Limit=PACKS_PAGE_SIZE, **paging), "NextToken"
            ),
            lambda answers: _unique(
                (_pack(item) for item in _items(answers, "ConformancePackDetails")), lambda p: p.name
            ),
        )

    def aggregate_compliance(self, aggregator: str) -> tuple[AggregatePackCompliance, ...]:
        """DescribeAggregateComplianceByConformancePacks, every page: the rule counts of every pack of every source
        account and region of the configuration aggregator."""
        return self._call(
            "DescribeAggregateComplianceByConformancePacks",
            lambda: pages(
                lambda **paging: self._client.describe_aggregate_compliance_by_conformance_packs(
                    ConfigurationAggregatorName=aggregator, Limit=AGGREGATE_PAGE_SIZE, **paging
                ),
                "NextToken",
            ),
            lambda answers: _unique(
                (_aggregate(item) for item in _items(answers, "AggregateComplianceByConformancePacks")),
                lambda a: f"{a.account_id}/{a.region}/{a.name}",
            ),
        )


def _items(answers: Iterable[dict[str, Any]], key: str) -> Iterator[dict[str, Any]]:
    for answer in answers:
        items = answer.get(key)
        if not isinstance(items, list):
            raise AnswerError(f"{key} is missing or not a list")
        for item in items:
            if not isinstance(item, dict):
                raise AnswerError(f"{key} holds {item!r}")
            yield item


def _unique(items: Iterable[_T], key: Callable[[_T], str]) -> tuple[_T, ...]:
    """The items, in order; a name that comes twice is malformed (it would be counted twice)."""
    seen: set[str] = set()
    result = []
    for item in items:
        name = key(item)
        if name in seen:
            raise AnswerError(f"{name!r} answered twice")
        seen.add(name)
        result.append(item)
    return tuple(result)


def _pack_name(value: object) -> str:
    if not isinstance(value, str) or not _PACK_NAME.fullmatch(value):
        raise AnswerError(f"ConformancePackName={value!r}")
    return value


def _score(item: dict[str, Any]) -> PackScore:
    name = _pack_name(item.get("ConformancePackName"))
    raw = item.get("Score")
    score = None
    if raw is not None and raw != INSUFFICIENT_DATA:
        if not isinstance(raw, str) or not _SCORE.fullmatch(raw) or float(raw) > 100:
            raise AnswerError(f"Score={raw!r} of {name}, not a percentage")
        score = float(raw)
    return PackScore(name, score)


def _rule(item: dict[str, Any]) -> RuleCompliance:
    rule = item.get("ConfigRuleName")
    if not isinstance(rule, str) or not rule.strip() or len(rule) > 128:
        raise AnswerError(f"ConfigRuleName={rule!r}")
    compliance = item.get("ComplianceType")
    if compliance not in COMPLIANCE_TYPES:
        raise AnswerError(f"ComplianceType={compliance!r} of {rule}")
    return RuleCompliance(rule, compliance)


def _pack(item: dict[str, Any]) -> PackMeta:
    name = _pack_name(item.get("ConformancePackName"))
    arn = item.get("ConformancePackArn")
    match = _PACK_ARN.fullmatch(arn) if isinstance(arn, str) else None
    if match is None:
        raise AnswerError(f"ConformancePackArn={arn!r} of {name}")
    return PackMeta(name, match.group(1))


def _aggregate(item: dict[str, Any]) -> AggregatePackCompliance:
    name = _pack_name(item.get("ConformancePackName"))
    account_id, region = item.get("AccountId"), item.get("AwsRegion")
    if not isinstance(account_id, str) or not _ACCOUNT_ID.fullmatch(account_id):
        raise AnswerError(f"AccountId={account_id!r} of {name}")
    if not isinstance(region, str) or not REGION_PATTERN.match(region):
        raise AnswerError(f"AwsRegion={region!r} of {name}")
    compliance = item.get("Compliance")
    if not isinstance(compliance, dict):
        raise AnswerError(f"Compliance={compliance!r} of {name}")
    counts = []
    for key in ("CompliantRuleCount", "NonCompliantRuleCount"):
        count = compliance.get(key)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise AnswerError(f"{key}={count!r} of {name} in {account_id}/{region}")
        counts.append(count)
    return AggregatePackCompliance(account_id, region, name, counts[0], counts[1])
