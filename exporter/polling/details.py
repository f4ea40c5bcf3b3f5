"""The framework and status of each polled assessment (GetAssessment, for `auditmanager_assessment_info`), fetched
between cycles on the small background pool and the background slice of each target's rate."""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Future, wait

from exporter.aws import AssessmentMeta, AwsError
from exporter.polling.cycle import TargetRun
from exporter.polling.errors import log_aws_failure, report_unexpected
from exporter.polling.state import TargetMemory
from exporter.polling.workers import Workers
from exporter.snapshot import ApiCounters, AssessmentDetails, AssessmentKey

# Look-ups of one target at a time: with the background slice of its rate, more would only wait.
LANE_LIMIT = 2


def details_work(memory: TargetMemory, now: float, every: float) -> list[str]:
    """The polled assessments whose details were never asked for, or all of them once those of the target are
    older than `every` seconds of the monotonic clock (`now`)."""
    if memory.account_id is None:
        return []
    if memory.details_at is not None and now - memory.details_at >= every:
        return list(memory.polled)
    return [i for i in memory.polled if i not in memory.details_tried]


def fetch_details(
    runs: list[TargetRun],
    workers: Workers,
    now: float,
    every: float,
    stopped: Callable[[], bool],
    counters: ApiCounters,
) -> dict[AssessmentKey, AssessmentDetails]:
    """GetAssessment for each assessment `details_work` names, every target at once within its lane."""
    futures: list[tuple[TargetRun, str, Future[AssessmentMeta | None]]] = []
    for run in runs:
        memory, work = run.memory, details_work(run.memory, now, every)
        if not work or memory.account_id is None:
            continue
        if memory.details_at is None or now - memory.details_at >= every:
            memory.details_at = now
        memory.details_tried.update(work)
        lane = workers.background_lane(min(LANE_LIMIT, run.target.max_concurrency))
        futures += [
            (run, memory.account_id, lane.submit(functools.partial(_describe, run, i, stopped, counters))) for i in work
        ]
    wait([future for _, _, future in futures])
    details = {}
    for run, account_id, future in futures:
        meta = None if future.cancelled() or future.exception() is not None else future.result()
        if meta is not None and meta.framework is not None:
            details[account_id, run.target.region, meta.assessment_id] = AssessmentDetails(meta.framework, meta.status)
    return details


def _describe(
    run: TargetRun, assessment_id: str, stopped: Callable[[], bool], counters: ApiCounters
) -> AssessmentMeta | None:
    if stopped():
        return None
    fields = {"region": run.target.region, "assessment_id": assessment_id}
    try:
        return run.client.assessment(assessment_id, background=True)
    except AwsError as error:
        log_aws_failure("cannot read assessment details", error, **fields)
    except Exception as error:
        report_unexpected(counters, "GetAssessment", error, **fields)
    return None
