"""Rule counts and the per-rule series cap of conformance packs (the AWS Config source's state)."""

from __future__ import annotations

from exporter.conformance import RuleCompliance
from exporter.sources.awsconfig.state import ConformancePackState, limit_rule_series, rule_counts


def rules(compliant: int, noncompliant: int, insufficient: int = 0) -> tuple[RuleCompliance, ...]:
    kinds = ["COMPLIANT"] * compliant + ["NON_COMPLIANT"] * noncompliant + ["INSUFFICIENT_DATA"] * insufficient
    return tuple(RuleCompliance(f"rule-{n}", kind) for n, kind in enumerate(kinds))


def pack(name: str, pack_rules: tuple[RuleCompliance, ...]) -> ConformancePackState:
    return ConformancePackState(
        account_id="111122223333",
        region="us-east-1",
        name=name,
        score=50.0,
        rule_counts=rule_counts(pack_rules),
        rules=pack_rules,
        poll_success=True,
        last_success=1.0,
    )


def test_rule_counts_name_every_compliance_type_even_at_zero():
    assert rule_counts(rules(2, 0, 1)) == (("COMPLIANT", 2), ("NON_COMPLIANT", 0), ("INSUFFICIENT_DATA", 1))


def test_rules_without_data_publish_no_series_and_so_do_not_count_against_the_cap():
    assert pack("A", rules(2, 1, 5)).rule_series == 3


def test_the_cap_keeps_whole_packs_in_order_and_counts_what_it_leaves_out():
    states = [pack("A", rules(3, 1)), pack("B", rules(2, 2, 4)), pack("C", rules(1, 0))]

    limited, dropped = limit_rule_series(states, 6)

    assert [len(state.rules) for state in limited] == [4, 0, 1]
    assert dropped == 4
    assert [state.rule_counts for state in limited] == [state.rule_counts for state in states]


def test_a_cap_the_packs_fit_under_changes_nothing():
    states = [pack("A", rules(3, 1)), pack("B", rules(2, 2))]

    assert limit_rule_series(states, 8) == (states, 0)
