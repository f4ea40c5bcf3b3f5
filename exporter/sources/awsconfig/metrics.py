"""The AWS Config source's metric families and /status rows, read from its part of the snapshot."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.conformance import COMPLIANT, INSUFFICIENT_DATA, NON_COMPLIANT
from exporter.sources.awsconfig.state import AggregatorState, ConformancePackState
from exporter.sources.base import StatusRow

ACCOUNT_LABELS = ["account_id", "region"]
PACK_LABELS = ["account_id", "region", "conformance_pack"]


def families(
    packs: Sequence[ConformancePackState], aggregators: Sequence[AggregatorState], dropped: int
) -> Iterator[Metric]:
    yield from _pack_families(packs, dropped)
    yield from _aggregator_families(aggregators)


def status_rows(packs: Iterable[ConformancePackState], aggregators: Iterable[AggregatorState]) -> Iterator[StatusRow]:
    """A row per conformance pack (score and rule counts as details) and per aggregator (how many source packs)."""
    for pack in packs:
        counts = dict(pack.rule_counts)
        rules = f"{counts.get(COMPLIANT, 0)} compliant, {counts.get(NON_COMPLIANT, 0)} noncompliant" if counts else ""
        score = "" if pack.score is None else f"{pack.score:g}%"
        yield _row("conformance pack", pack.name, pack, (("score", score), ("rules", rules)))
    for aggregator in aggregators:
        yield _row("aggregator", aggregator.aggregator, aggregator, (("packs", str(len(aggregator.packs))),))


def _row(
    kind: str, name: str, state: ConformancePackState | AggregatorState, details: tuple[tuple[str, str], ...]
) -> StatusRow:
    return StatusRow.of(state, source="config", kind=kind, name=name, id=name, details=details)


def _pack_families(packs: Iterable[ConformancePackState], dropped_series: int) -> Iterator[Metric]:
    score = GaugeMetricFamily(
        "awsconfig_conformance_pack_compliance_score",
        "The conformance pack's compliance score in percent (ListConformancePackComplianceScores); no series while "
        "AWS Config has none (INSUFFICIENT_DATA).",
        labels=PACK_LABELS,
    )
    rules = GaugeMetricFamily(
        "awsconfig_conformance_pack_rules",
        "Rules of the conformance pack by compliance type (DescribeConformancePackCompliance).",
        labels=[*PACK_LABELS, "compliance"],
    )
    rule_compliant = GaugeMetricFamily(
        "awsconfig_conformance_pack_rule_compliant",
        "1 if the rule of the conformance pack is COMPLIANT, 0 if NON_COMPLIANT; no series for INSUFFICIENT_DATA. "
        "Capped at max_conformance_pack_rule_series series.",
        labels=[*PACK_LABELS, "config_rule"],
    )
    poll_success = GaugeMetricFamily(
        "awsconfig_conformance_pack_poll_success",
        "1 if the exporter's latest poll of the conformance pack (its score and its rules) succeeded, else 0.",
        labels=PACK_LABELS,
    )
    last_success = GaugeMetricFamily(
        "awsconfig_conformance_pack_last_poll_success_timestamp_seconds",
        "When the exporter last polled the conformance pack successfully, as Unix time.",
        labels=PACK_LABELS,
    )
    for pack in packs:
        labels = [pack.account_id, pack.region, pack.name]
        poll_success.add_metric(labels, 1.0 if pack.poll_success else 0.0)
        if pack.last_success is not None:
            last_success.add_metric(labels, pack.last_success)
        if pack.score is not None:
            score.add_metric(labels, pack.score)
        for compliance, count in pack.rule_counts:
            rules.add_metric([*labels, compliance], count)
        for rule in pack.rules:
            if rule.compliance != INSUFFICIENT_DATA:
                rule_compliant.add_metric([*labels, rule.rule], 1.0 if rule.compliance == COMPLIANT else 0.0)
    dropped = CounterMetricFamily(
        "awsconfig_conformance_pack_rule_series_dropped",
        "Per-rule series left out because max_conformance_pack_rule_series was reached, added up over every poll "
        "cycle that left them out. Above 0: raise the limit or poll fewer conformance packs.",
    )
    dropped.add_metric([], dropped_series)
    yield from (score, rules, rule_compliant, poll_success, last_success, dropped)


def _aggregator_families(aggregators: Sequence[AggregatorState]) -> Iterator[Metric]:
    """The configuration aggregators' view of every source account and region; no families without `aggregator`."""
    if not aggregators:
        return
    rules = GaugeMetricFamily(
        "awsconfig_aggregate_conformance_pack_rules",
        "Rules of the conformance pack of a source account and region of the configuration aggregator, by "
        "compliance type (DescribeAggregateComplianceByConformancePacks).",
        labels=["aggregator", *PACK_LABELS, "compliance"],
    )
    poll_success = GaugeMetricFamily(
        "awsconfig_aggregator_poll_success",
        "1 if the exporter's latest poll of the configuration aggregator, from the target's account and region, "
        "succeeded, else 0.",
        labels=["aggregator", *ACCOUNT_LABELS],
    )
    seen: set[tuple[str, str, str, str]] = set()
    for aggregator in aggregators:
        poll_success.add_metric(
            [aggregator.aggregator, aggregator.account_id, aggregator.region], float(aggregator.poll_success)
        )
        for pack in aggregator.packs:
            key = (aggregator.aggregator, pack.account_id, pack.region, pack.name)
            if key in seen:
                continue
            seen.add(key)
            rules.add_metric([*key, COMPLIANT], pack.compliant)
            rules.add_metric([*key, NON_COMPLIANT], pack.noncompliant)
    yield from (rules, poll_success)
