"""What AWS Config says about conformance packs, as plain immutable data for the poller, the snapshot and the
collector, and the series cap on their per-rule series."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

COMPLIANT = "COMPLIANT"
NON_COMPLIANT = "NON_COMPLIANT"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
COMPLIANCE_TYPES = (COMPLIANT, NON_COMPLIANT, INSUFFICIENT_DATA)


@dataclass(frozen=True)
class PackScore:
    """One pack's entry of ListConformancePackComplianceScores: its score in percent, None when AWS has none."""

    name: str
    score: float | None


@dataclass(frozen=True)
class RuleCompliance:
    """One rule of a pack (DescribeConformancePackCompliance): its name and one of COMPLIANCE_TYPES."""

    rule: str
    compliance: str


@dataclass(frozen=True)
class PackMeta:
    """One pack of DescribeConformancePacks, with the account its ARN names."""

    name: str
    account_id: str


@dataclass(frozen=True)
class AggregatePackCompliance:
    """One entry of DescribeAggregateComplianceByConformancePacks: a pack of a source account and region, with how
    many of its rules are COMPLIANT and NON_COMPLIANT."""

    account_id: str
    region: str
    name: str
    compliant: int
    noncompliant: int


AggregatorKey = tuple[str, str, str]
"""(aggregator, account_id, region): a configuration aggregator as one target polls it"""


@dataclass(frozen=True)
class AggregatorState:
    """The published state of one aggregator poll: its last good packs and how its latest poll went."""

    aggregator: str
    account_id: str
    region: str
    packs: tuple[AggregatePackCompliance, ...]
    poll_success: bool

    @property
    def key(self) -> AggregatorKey:
        return (self.aggregator, self.account_id, self.region)


ConformancePackKey = tuple[str, str, str]
"""(account_id, region, conformance_pack)"""


@dataclass(frozen=True)
class ConformancePackState:
    """The published state of one conformance pack: its last good score and rule counts, its rules (possibly fewer
    than counted, when the series cap left some out), and how its latest poll went. `score` None: AWS has none."""

    account_id: str
    region: str
    name: str
    score: float | None
    rule_counts: tuple[tuple[str, int], ...]
    rules: tuple[RuleCompliance, ...]
    poll_success: bool
    last_success: float | None

    @property
    def key(self) -> ConformancePackKey:
        return (self.account_id, self.region, self.name)

    @property
    def rule_series(self) -> int:
        """How many per-rule series it publishes: one per rule with data (INSUFFICIENT_DATA publishes none)."""
        return sum(rule.compliance != INSUFFICIENT_DATA for rule in self.rules)


def rule_counts(rules: Iterable[RuleCompliance]) -> tuple[tuple[str, int], ...]:
    """The number of rules of each compliance type, every type included (0 when no rule has it)."""
    counted = Counter(rule.compliance for rule in rules)
    return tuple((compliance, counted[compliance]) for compliance in COMPLIANCE_TYPES)


def limit_rule_series(states: Sequence[ConformancePackState], limit: int) -> tuple[list[ConformancePackState], int]:
    """Keep per-rule series, in the order given, until `limit` are kept; return the states and how many series
    were left out. A pack's rules are kept or left out whole, so that a pack never shows half its rules; the
    counts by compliance are not capped."""
    remaining, dropped, limited = limit, 0, []
    for state in states:
        if state.rule_series <= remaining:
            remaining -= state.rule_series
            limited.append(state)
        else:
            dropped += state.rule_series
            limited.append(dataclasses.replace(state, rules=()))
    return limited, dropped
