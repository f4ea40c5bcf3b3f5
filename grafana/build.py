"""Generates the Grafana dashboard from Grafana's typed builders (grafana-foundation-sdk).

Run `python -m grafana.build` after a change: it writes grafana/auditmanager-exporter.json (which the Helm chart
links to). tests/test_dashboard.py fails while the committed file differs from what this module generates.

The dashboard is a list of rows (`ROWS`); each row is a function returning its title and panels. To show a new
source, write a row function and add it to `ROWS`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path

try:
    from grafana_foundation_sdk.builders import common, prometheus, stat, statetimeline, table, timeseries
    from grafana_foundation_sdk.builders import dashboard as board
    from grafana_foundation_sdk.cog.builder import Builder
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import dashboard as model
    from grafana_foundation_sdk.models.common import BigValueColorMode, BigValueGraphMode
    from grafana_foundation_sdk.models.prometheus import PromQueryFormat
except ModuleNotFoundError as missing:
    if missing.name is None or not missing.name.startswith("grafana_foundation_sdk"):
        raise
    print("grafana.build needs grafana-foundation-sdk: pip install '.[dashboards]' in the source tree", file=sys.stderr)
    raise SystemExit(2) from None

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "grafana" / "auditmanager-exporter.json"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")

ACCOUNT = 'account_id=~"$account", region=~"$region"'
ASSESSMENT = f'{ACCOUNT}, assessment_name=~"$assessment"'
ASSESSMENT_KEY = "account_id, region, assessment_id, assessment_name"
NONCOMPLIANT = 'compliance="noncompliant"'
COMPLIANT = 'compliance="compliant"'
INCONCLUSIVE = 'compliance="inconclusive"'
CHECKED = 'compliance=~"compliant|noncompliant"'
PER_ASSESSMENT = "{{assessment_name}} ({{account_id}}, {{region}})"
PER_ACCOUNT = "{{account_id}} ({{region}})"
PER_PACK = "{{conformance_pack}} ({{account_id}}, {{region}})"
# The columns of the noncompliant-rules table, in order.
PACK_RULE_COLUMNS = ("account_id", "region", "conformance_pack", "config_rule")
PER_STANDARD = "{{standard}} ({{account_id}}, {{region}})"
# The columns of the failing-controls table, in order.
CONTROL_COLUMNS = ("account_id", "region", "standard", "control_id", "severity")
# Series that every polled account and region has, from any source: the account and region variables list their
# labels, so that they work for Audit Manager, AWS Config conformance packs, Security Hub, or any of them.
POLLED = (
    '__name__=~"auditmanager_assessment_poll_success|awsconfig_conformance_pack_poll_success'
    '|securityhub_standard_poll_success"'
)

Panel = stat.Panel | timeseries.Panel | table.Panel | statetimeline.Panel
Row = tuple[str, list[Panel]]


def assessment(metric: str, *matchers: str) -> str:
    """A per-assessment selector filtered by the account, region and assessment variables."""
    return f"{metric}{{{', '.join((*matchers, ASSESSMENT))}}}"


def account(metric: str, *matchers: str) -> str:
    """A per-account (or per-pack) selector filtered by the account and region variables."""
    return f"{metric}{{{', '.join((*matchers, ACCOUNT))}}}"


def query(
    expr: str, legend: str = "", *, ref: str = "A", instant: bool = False, table_format: bool = False
) -> prometheus.Dataquery:
    target = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend:
        target = target.legend_format(legend)
    if instant:
        target = target.instant()
    if table_format:
        target = target.format(PromQueryFormat.TABLE)
    return target


def stat_panel(title: str, expr: str, unit: str, description: str, legend: str = "") -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(query(expr, legend, instant=True))
        .unit(unit)
        .graph_mode(BigValueGraphMode.NONE)
        .color_mode(BigValueColorMode.VALUE)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
        .height(4)
        .span(4)
    )


def graph(
    title: str, description: str, *targets: prometheus.Dataquery, unit: str = "short", width: int = 12
) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).description(description).datasource(DATASOURCE).unit(unit)
    for target in targets:
        panel = panel.with_target(target)
    return panel.height(8).span(width)


def merged_table(title: str, description: str, key: str, columns: dict[str, str], width: int = 24) -> table.Panel:
    """One instant table query per column, each reduced to one row per `key`, merged into one table."""
    panel = table.Panel().title(title).description(description).datasource(DATASOURCE)
    refs = [chr(ord("A") + index) for index in range(len(columns))]
    for ref, expr in zip(refs, columns.values(), strict=True):
        panel = panel.with_target(query(f"max by ({key}) ({expr})", ref=ref, instant=True, table_format=True))
    renames = {f"Value #{ref}": name for ref, name in zip(refs, columns, strict=True)}
    return (
        panel.with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize", options={"excludeByName": {"Time": True}, "renameByName": renames}
            )
        )
        .height(10)
        .span(width)
    )


def listing_table(title: str, description: str, expr: str, columns: tuple[str, ...], width: int = 24) -> table.Panel:
    """One instant table query listing the series `expr` selects now, showing only `columns`, in that order."""
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(query(expr, instant=True, table_format=True))
        .with_transformation(
            model.DataTransformerConfig(id_val="filterFieldsByName", options={"include": {"names": list(columns)}})
        )
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize", options={"indexByName": {name: index for index, name in enumerate(columns)}}
            )
        )
        .height(10)
        .span(width)
    )


# ---- rows


def overview() -> Row:
    return "Compliance overview", [
        stat_panel(
            "Assessments",
            f"count({assessment('auditmanager_assessment_poll_success')})",
            "none",
            "Assessments the exporters poll.",
        ),
        stat_panel(
            "Noncompliant evidence today",
            f"sum({assessment('auditmanager_assessment_evidence', NONCOMPLIANT)})",
            "none",
            "Noncompliant evidence of the assessments' current day (AWS's daily count).",
        ),
        stat_panel(
            "Overall compliance ratio",
            f"sum({assessment('auditmanager_assessment_evidence', COMPLIANT)})"
            f" / sum({assessment('auditmanager_assessment_evidence', CHECKED)})",
            "percentunit",
            "Compliant / (compliant + noncompliant) evidence of the selected assessments.",
        ),
        stat_panel(
            "Controls with noncompliant evidence",
            f"sum({assessment('auditmanager_assessment_noncompliant_controls')})",
            "none",
            "Assessment controls with noncompliant evidence today.",
        ),
        stat_panel(
            "Failing polls",
            f"sum(1 - {assessment('auditmanager_assessment_poll_success')})",
            "none",
            "Assessments whose latest poll failed; their figures are frozen.",
        ),
        stat_panel(
            "Oldest insights",
            f"max(time() - {assessment('auditmanager_assessment_insights_last_updated_timestamp_seconds')})",
            "s",
            "Time since AWS last updated the stalest insights; AWS refreshes them about daily.",
        ),
        graph(
            "Noncompliant evidence against its 7-day baseline",
            "Today's noncompliant evidence per assessment and the average daily peak of the 7 days before "
            "(the baseline AuditManagerNoncompliantEvidenceSpike compares with).",
            query(assessment("auditmanager_assessment_evidence", NONCOMPLIANT), PER_ASSESSMENT),
            query(
                assessment("assessment:auditmanager_noncompliant_evidence:baseline7d"),
                f"{PER_ASSESSMENT} baseline",
                ref="B",
            ),
            width=24,
        ),
        graph(
            "Compliance ratio per assessment",
            "Compliant / (compliant + noncompliant) evidence, from the recording rule.",
            query(assessment("assessment:auditmanager_evidence_compliance:ratio"), PER_ASSESSMENT),
            unit="percentunit",
        ),
        graph(
            "Controls with noncompliant evidence / total controls",
            "Assessment controls with noncompliant evidence, and all controls.",
            query(assessment("auditmanager_assessment_noncompliant_controls"), f"{PER_ASSESSMENT} noncompliant"),
            query(assessment("auditmanager_assessment_controls"), f"{PER_ASSESSMENT} total", ref="B"),
        ),
        graph(
            "Evidence by compliance",
            "Evidence of the selected assessments by compliance check result.",
            query(f"sum by (compliance) ({assessment('auditmanager_assessment_evidence')})", "{{compliance}}"),
            width=24,
        ),
    ]


def organisation() -> Row:
    return "Accounts", [
        graph(
            "Active assessments per account",
            "GetInsights: the ACTIVE assessments of each account and region.",
            query(account("auditmanager_account_active_assessments"), PER_ACCOUNT),
            width=8,
        ),
        graph(
            "Account evidence by compliance",
            "GetInsights: evidence over each account's ACTIVE assessments.",
            query(f"sum by (compliance) ({account('auditmanager_account_evidence')})", "{{compliance}}"),
            width=8,
        ),
        graph(
            "Account compliance ratio",
            "Compliant / (compliant + noncompliant) evidence per account and region.",
            query(account("account:auditmanager_evidence_compliance:ratio"), PER_ACCOUNT),
            unit="percentunit",
            width=8,
        ),
        merged_table(
            "Accounts",
            "The account-level insights, one row per account and region.",
            "account_id, region",
            {
                "Active assessments": account("auditmanager_account_active_assessments"),
                "Noncompliant evidence": account("auditmanager_account_evidence", NONCOMPLIANT),
                "Compliance ratio": account("account:auditmanager_evidence_compliance:ratio"),
                "Noncompliant controls": account("auditmanager_account_noncompliant_controls"),
                "Controls": account("auditmanager_account_controls"),
                "Insights age": f"time() - {account('auditmanager_account_insights_last_updated_timestamp_seconds')}",
            },
        ),
    ]


def assessments() -> Row:
    insights_updated = assessment("auditmanager_assessment_insights_last_updated_timestamp_seconds")
    domain_noncompliant = assessment("auditmanager_assessment_control_domain_evidence", NONCOMPLIANT)
    return "Assessment detail", [
        merged_table(
            "All assessments",
            "Every selected assessment, one row each.",
            ASSESSMENT_KEY,
            {
                "Noncompliant": assessment("auditmanager_assessment_evidence", NONCOMPLIANT),
                "Compliant": assessment("auditmanager_assessment_evidence", COMPLIANT),
                "Inconclusive": assessment("auditmanager_assessment_evidence", INCONCLUSIVE),
                "Compliance ratio": assessment("assessment:auditmanager_evidence_compliance:ratio"),
                "Noncompliant controls": assessment("auditmanager_assessment_noncompliant_controls"),
                "Controls": assessment("auditmanager_assessment_controls"),
                "Insights age": f"time() - {insights_updated}",
                "Poll success": assessment("auditmanager_assessment_poll_success"),
            },
        ),
        graph(
            "Noncompliant evidence per assessment",
            "Noncompliant evidence of each assessment's current day.",
            query(assessment("auditmanager_assessment_evidence", NONCOMPLIANT), PER_ASSESSMENT),
        ),
        graph(
            "Noncompliant evidence by control domain",
            "Targets with control_domains: noncompliant evidence per control domain.",
            query(
                f"sum by (control_domain) ({domain_noncompliant})",
                "{{control_domain}}",
            ),
        ),
        graph(
            "Insights age",
            "Time since AWS last updated each assessment's insights.",
            query(f"time() - {insights_updated}", PER_ASSESSMENT),
            unit="s",
        ),
        table.Panel()
        .title("Assessment frameworks and status")
        .description("The framework and status of each assessment (GetAssessment).")
        .datasource(DATASOURCE)
        .with_target(
            query(assessment("auditmanager_assessment_info"), instant=True, table_format=True),
        )
        .height(8)
        .span(12),
    ]


def conformance_packs() -> Row:
    return "AWS Config conformance packs", [
        graph(
            "Conformance pack compliance score",
            "ListConformancePackComplianceScores: the percentage of each pack's rule-resource pairs that comply; "
            "no series while AWS Config has no score.",
            query(account("awsconfig_conformance_pack_compliance_score"), PER_PACK),
            unit="percent",
        )
        .min(0)
        .max(100),
        graph(
            "Conformance pack rules by compliance",
            "DescribeConformancePackCompliance: each pack's rules by compliance type.",
            query(
                f"sum by (conformance_pack, compliance) ({account('awsconfig_conformance_pack_rules')})",
                "{{conformance_pack}}: {{compliance}}",
            ),
        ),
        listing_table(
            "Noncompliant conformance pack rules",
            "The rules of the selected packs that AWS Config evaluates NON_COMPLIANT now.",
            f"{account('awsconfig_conformance_pack_rule_compliant')} == 0",
            PACK_RULE_COLUMNS,
        ),
        statetimeline.Panel()
        .title("Conformance pack poll success")
        .description("1 while the latest poll of a pack (its score and its rules) succeeded.")
        .datasource(DATASOURCE)
        .with_target(query(account("awsconfig_conformance_pack_poll_success"), PER_PACK))
        .height(8)
        .span(12),
        graph(
            "Time since last successful conformance pack poll",
            "Per pack; its score and rules are as old as this.",
            query(
                f"time() - {account('awsconfig_conformance_pack_last_poll_success_timestamp_seconds')}",
                PER_PACK,
            ),
            unit="s",
        ),
    ]


def security_hub() -> Row:
    return "AWS Security Hub CSPM standards", [
        graph(
            "Security score per standard",
            "passed / (enabled - no data) * 100 over each standard's controls, recomputed at every poll cycle; no "
            "series while no enabled control has data. The console refreshes its score once a day.",
            query(account("securityhub_standard_score"), PER_STANDARD),
            unit="percent",
        )
        .min(0)
        .max(100),
        graph(
            "Security Hub controls by status",
            "Each standard's controls: passed, failed, unknown (WARNING or NOT_AVAILABLE findings), no_data, disabled.",
            query(
                f"sum by (standard, status) ({account('securityhub_standard_controls')})",
                "{{standard}}: {{status}}",
            ),
        ),
        listing_table(
            "Failing CRITICAL and HIGH controls",
            "The enabled controls of the selected standards with a FAILED finding now, CRITICAL and HIGH.",
            account("securityhub_control_status", 'status="failed"', 'severity=~"CRITICAL|HIGH"'),
            CONTROL_COLUMNS,
            width=12,
        ),
        graph(
            "Failed findings by severity",
            "Active, unsuppressed FAILED control findings of the selected standards, by severity label.",
            query(
                f"sum by (severity) ({account('securityhub_standard_failed_findings')})",
                "{{severity}}",
            ),
        ),
        statetimeline.Panel()
        .title("Security Hub standard poll success")
        .description("1 while the latest poll of a standard (its controls and the account's findings) succeeded.")
        .datasource(DATASOURCE)
        .with_target(query(account("securityhub_standard_poll_success"), PER_STANDARD))
        .height(8)
        .span(12),
        graph(
            "Time since last successful standard poll",
            "Per standard; its score and controls are as old as this.",
            query(
                f"time() - {account('securityhub_standard_last_poll_success_timestamp_seconds')}",
                PER_STANDARD,
            ),
            unit="s",
        ),
    ]


def poll_health() -> Row:
    return "Poll health", [
        statetimeline.Panel()
        .title("Poll success")
        .description("1 while an assessment's latest poll succeeded.")
        .datasource(DATASOURCE)
        .with_target(query(assessment("auditmanager_assessment_poll_success"), PER_ASSESSMENT))
        .height(8)
        .span(12),
        graph(
            "Time since last successful poll",
            "Per assessment; its figures are as old as this.",
            query(
                f"time() - {assessment('auditmanager_assessment_last_poll_success_timestamp_seconds')}",
                PER_ASSESSMENT,
            ),
            unit="s",
        ),
        statetimeline.Panel()
        .title("Account poll success")
        .description("1 while the latest poll of an account's insights (GetInsights) succeeded.")
        .datasource(DATASOURCE)
        .with_target(query(account("auditmanager_account_poll_success"), PER_ACCOUNT))
        .height(8)
        .span(12),
        statetimeline.Panel()
        .title("Control-domain poll success")
        .description("1 while the latest poll of an assessment's control-domain breakdown succeeded.")
        .datasource(DATASOURCE)
        .with_target(query(assessment("auditmanager_assessment_control_domains_poll_success"), PER_ASSESSMENT))
        .height(8)
        .span(12),
        graph(
            "Poll duration",
            "Wall time of the last poll cycle per region and exporter.",
            query('auditmanager_poll_duration_seconds{region=~"$region"}', "{{region}} ({{instance}})"),
            unit="s",
            width=24,
        ),
    ]


def api_health() -> Row:
    requests = 'rate(auditmanager_api_requests_total{region=~"$region"}[$__rate_interval])'
    errors = 'rate(auditmanager_api_errors_total{region=~"$region"}[$__rate_interval])'
    exporter = "on (instance, job) auditmanager_exporter_build_info"
    return "API and exporter health", [
        graph(
            "API requests by operation",
            "HTTP requests to Audit Manager, retries included.",
            query(f"sum by (operation, region) ({requests})", "{{operation}} ({{region}})"),
            unit="reqps",
        ),
        graph(
            "API errors by code",
            "Calls that failed after retries, by AWS error code; `none` while an operation has no errors.",
            query(
                f"sum by (operation, error_code) ({errors}) or on (operation) "
                f'label_replace(0 * sum by (operation) ({requests}), "error_code", "none", "", "")',
                "{{operation}}: {{error_code}}",
            ),
            unit="reqps",
        ),
        stat_panel(
            "Exporter version",
            "count by (version) (auditmanager_exporter_build_info)",
            "none",
            "Exporters running each version.",
            legend="{{version}}",
        ).span(8),
        stat_panel(
            "Exporter memory",
            f"max(process_resident_memory_bytes and {exporter})",
            "bytes",
            "Resident memory of the largest exporter.",
        ).span(8),
        stat_panel(
            "Exporter CPU",
            f"sum(rate(process_cpu_seconds_total[$__rate_interval]) and {exporter})",
            "percentunit",
            "CPU of all exporters, in cores.",
        ).span(8),
    ]


ROWS: list[Callable[[], Row]] = [
    overview,
    organisation,
    assessments,
    conformance_packs,
    security_hub,
    poll_health,
    api_health,
]


# ---- the dashboard


def filter_variable(name: str, label: str, selector: str, description: str) -> board.QueryVariable:
    definition = f"label_values({selector}, {label})"
    return (
        board.QueryVariable(name)
        .label(name.capitalize())
        .description(description)
        .datasource(DATASOURCE)
        .query(definition)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def variables() -> Iterator[Builder[model.VariableModel]]:
    yield (
        board.DatasourceVariable("datasource")
        .label("Data source")
        .description("The Prometheus that scrapes auditmanager-exporter.")
        .type("prometheus")
    )
    yield filter_variable("account", "account_id", f"{{{POLLED}}}", "AWS account ids.")
    yield filter_variable("region", "region", f'{{{POLLED}, account_id=~"$account"}}', "AWS regions.")
    yield filter_variable(
        "assessment",
        "assessment_name",
        'auditmanager_assessment_poll_success{account_id=~"$account", region=~"$region"}',
        "Audit Manager assessments, by name.",
    )


def dashboard() -> model.Dashboard:
    builder = (
        board.Dashboard("AWS Audit Manager, Config conformance packs and Security Hub")
        .uid("auditmanager-exporter")
        .description(
            "Assessment insights of AWS Audit Manager from auditmanager-exporter: compliance, noncompliant evidence "
            "against its baseline, controls, per-assessment detail, AWS Config conformance packs, Security Hub CSPM "
            "standards, and poll and API health."
        )
        .tags(["aws", "audit-manager", "aws-config", "security-hub", "compliance", "auditmanager-exporter"])
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .time("now-7d", "now")
        .refresh("1m")
        .timezone("browser")
    )
    for variable in variables():
        builder = builder.with_variable(variable)
    ids = count(1)
    for row in ROWS:
        title, panels = row()
        builder = builder.with_row(board.Row(title).id(next(ids)))
        for panel in panels:
            builder = builder.with_panel(panel.id(next(ids)))
    return builder.build()


def render() -> str:
    """The dashboard's JSON, as committed."""
    return json.dumps(dashboard(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main() -> None:
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
