"""The AWS Config source's part of the snapshot: the published state of each conformance pack and aggregator, and
the series cap on the per-rule series."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from exporter.conformance import COMPLIANCE_TYPES, INSUFFICIENT_DATA, AggregatePackCompliance, RuleCompliance
from exporter.sources.base import Failure

AggregatorKey = tuple[str, str, str]
"""(aggregator, account_id, region): a configuration aggregator as one target polls it"""


@dataclass(frozen=True, kw_only=True)
class AggregatorState:
    """The published state of one aggregator poll: its last good packs and how its latest poll went."""

    aggregator: str
    account_id: str
    region: str
    packs: tuple[AggregatePackCompliance, ...] = ()
    poll_success: bool
    last_success: float | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def key(self) -> AggregatorKey:
        return (self.aggregator, self.account_id, self.region)

    def failed(self, failure: Failure) -> AggregatorState:
        """After a failed poll: the last good packs stay."""
        return dataclasses.replace(self, poll_success=False, error_code=failure.code, error_message=failure.message)


ConformancePackKey = tuple[str, str, str]
"""(account_id, region, conformance_pack)"""


@dataclass(frozen=True, kw_only=True)
class ConformancePackState:
    """The published state of one conformance pack: its last good score and rule counts, its rules (possibly fewer
    than counted, when the series cap left some out), and how its latest poll went. `score` None: AWS has none."""

    account_id: str
    region: str
    name: str
    score: float | None = None
    rule_counts: tuple[tuple[str, int], ...] = ()
    rules: tuple[RuleCompliance, ...] = ()
    poll_success: bool
    last_success: float | None = None
    # The error of the latest failed poll; None once a poll succeeds.
    error_code: str | None = None
    error_message: str | None = None

    @property
    def key(self) -> ConformancePackKey:
        return (self.account_id, self.region, self.name)

    @property
    def rule_series(self) -> int:
        """How many per-rule series it publishes: one per rule with data (INSUFFICIENT_DATA publishes none)."""
        return sum(rule.compliance != INSUFFICIENT_DATA for rule in self.rules)

    def failed(self, failure: Failure) -> ConformancePackState:
        """After a failed poll: the last good values stay, the success timestamp does not move."""
        return dataclasses.replace(self, poll_success=False, error_code=failure.code, error_message=failure.message)


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
