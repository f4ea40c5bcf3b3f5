"""The look-ups between cycles, on the small background pool and the background slice of each target's rate: one
GetAssessment per polled assessment, once (its framework never changes), and, with `tag_labels`, one
ListTagsForResource per known assessment every discovery interval."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from exporter.aws import AwsError, DescribedAssessment
from exporter.failures import log_aws_failure, report_unexpected
from exporter.polling.cycle import TargetRun
from exporter.polling.state import Lookup, TargetMemory, allowed
from exporter.polling.workers import Workers
from exporter.snapshot import ApiCounters, AssessmentKey

_T = TypeVar("_T")

# Look-ups of one target at a time: with the background slice of its rate, more would only wait.
LANE_LIMIT = 2


@dataclass(frozen=True)
class LookupResults:
    """What one round of look-ups learned: new look-ups, and the refreshed tags of known assessments."""

    lookups: Mapping[AssessmentKey, Lookup]
    tags: Mapping[AssessmentKey, Mapping[str, str]]


def lookup_work(memory: TargetMemory, known: set[str], now: float, every: float) -> list[str]:
    """The polled assessments never looked up: those not yet tried in the current period, or all of them once
    the period is older than `every` seconds of the monotonic clock (`now`), so a failed look-up is retried once
    a period."""
    if memory.account_id is None:
        return []
    new = [i for i in memory.polled if i not in known]
    if memory.details_at is not None and now - memory.details_at >= every:
        return new
    return [i for i in new if i not in memory.details_tried]


def tags_due(memory: TargetMemory, now: float, every: float) -> bool:
    """Whether the target's tags are due: never refreshed (a new target, or the allow-list changed), or refreshed
    `every` seconds ago or more."""
    return memory.account_id is not None and (memory.tags_at is None or now - memory.tags_at >= every)


def fetch_lookups(
    runs: list[TargetRun],
    workers: Workers,
    known: Mapping[AssessmentKey, str],
    tag_labels: tuple[str, ...],
    timing: tuple[float, float],
    stopped: Callable[[], bool],
    counters: ApiCounters,
) -> LookupResults:
    """GetAssessment for each assessment `lookup_work` names, and, when the tags are due and `tag_labels` names
    some, ListTagsForResource for each polled assessment looked up before (`known`: its ARN); every target at once
    within its lane. `timing` is (now on the monotonic clock, the discovery interval)."""
    now, every = timing
    lookups: list[tuple[AssessmentKey, Future[DescribedAssessment | None]]] = []
    refreshes: list[tuple[AssessmentKey, Future[Mapping[str, str] | None]]] = []
    for run in runs:
        memory, account_id, region = run.memory, run.memory.account_id, run.target.region
        if account_id is None:
            continue
        arns = {key[2]: arn for key, arn in known.items() if key[:2] == (account_id, region)}
        work = lookup_work(memory, set(arns), now, every)
        if memory.details_at is None or now - memory.details_at >= every:
            memory.details_at, memory.details_tried = now, set()
        memory.details_tried.update(work)
        tagged: list[str] = []
        if tags_due(memory, now, every):
            memory.tags_at = now
            tagged = [i for i in memory.polled if i in arns] if tag_labels else []
        lane = workers.background_lane(min(LANE_LIMIT, run.target.max_concurrency))
        describing = [
            ((account_id, region, i), lane.submit(functools.partial(_describe, run, i, stopped, counters)))
            for i in work
        ]
        tagging = [
            ((account_id, region, i), lane.submit(functools.partial(_list_tags, run, i, arns[i], stopped, counters)))
            for i in tagged
        ]
        _release_when_done(run, [future for _, future in describing] + [future for _, future in tagging])
        lookups += describing
        refreshes += tagging
    wait([future for _, future in lookups])
    wait([future for _, future in refreshes])
    return LookupResults(
        {
            key: Lookup(described.framework_name, described.status, described.arn, allowed(described.tags, tag_labels))
            for key, future in lookups
            if (described := _result(future)) is not None
        },
        {key: tags for key, future in refreshes if (tags := _result(future)) is not None},
    )


def _release_when_done(run: TargetRun, futures: list[Future[Any]]) -> None:
    """Give the target's client back once its last look-up has ended, so that a round over many targets holds the
    clients of the few it is working on, not of all it has served."""
    left = len(futures)
    lock = threading.Lock()

    def done(_: Future[Any]) -> None:
        nonlocal left
        with lock:
            left -= 1
            last = left == 0
        if last:
            run.client.close_idle_connections()

    for future in futures:
        future.add_done_callback(done)


def _result(future: Future[_T | None]) -> _T | None:
    """A task's answer; None if it failed or never ran (a closed pool cancels the queued tasks)."""
    return None if future.cancelled() or future.exception() is not None else future.result()


def _describe(
    run: TargetRun, assessment_id: str, stopped: Callable[[], bool], counters: ApiCounters
) -> DescribedAssessment | None:
    if stopped():
        return None
    fields = {"region": run.target.region, "assessment_id": assessment_id}
    try:
        return run.client.describe_assessment(assessment_id, background=True)
    except AwsError as error:
        log_aws_failure("cannot read assessment details", error, **fields)
    except Exception as error:
        report_unexpected(counters, "GetAssessment", error, **fields)
    return None


def _list_tags(
    run: TargetRun, assessment_id: str, arn: str, stopped: Callable[[], bool], counters: ApiCounters
) -> Mapping[str, str] | None:
    if stopped():
        return None
    fields = {"region": run.target.region, "assessment_id": assessment_id}
    try:
        return run.client.list_tags(arn, background=True)
    except AwsError as error:
        log_aws_failure("cannot read assessment tags", error, **fields)
    except Exception as error:
        report_unexpected(counters, "ListTagsForResource", error, **fields)
    return None
