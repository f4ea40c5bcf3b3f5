"""The Security Hub source's metric families and /status rows, read from its part of the snapshot."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.sources.base import StatusRow
from exporter.sources.securityhub.score import CONTROL_STATUSES, SEVERITIES
from exporter.sources.securityhub.state import StandardState

SOURCE = "securityhub"
LABELS = ["account_id", "region", "standard"]


def families(standards: Iterable[StandardState], dropped_series: int) -> Iterator[Metric]:
    score = GaugeMetricFamily(
        "securityhub_standard_score",
        "The standard's security score as AWS documents it: passed / (enabled - no data) * 100 over its controls, "
        "unrounded; no series while no enabled control has data.",
        labels=LABELS,
    )
    controls = GaugeMetricFamily(
        "securityhub_standard_controls",
        "Controls of the standard by status: passed, failed, unknown, no_data or disabled.",
        labels=[*LABELS, "status"],
    )
    control_status = GaugeMetricFamily(
        "securityhub_control_status",
        "1 for each enabled control of the standard, with its current status and its severity rating. Capped at "
        "max_securityhub_control_series series.",
        labels=[*LABELS, "control_id", "severity", "status"],
    )
    failed_findings = GaugeMetricFamily(
        "securityhub_standard_failed_findings",
        "Active, unsuppressed FAILED control findings of the standard by severity label.",
        labels=[*LABELS, "severity"],
    )
    info = GaugeMetricFamily(
        "securityhub_standard_info",
        "1, with the standard's display name and its subscription status (GetEnabledStandards).",
        labels=[*LABELS, "name", "status"],
    )
    poll_success = GaugeMetricFamily(
        "securityhub_standard_poll_success",
        "1 if the exporter's latest poll of the standard (its controls and the account's findings) succeeded, else 0.",
        labels=LABELS,
    )
    last_success = GaugeMetricFamily(
        "securityhub_standard_last_poll_success_timestamp_seconds",
        "When the exporter last polled the standard successfully, as Unix time.",
        labels=LABELS,
    )
    for state in standards:
        labels = [state.account_id, state.region, state.standard]
        poll_success.add_metric(labels, 1.0 if state.poll_success else 0.0)
        if state.last_success is not None:
            last_success.add_metric(labels, state.last_success)
        if state.status:
            info.add_metric([*labels, state.name, state.status], 1.0)
        result = state.result
        if result is None:
            continue
        if result.score is not None:
            score.add_metric(labels, result.score)
        for status in CONTROL_STATUSES:
            controls.add_metric([*labels, status], result.by_status[status])
        for severity in SEVERITIES:
            failed_findings.add_metric([*labels, severity], result.failed_findings[severity])
        for control in result.controls:
            control_status.add_metric([*labels, control.control_id, control.severity, control.status], 1.0)
    dropped = CounterMetricFamily(
        "securityhub_control_series_dropped",
        "Per-control series left out because max_securityhub_control_series was reached, added up over every poll "
        "cycle that left them out. Above 0: raise the limit or poll fewer standards.",
    )
    dropped.add_metric([], dropped_series)
    yield from (score, controls, control_status, failed_findings, info, poll_success, last_success, dropped)


def status_rows(standards: Iterable[StandardState]) -> Iterator[StatusRow]:
    """A row per standard: its score, failed controls and subscription status as details."""
    for state in standards:
        result = state.result
        details = (
            ("score", "" if result is None or result.score is None else f"{result.score:.1f}%"),
            ("failed controls", "" if result is None else str(result.by_status["failed"])),
            ("subscription", state.status),
        )
        yield StatusRow.of(
            state, source=SOURCE, kind="standard", name=state.name or state.standard, id=state.standard, details=details
        )
