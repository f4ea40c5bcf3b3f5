"""One poll cycle: every assessment of every target, configured or discovered, concurrently within each target's
limits, into a new Snapshot; and, between cycles, the refresh of each assessment's framework and status.

A failure never escapes: it becomes `poll_success=0` on the assessments it touched, their last good values stay,
and the next cycle tries again. A deleted assessment (ResourceNotFoundException) leaves the snapshot, and so does
one that discovery no longer lists as ACTIVE.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from exporter.aws import AssessmentMeta, AuditManagerClient, AwsError
from exporter.config import Config, Target
from exporter.snapshot import (
    AccountState,
    AssessmentDetails,
    AssessmentKey,
    AssessmentState,
    ControlDomainInsights,
    Snapshot,
    SnapshotStore,
    TargetCycle,
)

log = logging.getLogger(__name__)

NOT_FOUND = "ResourceNotFoundException"
ACCOUNT_LOOKUP_FAILURES = 3
ACTIVE = "ACTIVE"
_T = TypeVar("_T")


def shard_of(account_id: str, region: str, assessment_id: str, count: int) -> int:
    """The shard that polls an assessment: a SHA-256 of "account/region/assessment", the same in every process
    (unlike `hash()`, which Python salts per process)."""
    digest = hashlib.sha256(f"{account_id}/{region}/{assessment_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class Shard:
    """This replica's share of the assessments (`--shard.index` of `--shard.count`)."""

    index: int = 0
    count: int = 1

    def owns(self, account_id: str, region: str, assessment_id: str) -> bool:
        return shard_of(account_id, region, assessment_id, self.count) == self.index

    @property
    def polls_accounts(self) -> bool:
        """Only shard 0 polls the account-level insights, so replicas do not publish them twice."""
        return self.index == 0


UNSHARDED = Shard()


@dataclass(frozen=True)
class _Wanted:
    """An assessment this cycle polls, and the name the config gives it, if any."""

    assessment_id: str
    name: str | None


@dataclass(frozen=True)
class _TargetResult:
    region: str
    seconds: float
    states: list[AssessmentState]
    account: AccountState | None = None


class _TargetState:
    """What the poller remembers about one target between cycles."""

    def __init__(self, target: Target, client: AuditManagerClient) -> None:
        self.target = target
        self.client = client
        self.account_id = target.role_account_id
        self.names: dict[str, str] = {}
        self.discovered: tuple[str, ...] = ()
        self.listed_at: float | None = None
        self.polled: tuple[str, ...] = ()
        self.details_at: float | None = None
        self.details_tried: set[str] = set()
        # The latest target-wide failure of the running cycle, for /status.
        self.error: AwsError | None = None

    def cycle(self, started: float, result: _TargetResult, requests: int) -> TargetCycle:
        """How this target's part of a cycle went, from its result and the requests it started meanwhile."""
        return TargetCycle(
            self.target,
            self.account_id,
            started,
            result.seconds,
            len(result.states),
            sum(not s.poll_success for s in result.states),
            requests,
            self.client.take_peak_rate(),
            self.error.code if self.error else None,
            self.error.message if self.error else None,
        )


class Poller:
    """Polls the configured targets; `poll()` runs one cycle and publishes its Snapshot, `refresh_details()`
    fetches the frameworks for `auditmanager_assessment_info` outside the cycle."""

    def __init__(
        self,
        config: Config,
        clients: Sequence[AuditManagerClient],
        store: SnapshotStore,
        *,
        shard: Shard = UNSHARDED,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._targets = [_TargetState(t, c) for t, c in zip(config.expanded_targets(), clients, strict=True)]
        self._discovery_interval = config.discovery_interval
        self._max_domain_series = config.max_control_domain_series
        self._shard = shard
        self._store = store
        self._clock = clock
        self._stop = threading.Event()
        self._publish_lock = threading.Lock()
        # Kept across a reload, so assessment_info does not vanish until the new poller has refreshed it.
        self._details: dict[AssessmentKey, AssessmentDetails] = dict(store.get().details)

    def stop(self) -> None:
        """Make a running cycle or details refresh skip the requests it has not started yet, and publish nothing."""
        self._stop.set()

    def poll(self) -> Snapshot:
        """Run one cycle over every target and publish the resulting Snapshot (unless stopped meanwhile)."""
        previous = self._store.get()
        known = {s.key: s for s in previous.assessments}
        known_accounts = {(a.account_id, a.region): a for a in previous.accounts}
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(self._targets), thread_name_prefix="poll-target") as pool:
            cycles = list(pool.map(lambda t: self._timed_poll_target(t, known, known_accounts), self._targets))
        results = [result for result, _ in cycles]
        durations: dict[str, float] = {}
        for result in results:
            durations[result.region] = max(durations.get(result.region, 0.0), result.seconds)
        # Two targets may reach the same assessment (one configured, one discovering): publish it once.
        states = sorted(_unique((s for r in results for s in r.states), lambda s: s.key), key=lambda s: s.key)
        states, dropped = _limit_control_domains(states, self._max_domain_series)
        accounts = sorted(
            _unique((r.account for r in results if r.account), lambda a: (a.account_id, a.region)),
            key=lambda a: (a.account_id, a.region),
        )
        with self._publish_lock:
            polled = {s.key for s in states}
            self._details = {key: value for key, value in self._details.items() if key in polled}
            snapshot = Snapshot(
                tuple(states),
                MappingProxyType(durations),
                previous.completed_cycles + 1,
                tuple(accounts),
                MappingProxyType(dict(self._details)),
                previous.control_domain_series_dropped + dropped,
                targets=tuple(cycle for _, cycle in cycles),
            )
            if self._stop.is_set():
                return snapshot
            self._store.publish(snapshot)
        if dropped:
            log.warning(
                "control-domain series over max_control_domain_series left out",
                extra={"dropped": dropped, "limit": self._max_domain_series},
            )
        log.info(
            "poll cycle finished",
            extra={
                "assessments": len(states),
                "failed": sum(not s.poll_success for s in states),
                "duration_seconds": round(time.monotonic() - started, 3),
            },
        )
        return snapshot

    def _timed_poll_target(
        self,
        state: _TargetState,
        known: dict[AssessmentKey, AssessmentState],
        known_accounts: dict[tuple[str, str], AccountState],
    ) -> tuple[_TargetResult, TargetCycle]:
        started, requests = self._clock(), state.client.requests_started
        state.client.take_peak_rate()
        state.error = None
        result = self._poll_target(state, known, known_accounts)
        return result, state.cycle(started, result, state.client.requests_started - requests)

    def _poll_target(
        self,
        state: _TargetState,
        known: dict[AssessmentKey, AssessmentState],
        known_accounts: dict[tuple[str, str], AccountState],
    ) -> _TargetResult:
        target = state.target
        started = time.monotonic()
        self._refresh_listing(state)
        wanted = _wanted(state)
        if not wanted and state.account_id is None:
            # Nothing to poll and no way to learn the account from Audit Manager: an empty result, not an error.
            return _TargetResult(target.region, time.monotonic() - started, [])
        gone: set[str] = set()
        try:
            account_id = self._account_id(state, wanted, gone)
        except AwsError as error:
            _log_failure("cannot resolve target", error, region=target.region)
            state.error = error
            return _TargetResult(
                target.region, time.monotonic() - started, self._unresolved(state, wanted, gone, known, error)
            )
        wanted = [
            w
            for w in wanted
            if w.assessment_id not in gone and self._shard.owns(account_id, target.region, w.assessment_id)
        ]
        state.polled = tuple(w.assessment_id for w in wanted)
        with ThreadPoolExecutor(max_workers=target.max_concurrency, thread_name_prefix="poll") as pool:
            account = (
                pool.submit(self._poll_account, state, account_id, known_accounts)
                if self._shard.polls_accounts
                else None
            )
            polled = pool.map(lambda w: self._poll_assessment(state, account_id, w, known), wanted)
            states = [s for s in polled if s is not None]
            return _TargetResult(
                target.region, time.monotonic() - started, states, account.result() if account else None
            )

    def _refresh_listing(self, state: _TargetState) -> None:
        """ListAssessments at most once per discovery_interval: the ACTIVE assessments for `discover`, and the
        names of configured assessments the config does not name. On failure the previous listing stays."""
        target = state.target
        unnamed = {a.id for a in target.assessments if not a.name}
        now = self._clock()
        if not (target.discover or unnamed) or (
            state.listed_at is not None and now - state.listed_at < self._discovery_interval
        ):
            return
        try:
            active = state.client.list_assessments(ACTIVE) if target.discover else []
            listed = active
            if unnamed - {m.assessment_id for m in active}:
                listed = [*active, *state.client.list_assessments()]
        except AwsError as error:
            _log_failure("cannot list assessments", error, region=target.region)
            state.error = error
            return
        state.listed_at = now
        state.names.update((m.assessment_id, m.name) for m in listed)
        if target.discover:
            state.discovered = tuple(m.assessment_id for m in active if m.status == ACTIVE and target.wants(m.name))
            log.debug("discovered assessments", extra={"region": target.region, "count": len(state.discovered)})

    def _account_id(self, state: _TargetState, wanted: list[_Wanted], gone: set[str]) -> str:
        """The target's account: from role_arn, else from GetAssessment on its first assessment that answers,
        asked once per target. One assessment's failure moves on to the next, up to ACCOUNT_LOOKUP_FAILURES
        failures a cycle (a target-wide failure, such as AccessDenied, would otherwise cost a call per assessment)."""
        if state.account_id is not None:
            return state.account_id
        failure = AwsError(NOT_FOUND, "none of the target's assessments exists")
        failures = 0
        for assessment in wanted:
            if failures == ACCOUNT_LOOKUP_FAILURES:
                break
            try:
                meta = state.client.assessment(assessment.assessment_id)
            except AwsError as error:
                if error.code == NOT_FOUND:
                    gone.add(assessment.assessment_id)
                else:
                    failure, failures = error, failures + 1
                continue
            state.names[meta.assessment_id] = meta.name
            state.account_id = meta.account_id or ""
            self._record_details(state, meta)
            return state.account_id
        raise failure

    def _unresolved(
        self,
        state: _TargetState,
        wanted: list[_Wanted],
        gone: set[str],
        known: dict[AssessmentKey, AssessmentState],
        error: AwsError,
    ) -> list[AssessmentState]:
        """A target whose account is unknown cannot be polled: its assessments are failed polls. Those polled
        before keep their last values; the others get `poll_success` 0 with an empty `account_id`, so that the
        failure shows per assessment (and alerts) from the first cycle on."""
        region = state.target.region
        # The account is unknown here, so known states are matched on region and id (ids are UUIDs).
        previous = {s.assessment_id: s for s in known.values() if s.region == region}
        states = []
        for w in wanted:
            if w.assessment_id in gone:
                continue
            if w.assessment_id in previous:
                states.append(_failed(previous[w.assessment_id], error))
            elif self._shard.owns("", region, w.assessment_id):
                name = w.name or state.names.get(w.assessment_id) or w.assessment_id
                states.append(_failed(AssessmentState("", region, w.assessment_id, name, None, False, None), error))
        return states

    def _poll_account(
        self, state: _TargetState, account_id: str, known: dict[tuple[str, str], AccountState]
    ) -> AccountState | None:
        previous = known.get((account_id, state.target.region))
        if self._stop.is_set():
            return previous
        try:
            insights = state.client.account_insights()
        except AwsError as error:
            _log_failure("account insights poll failed", error, region=state.target.region, account_id=account_id)
            state.error = error
            return previous
        return AccountState(account_id, state.target.region, insights)

    def _poll_assessment(
        self,
        state: _TargetState,
        account_id: str,
        wanted: _Wanted,
        known: dict[AssessmentKey, AssessmentState],
    ) -> AssessmentState | None:
        target, client = state.target, state.client
        previous = known.get((account_id, target.region, wanted.assessment_id))
        if self._stop.is_set():
            return previous
        name = wanted.name or state.names.get(wanted.assessment_id) or (previous.name if previous else None)
        name = name or wanted.assessment_id
        try:
            insights = client.assessment_insights(wanted.assessment_id)
        except AwsError as error:
            _log_failure("poll failed", error, region=target.region, assessment_id=wanted.assessment_id)
            if error.code == NOT_FOUND:
                return None
            fresh = AssessmentState(account_id, target.region, wanted.assessment_id, name, None, False, None)
            return _failed(previous or fresh, error)
        domains: tuple[ControlDomainInsights, ...] = ()
        if target.control_domains:
            try:
                domains = client.control_domain_insights(wanted.assessment_id)
            except AwsError as error:
                _log_failure(
                    "control domain poll failed", error, region=target.region, assessment_id=wanted.assessment_id
                )
                domains = previous.control_domains if previous else ()
        return AssessmentState(
            account_id, target.region, wanted.assessment_id, name, insights, True, self._clock(), domains
        )

    def details_due(self) -> bool:
        """Whether `refresh_details` has work: a polled assessment whose details were never asked for, or a
        target whose details are older than discovery_interval."""
        now = self._clock()
        return any(self._details_work(state, now) for state in self._targets)

    def refresh_details(self) -> None:
        """GetAssessment for each polled assessment whose framework and status are unknown or due, within each
        target's limits, then publish them in a copy of the current Snapshot.

        Runs outside the poll cycle: it costs one call per assessment, which the cycle must not wait for.
        """
        now = self._clock()
        with ThreadPoolExecutor(max_workers=len(self._targets), thread_name_prefix="details-target") as pool:
            fetched = list(pool.map(lambda state: self._fetch_details(state, now), self._targets))
        with self._publish_lock:
            for details in fetched:
                self._details.update(details)
            if self._stop.is_set():
                return
            current = self._store.get()
            polled = {s.key for s in current.assessments}
            details = {key: value for key, value in self._details.items() if key in polled}
            self._store.publish(dataclasses.replace(current, details=MappingProxyType(details)))

    def _record_details(self, state: _TargetState, meta: AssessmentMeta) -> None:
        """Keep what the account lookup's GetAssessment said, so the details refresh need not ask again."""
        state.details_tried.add(meta.assessment_id)
        if state.details_at is None:
            state.details_at = self._clock()
        if meta.framework is not None and state.account_id is not None:
            with self._publish_lock:
                key = (state.account_id, state.target.region, meta.assessment_id)
                self._details[key] = AssessmentDetails(meta.framework, meta.status)

    def _details_work(self, state: _TargetState, now: float) -> list[str]:
        if state.account_id is None:
            return []
        if state.details_at is not None and now - state.details_at >= self._discovery_interval:
            return list(state.polled)
        return [i for i in state.polled if i not in state.details_tried]

    def _fetch_details(self, state: _TargetState, now: float) -> dict[AssessmentKey, AssessmentDetails]:
        account_id, work = state.account_id, self._details_work(state, now)
        if not work or account_id is None:
            return {}
        if state.details_at is None or now - state.details_at >= self._discovery_interval:
            state.details_at = now
        state.details_tried.update(work)
        with ThreadPoolExecutor(max_workers=state.target.max_concurrency, thread_name_prefix="details") as pool:
            metas = list(pool.map(lambda assessment_id: self._describe(state, assessment_id), work))
        return {
            (account_id, state.target.region, meta.assessment_id): AssessmentDetails(meta.framework, meta.status)
            for meta in metas
            if meta is not None and meta.framework is not None
        }

    def _describe(self, state: _TargetState, assessment_id: str) -> AssessmentMeta | None:
        if self._stop.is_set():
            return None
        try:
            return state.client.assessment(assessment_id)
        except AwsError as error:
            _log_failure(
                "cannot read assessment details", error, region=state.target.region, assessment_id=assessment_id
            )
            return None


def _wanted(state: _TargetState) -> list[_Wanted]:
    """The configured assessments, with their configured names, then the discovered ones not configured."""
    configured = {a.id: a.name for a in state.target.assessments}
    discovered = [i for i in state.discovered if i not in configured]
    return [_Wanted(i, configured.get(i)) for i in [*configured, *discovered]]


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


def _failed(state: AssessmentState, error: AwsError) -> AssessmentState:
    return dataclasses.replace(state, poll_success=False, error_code=error.code, error_message=error.message)


def _log_failure(message: str, error: AwsError, **fields: str) -> None:
    log.warning(
        message,
        extra={**fields, "error_code": error.code, "error": error.message},
        exc_info=log.isEnabledFor(logging.DEBUG),
    )
