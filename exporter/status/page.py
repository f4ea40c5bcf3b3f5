"""/status as one server-rendered HTML page: no scripts, no external assets, the filter a plain GET form."""

from __future__ import annotations

import html
from functools import lru_cache
from urllib.parse import urlencode

from exporter.config import AUDIT_MANAGER
from exporter.status.model import Query, StatusReport, select, totals, utc_iso

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
#reload-problems{margin:.6em 0}#reload-problems ul{margin:.2em 0;padding-left:1.5em}
"""


def render_html(report: StatusReport, query: Query) -> bytes:
    """The selected report as one HTML page: no scripts, no external assets, a GET form for the filter."""
    shown = select(report, query)
    now = report.generated
    counts = totals(report)
    e = html.escape
    reload = (
        "ok"
        if report.last_reload_successful
        else f"failed; the last that worked: {_when(report.last_successful_reload, now)}"
    )
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
        f"<div><dt>Page time</dt><dd>{e(utc_iso(int(now)))}</dd></div>",
        "</dl>",
        _reload_problems(report.last_reload_problems),
        f"<p class=summary><b>{counts['targets_failing']}</b> of {counts['targets']} targets failing · "
        f"<b>{counts['assessments_failing']}</b> of {counts['assessments']} assessments failing · "
        f"<b>{counts['units_failing']}</b> of {counts['units']} other units failing</p>",
        '<form method=get action="/status"><label for=q>Filter</label>',
        f'<input type=search id=q name=q value="{e(query.text)}" '
        'placeholder="name, id, account, region, framework, error">',
        f"<label><input type=checkbox name=failing value=1{' checked' if query.failing else ''}> failing only</label>",
        '<button type=submit>Filter</button> <a href="/status">Clear</a></form>',
        f"<h2>Targets ({len(shown.targets)} shown)</h2>",
        "<table id=targets><thead><tr><th>State</th><th>Region</th><th>Account</th><th>Role ARN</th>"
        "<th>Discovery</th><th>Last cycle</th><th>Duration</th><th>Failed</th><th>Next poll</th>"
        "<th>Peak rate / limit</th><th>Source</th><th>Last error</th></tr></thead><tbody>",
    ]
    for t in shown.targets:
        polled = "—" if t.failures is None else f"{t.failures} of {t.units}"
        seconds = "—" if t.last_cycle_seconds is None else f"{t.last_cycle_seconds:.2f} s"
        peak = "—" if t.peak_rate is None else f"{t.peak_rate:g}"
        parts.append(
            f"<tr class={t.state}><td><span class=badge>{t.state.upper()}</span></td>"
            f"<td class=nowrap>{e(t.region)}</td><td>{e(t.account_id or 'unknown')}</td>"
            f"<td class=id>{e(t.role_arn or 'default credentials')}</td>"
            f"<td>{'on' if t.discover else 'off'}</td><td>{_when(t.last_cycle_start, now)}</td><td>{seconds}</td>"
            f"<td>{polled}</td><td>{_when(t.next_poll, now, '—')}</td>"
            f"<td class=nowrap>{peak} / {t.rate_limit:g} req/s</td><td>{e(t.source)}</td>"
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
    parts.append("</tbody></table>")
    parts += _unit_table(shown, now)
    parts.append("<p class=muted>Times are UTC; hover a time for the exact one.</p></body></html>\n")
    return "".join(parts).encode()


def _unit_table(shown: StatusReport, now: float) -> list[str]:
    """The other sources' units (conformance packs with their score and rules, aggregators, ...); no table when
    the config polls no other source."""
    if not shown.units and not any(t.source != AUDIT_MANAGER for t in shown.targets):
        return []
    e = html.escape
    parts = [
        f"<h2>Conformance packs and other units ({len(shown.units)} shown)</h2>",
        "<table id=units><thead><tr><th>State</th><th>Source</th><th>Kind</th><th>Name</th><th>Account</th>"
        "<th>Region</th><th>Details</th><th>Last success</th><th>Last error</th></tr></thead><tbody>",
    ]
    for u in shown.units:
        details = " · ".join(f"{e(key)}: {e(value)}" for key, value in u.details if value)
        parts.append(
            f"<tr class={u.state}><td><span class=badge>{u.state.upper()}</span></td><td>{e(u.source)}</td>"
            f"<td>{e(u.kind)}</td><td class=name>{e(u.name)}</td><td>{e(u.account_id or 'unknown')}</td>"
            f"<td class=nowrap>{e(u.region)}</td><td>{details}</td><td>{_when(u.last_success, now)}</td>"
            f"<td>{_error(u.error_code, u.error_message)}</td></tr>"
        )
    if not shown.units:
        parts.append("<tr><td colspan=9 class=muted>No unit matches.</td></tr>")
    parts.append("</tbody></table>")
    return parts


def _error(code: str | None, message: str | None) -> str:
    if code is None:
        return ""
    return f"<span class=err><code>{html.escape(code)}</code> {html.escape(message or '')}</span>"


def _reload_problems(problems: tuple[str, ...]) -> str:
    """Why the latest reload failed, one problem per line; nothing when it worked."""
    if not problems:
        return ""
    items = "".join(f"<li>{html.escape(problem)}</li>" for problem in problems)
    return (
        "<div id=reload-problems class=err><b>The latest reload failed; the previous config stays in use:</b>"
        f"<ul>{items}</ul></div>"
    )


def _when(timestamp: float | None, now: float, missing: str = "never") -> str:
    """A time as people read it ('3 min ago', 'in 40 s'), with the exact UTC time in its title."""
    if timestamp is None:
        return f"<span class=muted>{missing}</span>"
    return _time_element(int(timestamp), int(now))


# Thousands of rows share a handful of times (one cycle's successes, one day's insights): each is formatted once.
@lru_cache(maxsize=8192)
def _time_element(timestamp: int, now: int) -> str:
    exact = utc_iso(timestamp)
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
