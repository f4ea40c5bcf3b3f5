"""The AWS Config client of one target: conformance-pack scores, rule compliance and packs as validated plain data.

It is rate-limited, counted and maps errors as the Audit Manager client does, under limits of its own: AWS
throttles AWS Config apart from Audit Manager. An answer that does not hold what botocore's model
promises (a score that is not a percentage, an unknown compliance type, a missing list) raises
`AwsError(MalformedResponse)`: it is never published as a number.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import botocore.config

from exporter import __version__
from exporter.aws import MALFORMED, AwsError, RateLimiter, SessionFactory, _as_aws_error, default_session
from exporter.config import Config, Target
from exporter.conformance import COMPLIANCE_TYPES, INSUFFICIENT_DATA, PackMeta, PackScore, RuleCompliance
from exporter.snapshot import ApiCounters

NOT_FOUND = "NoSuchConformancePackException"
# The largest page each operation allows (botocore's model).
SCORES_PAGE_SIZE = 20
RULES_PAGE_SIZE = 1000
PACKS_PAGE_SIZE = 20

_PACK_NAME = re.compile(r"[a-zA-Z][-a-zA-Z0-9]{0,255}")
# AWS sends a score as a decimal string ("87.5"); exponents, signs, spaces, NaN and infinities are malformed.
_SCORE = re.compile(r"\d{1,3}(\.\d+)?")
_PACK_ARN = re.compile(r"arn:aws[-a-z]*:config:[a-z0-9-]+:(\d{12}):conformance-pack/.+")
_T = TypeVar("_T")
_A = TypeVar("_A")


class ConformancePackClient:
    """AWS Config's conformance-pack calls for one target (one account and region), sharing one rate limit and one
    concurrency limit between its callers, apart from the target's Audit Manager limits."""

    def __init__(
        self,
        target: Target,
        config: Config,
        counters: ApiCounters,
        session_factory: SessionFactory = default_session,
    ) -> None:
        self.region = target.region
        self._counters = counters
        self._limiter = RateLimiter(target.max_requests_per_second)
        self._slots = threading.BoundedSemaphore(target.max_concurrency)
        client_config = botocore.config.Config(
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            retries={"mode": "standard", "total_max_attempts": config.max_attempts},
            max_pool_connections=target.max_concurrency,
            user_agent_extra=f"auditmanager-exporter/{__version__}",
        )
        self._client = session_factory(target).client(
            "config", region_name=target.region, endpoint_url=target.endpoint_url, config=client_config
        )
        self._client.meta.events.register("before-send.config", self._before_send)

    def _before_send(self, event_name: str, **_: Any) -> None:
        self._limiter.acquire()
        self._counters.count_request(event_name.rsplit(".", 1)[-1], self.region)

    def compliance_scores(self) -> tuple[PackScore, ...]:
        """ListConformancePackComplianceScores, every page: the score of every pack of the account and region."""
        return self._call(
            "ListConformancePackComplianceScores",
            lambda: _pages(
                lambda **paging: self._client.list_conformance_pack_compliance_scores(Limit=SCORES_PAGE_SIZE, **paging)
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
                    raise ValueError(f"answer for pack {answer.get('ConformancePackName')!r}, not {pack!r}")
            return _unique(
                (_rule(item) for item in _items(answers, "ConformancePackRuleComplianceList")), lambda r: r.rule
            )

        return self._call(
            "DescribeConformancePackCompliance",
            lambda: _pages(
                lambda **paging: self._client.describe_conformance_pack_compliance(
                    ConformancePackName=pack, Limit=RULES_PAGE_SIZE, **paging
                )
            ),
            parse,
        )

    def conformance_packs(self) -> tuple[PackMeta, ...]:
        """DescribeConformancePacks, every page: the account and region's packs, with the account their ARN names."""
        return self._call(
            "DescribeConformancePacks",
            lambda: _pages(lambda **paging: self._client.describe_conformance_packs(Limit=PACKS_PAGE_SIZE, **paging)),
            lambda answers: _unique(
                (_pack(item) for item in _items(answers, "ConformancePackDetails")), lambda p: p.name
            ),
        )

    def close(self) -> None:
        """Close the client's pooled connections (a later call opens new ones)."""
        self._client.close()

    def _call(self, operation: str, request: Callable[[], _A], parse: Callable[[_A], _T]) -> _T:
        """Run one logical call in one of the target's concurrency slots and check its answer with `parse`; count
        and re-raise a failure of AWS (an error answer, a transport error, an answer `parse` rejects) as an
        AwsError. Any other exception is the exporter's own and propagates as it is."""
        try:
            with self._slots:
                answer = request()
            return parse(answer)
        except Exception as exc:
            error = _as_aws_error(exc) or _malformed(exc)
            if error is None:
                raise
            self._counters.count_error(operation, self.region, error.code)
            raise error from exc


def _malformed(exc: Exception) -> AwsError | None:
    """An answer that failed its checks (or a page's) is malformed."""
    if isinstance(exc, (KeyError, TypeError, ValueError)):
        return AwsError(MALFORMED, f"unexpected answer: {exc}")
    return None


def _pages(request: Callable[..., dict[str, Any]]) -> list[dict[str, Any]]:
    """Every page of a paged AWS Config operation, following NextToken until a page comes without one. A token
    that repeats is a malformed answer, not a reason to loop forever."""
    seen: set[str] = set()
    answers = [request()]
    while token := answers[-1].get("NextToken"):
        if not isinstance(token, str) or token in seen:
            raise ValueError(f"NextToken {token!r} repeats or is not a string")
        seen.add(token)
        answers.append(request(NextToken=token))
    return answers


def _items(answers: Iterable[dict[str, Any]], key: str) -> Iterator[dict[str, Any]]:
    for answer in answers:
        items = answer.get(key)
        if not isinstance(items, list):
            raise ValueError(f"{key} is missing or not a list")
        for item in items:
            if not isinstance(item, dict):
                raise ValueError(f"{key} holds {item!r}")
            yield item


def _unique(items: Iterable[_T], key: Callable[[_T], str]) -> tuple[_T, ...]:
    """The items, in order; a name that comes twice is malformed (it would be counted twice)."""
    seen: set[str] = set()
    result = []
    for item in items:
        name = key(item)
        if name in seen:
            raise ValueError(f"{name!r} answered twice")
        seen.add(name)
        result.append(item)
    return tuple(result)


def _pack_name(value: object) -> str:
    if not isinstance(value, str) or not _PACK_NAME.fullmatch(value):
        raise ValueError(f"ConformancePackName={value!r}")
    return value


def _score(item: dict[str, Any]) -> PackScore:
    name = _pack_name(item.get("ConformancePackName"))
    raw = item.get("Score")
    score = None
    if raw is not None and raw != INSUFFICIENT_DATA:
        if not isinstance(raw, str) or not _SCORE.fullmatch(raw) or float(raw) > 100:
            raise ValueError(f"Score={raw!r} of {name}, not a percentage")
        score = float(raw)
    return PackScore(name, score)


def _rule(item: dict[str, Any]) -> RuleCompliance:
    rule = item.get("ConfigRuleName")
    if not isinstance(rule, str) or not rule.strip() or len(rule) > 128:
        raise ValueError(f"ConfigRuleName={rule!r}")
    compliance = item.get("ComplianceType")
    if compliance not in COMPLIANCE_TYPES:
        raise ValueError(f"ComplianceType={compliance!r} of {rule}")
    return RuleCompliance(rule, compliance)


def _pack(item: dict[str, Any]) -> PackMeta:
    name = _pack_name(item.get("ConformancePackName"))
    arn = item.get("ConformancePackArn")
    match = _PACK_ARN.fullmatch(arn) if isinstance(arn, str) else None
    if match is None:
        raise ValueError(f"ConformancePackArn={arn!r} of {name}")
    return PackMeta(name, match.group(1))
