"""One poll cycle: every assessment of every target, on the shared workers within each target's limits, into a
CycleResult.

A failure never escapes. An AWS failure becomes `poll_success=0` on what it touched and the last good values stay;
an exception of the exporter's own code does the same for the one target or assessment it happened in. A deleted
assessment (ResourceNotFoundException) leaves, and so does one that discovery no longer lists as ACTIVE.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import CancelledError, Future, as_completed, wait
from dataclasses import dataclass, field
from typing import TypeVar

from exporter.aws import AuditManagerClient, AwsError, DescribedAssessment
from exporter.config import AUDIT_MANAGER, Target
from exporter.failures import EXPORTER_ERROR, log_aws_failure, report_unexpected
from exporter.polling.inventory import NOT_FOUND, Wanted, refresh_listing, resolve_account, wanted
from exporter.polling.lanes import TargetTasks, results
from exporter.polling.state import AccountKey, CycleResult, Lookup, TargetMemory, allowed, failed
from exporter.polling.workers import Workers
from exporter.sharding import Shard
from exporter.snapshot import (
    AccountState,
    ApiCounters,
    AssessmentKey,
    AssessmentState,
    ControlDomainInsights,
)
from exporter.sources.base import Failure

_T = TypeVar("_T")


@dataclass(frozen=True)
class TargetRun:
    """A target as a poller runs it: its config, its client and what is known about it."""

    target: Target
    client: AuditManagerClient
    memory: TargetMemory


@dataclass(frozen=True)
class CycleSettings:
    """What every cycle of one poller shares."""

    shard: Shard
    discovery_interval: float
    max_domain_series: int
    counters: ApiCounters
    wall_clock: Callable[[], float]
    monotonic: Callable[[], float]
    max_rule_series: int = 10000
    tag_labels: tuple[str, ...] = ()


@dataclass
class _Plan:
    """A prepared target: the account, what to poll, and what is already decided (failed or skipped)."""

    account_id: str | None = None
    wanted: list[Wanted] = field(default_factory=list)
    decided: list[AssessmentState] = field(default_factory=list)
    accounts: list[AccountState] = field(default_factory=list)
    lookup: DescribedAssessment | None = None


class Cycle:
    """One cycle over `runs`, started with what the service knew (`known`, `known_accounts`)."""

    def __init__(
        self,
        runs: list[TargetRun],
        settings: CycleSettings,
        workers: Workers,
        stopped: threading.Event,
        known: Mapping[AssessmentKey, AssessmentState],
        known_accounts: Mapping[AccountKey, AccountState],
    ) -> None:
        self._runs = runs
        self._settings = settings
        self._workers = workers
        self._stopped = stopped
        self._known = known
        self._known_accounts = known_accounts

    def run(self) -> CycleResult:
        clock = self._settings.monotonic
        started, wall_started = clock(), self._settings.wall_clock()
        work = [TargetTasks(self._workers.lane(run.target.max_concurrency), run.client, clock) for run in self._runs]
        own: list[list[AssessmentState]] = [[] for _ in self._runs]
        own_polls: list[list[Future[AssessmentState | None]]] = [[] for _ in self._runs]
        plans: dict[Future[_Plan], int] = {}
        for i, run in enumerate(self._runs):
            # The plan, and a hold until its polls are submitted: the target is not idle in between, so its client
            # is built once for the whole cycle.
            work[i].expect(2)
            plans[work[i].submit(functools.partial(self._prepare, run, work[i]))] = i
        polls: list[Future[AssessmentState | None]] = []
        account_polls: list[Future[AccountState | None]] = []
        decided: list[AssessmentState] = []
        accounts: list[AccountState] = []
        lookups: dict[AssessmentKey, Lookup] = {}
        for done in as_completed(plans):
            i, run = plans[done], self._runs[plans[done]]
            try:
                if done.cancelled():
                    continue
                error = done.exception()
                if isinstance(error, Exception) and not isinstance(error, CancelledError):
                    # Preparing is guarded where it calls AWS; this is anything else it met (a closed pool cancels).
                    report_unexpected(self._settings.counters, "ListAssessments", error, region=run.target.region)
                if error is not None:
                    continue
                plan = done.result()
                decided += plan.decided
                accounts += plan.accounts
                own[i] += plan.decided
                if plan.account_id is None:
                    continue
                account_id, region = plan.account_id, run.target.region
                if plan.lookup is not None:
                    described = plan.lookup
                    tags = allowed(described.tags, self._settings.tag_labels)
                    lookups[account_id, region, described.assessment_id] = Lookup(
                        described.framework_name, described.status, described.arn, tags
                    )
                polls_account = self._settings.shard.polls_accounts
                work[i].expect(len(plan.wanted) + polls_account)
                if polls_account:
                    poll_account = functools.partial(self._poll_account, run, work[i], account_id)
                    account_polls.append(work[i].submit(poll_account))
                own_polls[i] = [
                    work[i].submit(functools.partial(self._poll_assessment, run, account_id, w)) for w in plan.wanted
                ]
                polls += own_polls[i]
            finally:
                work[i].end_hold()
        wait(polls)
        wait(account_polls)
        to_wall = wall_started - started
        durations: dict[str, float] = {}
        for run, tasks in zip(self._runs, work, strict=True):
            region = run.target.region
            durations[region] = max(durations.get(region, 0.0), tasks.finished - started)
        targets = [
            tasks.record(AUDIT_MANAGER, run.target, run.memory.account_id, [*own[i], *results(own_polls[i])], to_wall)
            for i, (run, tasks) in enumerate(zip(self._runs, work, strict=True))
        ]
        # Two targets may reach the same assessment (one configured, one discovering): publish it once.
        states = sorted(
            _unique([*decided, *results(polls)], lambda s: s.key),
            key=lambda s: s.key,
        )
        states, dropped = _limit_control_domains(states, self._settings.max_domain_series)
        return CycleResult(
            assessments=states,
            accounts=_unique([*accounts, *results(account_polls)], lambda a: (a.account_id, a.region)),
            durations=durations,
            lookups=lookups,
            control_domain_series_dropped=dropped,
            targets=targets,
        )

    def _prepare(self, run: TargetRun, tasks: TargetTasks) -> _Plan:
        """List (if due) and resolve the account of one target; an unexpected exception fails the target."""
        target, memory = run.target, run.memory
        if self._stopped.is_set():
            return _Plan()
        try:
            listing = refresh_listing(
                target,
                run.client,
                memory,
                self._settings.monotonic(),
                self._settings.discovery_interval,
                blocking=False,
            )
        except Exception as error:
            report_unexpected(self._settings.counters, "ListAssessments", error, region=target.region)
            return self._failed_target(run, wanted(target, memory), set(), _fail(tasks, _unexpected(error)))
        if listing is not None:
            _fail(tasks, (listing.code, listing.message))
        assessments = wanted(target, memory)
        if not assessments and memory.account_id is None:
            # Nothing to poll and no way to learn the account from Audit Manager: an empty result, not an error.
            return _Plan()
        gone: set[str] = set()
        try:
            lookup = resolve_account(run.client, memory, assessments, gone)
        except AwsError as error:
            log_aws_failure("cannot resolve target", error, region=target.region)
            return self._failed_target(run, assessments, gone, _fail(tasks, (error.code, error.message)))
        except Exception as error:
            report_unexpected(self._settings.counters, "GetAssessment", error, region=target.region)
            return self._failed_target(run, assessments, gone, _fail(tasks, _unexpected(error)))
        account_id = memory.account_id or ""
        if lookup is not None:
            # Its answer is this assessment's look-up, tags included: the look-ups between cycles need not ask again.
            now = self._settings.monotonic()
            memory.details_tried.add(lookup.assessment_id)
            memory.details_at = now if memory.details_at is None else memory.details_at
            memory.tags_at = now if memory.tags_at is None else memory.tags_at
        owned = [
            w
            for w in assessments
            if (w.configured or w.assessment_id not in gone)
            and self._settings.shard.owns(account_id, target.region, w.assessment_id)
        ]
        memory.polled = tuple(w.assessment_id for w in owned)
        return _Plan(account_id, owned, lookup=lookup)

    def _failed_target(
        self, run: TargetRun, assessments: list[Wanted], gone: set[str], error: tuple[str, str]
    ) -> _Plan:
        """A target that cannot be polled (with `error`, code and message): its assessments are failed polls.
        Those polled before keep their last values. The others get `poll_success` 0 so the failure shows (and
        alerts) from the first cycle: under their account if it is known and this shard owns them, else with an
        empty `account_id` from shard 0 only (no shard owns an assessment before its account is known)."""
        target, memory, shard = run.target, run.memory, self._settings.shard
        account_id = memory.account_id
        previous = {
            s.assessment_id: s
            for s in self._known.values()
            if s.region == target.region and account_id in (None, s.account_id)
        }
        decided = []
        for w in assessments:
            if w.assessment_id in gone and not w.configured:
                continue
            if w.assessment_id in previous:
                decided.append(failed(previous[w.assessment_id], error))
                continue
            if account_id is not None and not shard.owns(account_id, target.region, w.assessment_id):
                continue
            if account_id is None and not shard.polls_accounts:
                continue
            name = w.name or memory.names.get(w.assessment_id) or w.assessment_id
            decided.append(_without_values(target, account_id or "", w.assessment_id, name, None, error))
        account = self._known_accounts.get((account_id or "", target.region))
        accounts = [dataclasses.replace(account, poll_success=False)] if account and shard.polls_accounts else []
        return _Plan(decided=decided, accounts=accounts)

    def _poll_account(self, run: TargetRun, tasks: TargetTasks, account_id: str) -> AccountState | None:
        region = run.target.region
        previous = self._known_accounts.get((account_id, region))
        if self._stopped.is_set():
            return previous
        try:
            insights = run.client.account_insights()
        except Exception as error:
            if isinstance(error, AwsError):
                log_aws_failure("account insights poll failed", error, region=region, account_id=account_id)
                _fail(tasks, (error.code, error.message))
            else:
                report_unexpected(self._settings.counters, "GetInsights", error, region=region, account_id=account_id)
                _fail(tasks, _unexpected(error))
            if previous is None:
                return AccountState(account_id, region, None, False, None)
            return dataclasses.replace(previous, poll_success=False)
        return AccountState(account_id, region, insights, True, self._settings.wall_clock())

    def _poll_assessment(self, run: TargetRun, account_id: str, wanted: Wanted) -> AssessmentState | None:
        target, memory = run.target, run.memory
        previous = self._known.get((account_id, target.region, wanted.assessment_id))
        if self._stopped.is_set():
            return previous
        name = wanted.name or memory.names.get(wanted.assessment_id) or (previous.name if previous else None)
        name = name or wanted.assessment_id
        fields = {"region": target.region, "assessment_id": wanted.assessment_id}
        try:
            insights = run.client.assessment_insights(wanted.assessment_id)
        except Exception as error:
            if not isinstance(error, AwsError):
                report_unexpected(self._settings.counters, "GetInsightsByAssessment", error, **fields)
                reason = _unexpected(error)
            else:
                log_aws_failure("poll failed", error, **fields)
                if error.code == NOT_FOUND and not wanted.configured:
                    return None  # a discovered assessment AWS no longer has leaves
                reason = (error.code, error.message)
            if previous is not None and reason[0] != NOT_FOUND:
                return failed(previous, reason)
            # Never polled, or named in the config yet gone: a failed poll without values.
            last_success = previous.last_success if previous is not None else None
            return _without_values(target, account_id, wanted.assessment_id, name, last_success, reason)
        now = self._settings.wall_clock()
        state = AssessmentState(
            account_id=account_id,
            region=target.region,
            assessment_id=wanted.assessment_id,
            name=name,
            insights=insights,
            poll_success=True,
            last_success=now,
        )
        if not target.control_domains:
            return state
        domains: tuple[ControlDomainInsights, ...]
        try:
            domains = run.client.control_domain_insights(wanted.assessment_id)
        except Exception as error:
            if isinstance(error, AwsError):
                log_aws_failure("control domain poll failed", error, **fields)
            else:
                report_unexpected(self._settings.counters, "ListControlDomainInsightsByAssessment", error, **fields)
            return dataclasses.replace(
                state,
                control_domains=previous.control_domains if previous else (),
                control_domains_success=False,
                control_domains_last_success=previous.control_domains_last_success if previous else None,
            )
        return dataclasses.replace(
            state, control_domains=domains, control_domains_success=True, control_domains_last_success=now
        )


def _without_values(
    target: Target, account_id: str, assessment_id: str, name: str, last_success: float | None, error: tuple[str, str]
) -> AssessmentState:
    """A failed poll of an assessment with no values to keep (never polled, or gone although the config names it)."""
    state = AssessmentState(
        account_id=account_id,
        region=target.region,
        assessment_id=assessment_id,
        name=name,
        insights=None,
        poll_success=False,
        last_success=last_success,
        control_domains_success=False if target.control_domains else None,
    )
    return failed(state, error)


def _fail(tasks: TargetTasks, error: tuple[str, str]) -> tuple[str, str]:
    """Record a target-wide failure (code, message) on the target's cycle record; return it."""
    code, message = error
    tasks.fail(Failure(code=code, message=message))
    return error


def _unexpected(error: Exception) -> tuple[str, str]:
    """An exception of the exporter's own code, as the error /status shows (the log has its traceback)."""
    return EXPORTER_ERROR, f"{type(error).__name__}: {error}"


def _unique(items: Iterable[_T], key: Callable[[_T], object]) -> list[_T]:
    seen: set[object] = set()
    unique = []
    for item in items:
        if key(item) not in seen:
            seen.add(key(item))
            unique.append(item)
    return unique


def _limit_control_domains(states: list[AssessmentState], limit: int) -> tuple[list[AssessmentState], int]:
    """Keep control domains, in snapshot order, while their series fit in `limit`; return how many series did not."""
    remaining, dropped, limited = limit, 0, []
    for state in states:
        kept = []
        for domain in state.control_domains:
            if domain.series <= remaining:
                kept.append(domain)
                remaining -= domain.series
            else:
                dropped += domain.series
        limited.append(
            state
            if len(kept) == len(state.control_domains)
            else dataclasses.replace(state, control_domains=tuple(kept))
        )
    return limited, dropped
