"""What /status shows, as plain data: the StatusReport of targets, assessments and the other sources' units, the order
its rows come in (failing first), and the filter a request applies to it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import lru_cache

from exporter.sources.base import Shown, StatusRow


@dataclass(frozen=True, kw_only=True)
class TargetStatus:
    """One target (an account and region) of one source and how its part of the latest poll cycle went: `units`
    is how many assessments (conformance packs, ...) it polled, `failures` how many of them failed."""

    source: str
    region: str
    account_id: str | None
    role_arn: str | None
    discover: bool
    rate_limit: float
    last_cycle_start: float | None = None
    last_cycle_seconds: float | None = None
    units: int | None = None
    failures: int | None = None
    requests: int | None = None
    peak_rate: float | None = None
    next_poll: float | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def failing(self) -> bool:
        return self.error_code is not None or bool(self.failures)

    @property
    def state(self) -> str:
        if self.failing:
            return "failing"
        return "waiting" if self.last_cycle_start is None else "ok"


@dataclass(frozen=True)
class AssessmentStatus(Shown):
    """One assessment: what it is, and how its latest poll went."""

    name: str
    assessment_id: str
    account_id: str
    region: str
    framework: str | None
    status: str | None
    poll_success: bool
    last_success: float | None
    error_code: str | None
    error_message: str | None
    insights_last_updated: float | None


@dataclass(frozen=True, kw_only=True)
class StatusReport:
    """Everything /status shows, as of `generated` (Unix time). Rows are in display order: failing rows first,
    then by region, account and name (see `ordered_targets` and `ordered_assessments`)."""

    version: str
    started: float
    config_file: str | None
    last_reload: float
    last_reload_successful: bool
    last_successful_reload: float
    completed_cycles: int
    # Why the latest reload failed, one problem per line as `--config.check` prints them; () when it worked.
    last_reload_problems: tuple[str, ...] = ()
    generated: float
    targets: tuple[TargetStatus, ...]
    assessments: tuple[AssessmentStatus, ...]
    # The units of every other source (conformance packs, aggregators, ...), in display order.
    units: tuple[StatusRow, ...] = ()


StatusProvider = Callable[[], StatusReport]
"""Where the HTTP app gets the report of each /status request from."""


def ordered_targets(rows: Iterable[TargetStatus]) -> tuple[TargetStatus, ...]:
    return tuple(sorted(rows, key=lambda t: (not t.failing, t.region, t.account_id or "", t.role_arn or "", t.source)))


def ordered_units(rows: Iterable[StatusRow]) -> tuple[StatusRow, ...]:
    return tuple(
        sorted(rows, key=lambda u: (u.poll_success, u.region, u.account_id, u.source, u.kind, u.name.casefold()))
    )


def ordered_assessments(rows: Iterable[AssessmentStatus]) -> tuple[AssessmentStatus, ...]:
    return tuple(
        sorted(rows, key=lambda a: (a.poll_success, a.region, a.account_id, a.name.casefold(), a.assessment_id))
    )


@dataclass(frozen=True)
class Query:
    """The page's filter: `q` is matched case-insensitively against every shown text field of a row; `failing`
    keeps only the failing rows."""

    text: str = ""
    failing: bool = False

    @classmethod
    def parse(cls, params: dict[str, list[str]]) -> Query:
        return cls(
            text=(params.get("q") or [""])[0].strip()[:200],
            failing=(params.get("failing") or [""])[0] not in ("", "0", "false"),
        )

    def params(self) -> dict[str, str]:
        return {key: value for key, value in (("q", self.text), ("failing", "1" if self.failing else "")) if value}


def select(report: StatusReport, query: Query) -> StatusReport:
    """The report with only the rows `query` keeps, in the report's order."""
    needle = query.text.casefold()

    def keep(row: TargetStatus | AssessmentStatus | StatusRow, fields: Iterable[object]) -> bool:
        if query.failing and not row.failing:
            return False
        return not needle or any(needle in str(field).casefold() for field in fields if field is not None)

    if not needle and not query.failing:
        return report
    targets = tuple(
        t
        for t in report.targets
        if keep(t, (t.source, t.region, t.account_id, t.role_arn, t.state, t.error_code, t.error_message))
    )
    assessments = tuple(
        a
        for a in report.assessments
        if keep(
            a,
            (a.name, a.assessment_id, a.account_id, a.region, a.framework, a.status, a.state, a.error_code,
             a.error_message),
        )
    )  # fmt: skip
    units = tuple(
        u
        for u in report.units
        if keep(
            u,
            (u.source, u.kind, u.name, u.id, u.account_id, u.region, u.state, u.error_code, u.error_message,
             *(value for _, value in u.details)),
        )
    )  # fmt: skip
    return replace(report, targets=targets, assessments=assessments, units=units)


def totals(report: StatusReport) -> dict[str, int]:
    """How many targets, assessments and other units the report holds, and how many of them fail."""
    return {
        "targets": len(report.targets),
        "targets_failing": sum(t.failing for t in report.targets),
        "assessments": len(report.assessments),
        "assessments_failing": sum(a.failing for a in report.assessments),
        "units": len(report.units),
        "units_failing": sum(u.failing for u in report.units),
    }


@lru_cache(maxsize=4096)
def utc_iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def rfc3339(timestamp: float | None) -> str | None:
    return None if timestamp is None else utc_iso(int(timestamp))
