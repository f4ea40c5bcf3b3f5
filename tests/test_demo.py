"""`--demo` shows what docs/metrics.md documents: every documented family is served after the demo's first cycle,
every served family is documented, and the demo's configuration aggregator agrees with the packs it mirrors."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, ExporterProcess, Samples, eventually, http_get, sample, series

METRICS_DOC = ROOT / "docs" / "metrics.md"
# A row of a metric table: | `name{labels}` | type | meaning |
_ROW = re.compile(r"^\|\s*`([a-z_:][a-z0-9_:]*)[{`].*?\|\s*(\w+)\s*\|", re.MULTILINE)
# client_python's own families, which the doc covers with one sentence instead of a row each.
STANDARD_PREFIXES = ("process_", "python_")
STANDARD_SENTENCE = "Plus the standard `process_*` and `python_*` metrics."
# Documented families the demo cannot show, each with the reason. None today: the demo sets tag_labels,
# control_domains and an aggregator, and the *_series_dropped counters are always served, at 0.
NOT_IN_DEMO: dict[str, str] = {}


def documented_families() -> dict[str, str]:
    """Each family named in a metric table of docs/metrics.md, as the parser names it (a counter without _total),
    with its documented type."""
    families = {}
    for name, kind in _ROW.findall(METRICS_DOC.read_text(encoding="utf-8")):
        families[name.removesuffix("_total") if kind == "counter" else name] = kind
    return families


def served_families(exporter: ExporterProcess) -> dict[str, str]:
    status, body, _ = http_get(exporter.url + "/metrics", headers={"Accept-Encoding": "identity"})
    assert status == 200, body
    return {family.name: family.type for family in text_string_to_metric_families(body.decode())}


def test_the_doc_names_its_metrics_in_tables_a_test_can_read():
    documented = documented_families()
    assert len(documented) > 40, sorted(documented)
    assert {"auditmanager_api_requests", "awsconfig_aggregator_poll_success", "securityhub_standard_score"} <= set(
        documented
    )
    assert STANDARD_SENTENCE in METRICS_DOC.read_text(encoding="utf-8")


def test_the_demo_serves_every_documented_family_after_its_first_cycle_and_only_documented_ones(run_exporter):
    documented = documented_families()
    expected = set(documented) - set(NOT_IN_DEMO)
    exporter = run_exporter(None, "--demo")

    served = eventually(
        lambda: served_families(exporter),
        lambda families: expected <= set(families),
        what=f"every documented family ({len(expected)})",
        detail=lambda: sorted(expected - set(served_families(exporter))),
    )

    undocumented = {name for name in served if not name.startswith(STANDARD_PREFIXES)} - set(documented)
    assert not undocumented, f"served but not in docs/metrics.md: {sorted(undocumented)}"
    assert {name: served[name] for name in expected} == {name: documented[name] for name in expected}
    assert any(name.startswith(STANDARD_PREFIXES) for name in served)


def _rule_counts(samples: Samples, name: str) -> dict[tuple[str, str, str], dict[str, float]]:
    """Per (account, region, pack): the rule count of each compliance type that `name` publishes."""
    counts: dict[tuple[str, str, str], dict[str, float]] = {}
    for (metric, labels), value in samples.items():
        if metric == name:
            label = dict(labels)
            pack = (label["account_id"], label["region"], label["conformance_pack"])
            counts.setdefault(pack, {})[label["compliance"]] = value
    return counts


def test_the_demo_aggregator_holds_every_demo_pack_with_the_packs_own_rule_counts(run_exporter):
    exporter = run_exporter(None, "--demo")

    def agree(samples: Samples) -> bool:
        packs = _rule_counts(samples, "awsconfig_conformance_pack_rules")
        aggregated = _rule_counts(samples, "awsconfig_aggregate_conformance_pack_rules")
        # A day's rollover between the two polls of a cycle may part them for one cycle.
        return (
            len(packs) == 2
            and {
                pack: {kind: count for kind, count in kinds.items() if kind in aggregated.get(pack, {})}
                for pack, kinds in packs.items()
            }
            == aggregated
        )

    samples = eventually(exporter.scrape, agree, what="the aggregate to match the packs", detail=exporter.logs)
    assert len(_rule_counts(samples, "awsconfig_aggregate_conformance_pack_rules")) == 2
    (poll,) = series(samples, "awsconfig_aggregator_poll_success")
    assert poll["aggregator"] == "demo-organisation" and poll["region"] == "us-east-1"
    assert sample(samples, "awsconfig_aggregator_poll_success", **poll) == 1
