"""A StatusReport from what the poll service publishes: the Snapshot (its assessments, every source's units, and the
per-target cycle records its state owner keeps), the config's targets, the reload status and the scheduler's next poll.

The report holds only fields named in exporter.status.model, so no secret of the config, environment or web config
reaches it; AWS error messages are shortened and any access key id in them masked.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from exporter.config import Target
from exporter.snapshot import ReloadStatus, Snapshot, TargetCycle
from exporter.sources.base import StatusRow
from exporter.sources.registry import sources
from exporter.status.model import (
    AssessmentStatus,
    StatusReport,
    TargetStatus,
    ordered_assessments,
    ordered_targets,
    ordered_units,
)

# An AWS error message may quote the request's access key id; it is masked before the page shows it.
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b")
MAX_MESSAGE = 500


ASSESSMENT = "assessment"
"""The kind of the rows /status shows in its own table, Assessments (with framework, status and insights)."""


def assessment_rows(snapshot: Snapshot) -> tuple[AssessmentStatus, ...]:
    """The snapshot's assessments with their details, in display order."""
    rows = []
    for row in _rows(snapshot):
        if row.kind != ASSESSMENT:
            continue
        details = dict(row.details)
        rows.append(
            AssessmentStatus(
                row.name,
                row.id,
                row.account_id,
                row.region,
                details.get("framework"),
                details.get("status"),
                row.poll_success,
                row.last_success,
                row.error_code,
                _clean(row.error_message),
                row.updated,
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
    cycles = {(cycle.source, cycle.target): cycle for cycle in snapshot.targets}
    registered = sources()
    target_rows = []
    for target in targets:
        for source in target.sources:
            if source not in registered:
                continue
            discovers = registered[source].discovers(target)
            row = TargetStatus(
                source=source,
                region=target.region,
                account_id=target.role_account_id,
                role_arn=target.role_arn,
                discover=discovers,
                rate_limit=target.max_requests_per_second,
                next_poll=next_poll,
            )
            cycle = cycles.get((source, target))
            target_rows.append(row if cycle is None else _with_cycle(row, cycle))
    return StatusReport(
        version=version,
        started=started,
        config_file=config_file,
        last_reload=reload.last_attempt,
        last_reload_successful=reload.successful,
        last_successful_reload=reload.last_success,
        last_reload_problems=reload.problems,
        completed_cycles=snapshot.completed_cycles,
        generated=time.time() if now is None else now,
        targets=ordered_targets(target_rows),
        assessments=rows(snapshot),
        units=unit_rows(snapshot),
    )


def unit_rows(snapshot: Snapshot) -> tuple[StatusRow, ...]:
    """The rows of every registered source's units but assessments, errors cleaned, in display order."""
    return ordered_units(
        replace(row, error_message=_clean(row.error_message)) for row in _rows(snapshot) if row.kind != ASSESSMENT
    )


def _rows(snapshot: Snapshot) -> Iterator[StatusRow]:
    registered = sources()
    for name, part in snapshot.parts.items():
        if name in registered:
            yield from registered[name].status_rows(part)


def _with_cycle(row: TargetStatus, cycle: TargetCycle) -> TargetStatus:
    return replace(
        row,
        account_id=cycle.account_id or row.account_id,
        last_cycle_start=cycle.started,
        last_cycle_seconds=cycle.seconds,
        units=cycle.units,
        failures=cycle.failures,
        requests=cycle.requests,
        peak_rate=cycle.peak_rate,
        error_code=cycle.error_code,
        error_message=_clean(cycle.error_message),
    )


def _clean(message: str | None) -> str | None:
    if message is None:
        return None
    message = _ACCESS_KEY_ID.sub("[access key id]", message)
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"
