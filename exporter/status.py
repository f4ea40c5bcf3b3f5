"""The /status page: the exporter's targets and assessments as HTML for people and JSON for scripts.

Both render a StatusReport, which the HTTP app gets from a provider callable; `report_from_snapshot` builds one
from the published Snapshot and the config. The report holds only fields named here, so no secret reaches the page.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from urllib.parse import urlencode

from exporter.config import Target
from exporter.snapshot import ReloadStatus, Snapshot

# An AWS error message may quote the request's access key id; it is masked before the page shows it.
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b")
MAX_MESSAGE = 500


@dataclass(frozen=True)
class TargetStatus:
    """One target (an account and region) and how its part of the latest poll cycle went."""

    region: str
    account_id: str | None
    role_arn: str | None
    discover: bool
    rate_limit: float
    last_cycle_start: float | None = None
    last_cycle_seconds: float | None = None
    assessments: int | None = None
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
class AssessmentStatus:
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

    @property
    def failing(self) -> bool:
        return not self.poll_success

    @property
    def state(self) -> str:
        return "failing" if self.failing else "ok"


@dataclass(frozen=True)
class StatusReport:
    """Everything /status shows, as of `generated` (Unix time). Rows are in display order: failing rows first,
    then by region, account and name (see `ordered_targets` and `ordered_assessments`)."""

    version: str
    started: float
    config_file: str | None
    last_reload: float
    last_reload_successful: bool
    completed_cycles: int
    generated: float
    targets: tuple[TargetStatus, ...]
    assessments: tuple[AssessmentStatus, ...]


StatusProvider = Callable[[], StatusReport]


def ordered_targets(rows: Iterable[TargetStatus]) -> tuple[TargetStatus, ...]:
    return tuple(sorted(rows, key=lambda t: (not t.failing, t.region, t.account_id or "", t.role_arn or "")))


def ordered_assessments(rows: Iterable[AssessmentStatus]) -> tuple[AssessmentStatus, ...]:
    return tuple(
        sorted(rows, key=lambda a: (a.poll_success, a.region, a.account_id, a.name.casefold(), a.assessment_id))
    )


def assessment_rows(snapshot: Snapshot) -> tuple[AssessmentStatus, ...]:
    """The snapshot's assessments with their details, in display order."""
    rows = []
    for state in snapshot.assessments:
        details = snapshot.details.get(state.key)
        rows.append(
            AssessmentStatus(
                state.name,
                state.assessment_id,
                state.account_id,
                state.region,
                details.framework if details else None,
                details.status if details else None,
                state.poll_success,
                state.last_success,
                state.error_code,
                _clean(state.error_message),
                state.insights.last_updated if state.insights else None,
            )
        )
    return ordered_assessments(rows)


class CachedAssessmentRows:
    """`assessment_rows` built once per snapshot: a snapshot never changes, and /status may be asked for often."""

    def __init__(self) -> None:
        self._latest: tuple[Snapshot, tuple[AssessmentStatus, ...]] | None = None

    def __call__(self, snapshot: Snapshot) -> tuple[AssessmentStatus, ...]:
        latest = self._latest
        if latest is not None and latest[0] is snapshot:
            return latest[1]
        rows = assessment_rows(snapshot)
        self._latest = (snapshot, rows)
        return rows


def report_from_snapshot(
    snapshot: Snapshot,
    targets: Sequence[Target],
    reload: ReloadStatus,
    *,
    version: str,
    started: float,
    config_file: str | None,
    next_poll: float | None,
    now: float | None = None,
    rows: Callable[[Snapshot], tuple[AssessmentStatus, ...]] = assessment_rows,
) -> StatusReport:
    """A StatusReport of the configured `targets`, joined with what the latest cycle in `snapshot` says of each,
    and of the snapshot's assessments (`rows` may be a CachedAssessmentRows)."""
    cycles = {cycle.target: cycle for cycle in snapshot.targets}
    target_rows = []
    for target in targets:
        row = TargetStatus(
            target.region,
            target.role_account_id,
            target.role_arn,
            target.discover,
            target.max_requests_per_second,
            next_poll=next_poll,
        )
        cycle = cycles.get(target)
        if cycle is not None:
            row = replace(
                row,
                account_id=cycle.account_id or row.account_id,
                last_cycle_start=cycle.started,
                last_cycle_seconds=cycle.seconds,
                assessments=cycle.assessments,
                failures=cycle.failures,
                requests=cycle.requests,
                peak_rate=cycle.peak_rate,
                error_code=cycle.error_code,
                error_message=_clean(cycle.error_message),
            )
        target_rows.append(row)
    return StatusReport(
        version,
        started,
        config_file,
        reload.last_attempt,
        reload.successful,
        snapshot.completed_cycles,
        time.time() if now is None else now,
        ordered_targets(target_rows),
        rows(snapshot),
    )


def _clean(message: str | None) -> str | None:
    if message is None:
        return None
    message = _ACCESS_KEY_ID.sub("[access key id]", message)
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


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

    def keep(row: TargetStatus | AssessmentStatus, fields: Iterable[object]) -> bool:
        if query.failing and not row.failing:
            return False
        return not needle or any(needle in str(field).casefold() for field in fields if field is not None)

    if not needle and not query.failing:
        return report
    targets = tuple(
        t
        for t in report.targets
        if keep(t, (t.region, t.account_id, t.role_arn, t.state, t.error_code, t.error_message))
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
    return replace(report, targets=targets, assessments=assessments)


# ---- JSON -------------------------------------------------------------------------------------------------------


def render_json(report: StatusReport, query: Query) -> bytes:
    """The selected report as JSON: times in RFC 3339 UTC, durations in seconds, like Prometheus's own API."""
    shown = select(report, query)
    document = {
        "version": shown.version,
        "started": _rfc3339(shown.started),
        "config_file": shown.config_file,
        "last_reload": _rfc3339(shown.last_reload),
        "last_reload_successful": shown.last_reload_successful,
        "completed_cycles": shown.completed_cycles,
        "generated": _rfc3339(shown.generated),
        "filter": query.params(),
        "totals": _totals(report),
        "targets": [
            {
                "state": t.state,
                "region": t.region,
                "account_id": t.account_id,
                "role_arn": t.role_arn,
                "discover": t.discover,
                "last_cycle_start": _rfc3339(t.last_cycle_start),
                "last_cycle_duration_seconds": t.last_cycle_seconds,
                "last_cycle_assessments": t.assessments,
                "last_cycle_failures": t.failures,
                "last_cycle_requests": t.requests,
                "peak_requests_per_second": t.peak_rate,
                "max_requests_per_second": t.rate_limit,
                "next_poll": _rfc3339(t.next_poll),
                "error_code": t.error_code,
                "error_message": t.error_message,
            }
            for t in shown.targets
        ],
        "assessments": [
            {
                "state": a.state,
                "name": a.name,
                "id": a.assessment_id,
                "account_id": a.account_id,
                "region": a.region,
                "framework": a.framework,
                "status": a.status,
                "poll_success": a.poll_success,
                "last_success": _rfc3339(a.last_success),
                "error_code": a.error_code,
                "error_message": a.error_message,
                "insights_last_updated": _rfc3339(a.insights_last_updated),
            }
            for a in shown.assessments
        ],
    }
    # Without indent, the json module's C encoder does the work: several times faster at 5000 assessments.
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _totals(report: StatusReport) -> dict[str, int]:
    return {
        "targets": len(report.targets),
        "targets_failing": sum(t.failing for t in report.targets),
        "assessments": len(report.assessments),
        "assessments_failing": sum(a.failing for a in report.assessments),
    }


@lru_cache(maxsize=4096)
def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _rfc3339(timestamp: float | None) -> str | None:
    return None if timestamp is None else _iso(int(timestamp))


# ---- HTML -------------------------------------------------------------------------------------------------------

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d1d1f;background:#fff}
h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.15em;margin:1.5em 0 .4em}
dl{display:flex;flex-wrap:wrap;gap:.3em 2em;margin:0}dl div{display:flex;gap:.5em}dt{color:#555}dd{margin:0}
form{margin:1em 0;display:flex;gap:.6em;align-items:center;flex-wrap:wrap}
input[type=search]{width:24em;padding:.3em}button{padding:.3em .9em}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3em .5em;border-bottom:1px solid #ddd;
vertical-align:top}th{background:#f4f4f6;position:sticky;top:0}
tr.failing td{background:#fff1f0}tr.failing td:first-child{border-left:4px solid #c9190b}
.badge{font-weight:600;font-size:.85em;padding:.05em .45em;border-radius:.3em;white-space:nowrap}
.failing .badge{background:#c9190b;color:#fff}.ok .badge{background:#dff0d8;color:#1e4f18}
.waiting .badge{background:#eee;color:#555}
.id{font-family:ui-monospace,monospace;font-size:.85em}.id,.nowrap,time{white-space:nowrap}
.name{min-width:12em}.muted{color:#666}.summary{font-size:1.05em}
.err{color:#8a1005}.err code{font-weight:600}
"""


def render_html(report: StatusReport, query: Query) -> bytes:
    """The selected report as one HTML page: no scripts, no external assets, a GET form for the filter."""
    shown = select(report, query)
    now = report.generated
    totals = _totals(report)
    e = html.escape
    reload = "ok" if report.last_reload_successful else "failed"
    json_link = "/status?" + urlencode({**query.params(), "format": "json"})
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        f"<title>Status · AWS Audit Manager exporter</title><style>{_STYLE}</style></head><body>",
        '<h1>AWS Audit Manager exporter: status</h1><p><a href="/">Home</a> · '
        f'<a href="{e(json_link)}">This page as JSON</a></p>',
        "<dl>",
        f"<div><dt>Version</dt><dd>{e(report.version)}</dd></div>",
        f"<div><dt>Started</dt><dd>{_when(report.started, now)}</dd></div>",
        f"<div><dt>Config file</dt><dd>{e(report.config_file or 'none (demo)')}</dd></div>",
        f"<div><dt>Last reload</dt><dd>{_when(report.last_reload, now)} ({reload})</dd></div>",
        f"<div><dt>Poll cycles</dt><dd>{report.completed_cycles} completed</dd></div>",
        f"<div><dt>Page time</dt><dd>{e(_iso(int(now)))}</dd></div>",
        "</dl>",
        f"<p class=summary><b>{totals['targets_failing']}</b> of {totals['targets']} targets failing · "
        f"<b>{totals['assessments_failing']}</b> of {totals['assessments']} assessments failing</p>",
        '<form method=get action="/status"><label for=q>Filter</label>',
        f'<input type=search id=q name=q value="{e(query.text)}" '
        'placeholder="name, id, account, region, framework, error">',
        f"<label><input type=checkbox name=failing value=1{' checked' if query.failing else ''}> failing only</label>",
        '<button type=submit>Filter</button> <a href="/status">Clear</a></form>',
        f"<h2>Targets ({len(shown.targets)} shown)</h2>",
        "<table id=targets><thead><tr><th>State</th><th>Region</th><th>Account</th><th>Role ARN</th>"
        "<th>Discovery</th><th>Last cycle</th><th>Duration</th><th>Failed</th><th>Next poll</th>"
        "<th>Peak rate / limit</th><th>Last error</th></tr></thead><tbody>",
    ]
    for t in shown.targets:
        polled = "—" if t.failures is None else f"{t.failures} of {t.assessments}"
        seconds = "—" if t.last_cycle_seconds is None else f"{t.last_cycle_seconds:.2f} s"
        peak = "—" if t.peak_rate is None else f"{t.peak_rate:g}"
        parts.append(
            f"<tr class={t.state}><td><span class=badge>{t.state.upper()}</span></td>"
            f"<td class=nowrap>{e(t.region)}</td><td>{e(t.account_id or 'unknown')}</td>"
            f"<td class=id>{e(t.role_arn or 'default credentials')}</td>"
            f"<td>{'on' if t.discover else 'off'}</td><td>{_when(t.last_cycle_start, now)}</td><td>{seconds}</td>"
            f"<td>{polled}</td><td>{_when(t.next_poll, now, '—')}</td>"
            f"<td class=nowrap>{peak} / {t.rate_limit:g} req/s</td>"
            f"<td>{_error(t.error_code, t.error_message)}</td></tr>"
        )
    parts += [
        "</tbody></table>",
        f"<h2>Assessments ({len(shown.assessments)} shown)</h2>",
        "<table id=assessments><thead><tr><th>State</th><th>Name</th><th>ID</th><th>Account</th><th>Region</th>"
        "<th>Framework</th><th>Status</th><th>Last success</th><th>Last error</th><th>Insights updated</th>"
        "</tr></thead><tbody>",
    ]
    for a in shown.assessments:
        state = a.state
        parts.append(
            f"<tr class={state}><td><span class=badge>{state.upper()}</span></td><td class=name>{e(a.name)}</td>"
            f"<td class=id>{e(a.assessment_id)}</td><td>{e(a.account_id or 'unknown')}</td>"
            f"<td class=nowrap>{e(a.region)}</td>"
            f"<td>{e(a.framework or '—')}</td><td>{e(a.status or '—')}</td><td>{_when(a.last_success, now)}</td>"
            f"<td>{_error(a.error_code, a.error_message)}</td><td>{_when(a.insights_last_updated, now)}</td></tr>"
        )
    if not shown.assessments:
        parts.append("<tr><td colspan=10 class=muted>No assessment matches.</td></tr>")
    parts.append("</tbody></table><p class=muted>Times are UTC; hover a time for the exact one.</p></body></html>\n")
    return "".join(parts).encode()


def _error(code: str | None, message: str | None) -> str:
    if code is None:
        return ""
    return f"<span class=err><code>{html.escape(code)}</code> {html.escape(message or '')}</span>"


def _when(timestamp: float | None, now: float, missing: str = "never") -> str:
    """A time as people read it ('3 min ago', 'in 40 s'), with the exact UTC time in its title."""
    if timestamp is None:
        return f"<span class=muted>{missing}</span>"
    return _time_element(int(timestamp), int(now))


# Thousands of rows share a handful of times (one cycle's successes, one day's insights): each is formatted once.
@lru_cache(maxsize=8192)
def _time_element(timestamp: int, now: int) -> str:
    exact = _iso(timestamp)
    return f'<time datetime="{exact}" title="{exact}">{_relative(timestamp - now)}</time>'


def _relative(delta: int) -> str:
    seconds = abs(delta)
    if seconds >= 86400:
        amount = f"{seconds // 86400} d"
    elif seconds >= 3600:
        amount = f"{seconds // 3600} h"
    elif seconds >= 60:
        amount = f"{seconds // 60} min"
    else:
        amount = f"{seconds} s"
    return f"in {amount}" if delta > 0 else f"{amount} ago"
