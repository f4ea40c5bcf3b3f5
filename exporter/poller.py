"""One poll cycle: every assessment of every target, concurrently within each target's limits, into a new Snapshot.

A failure never escapes a cycle: it becomes `poll_success=0` on the assessments it touched, their last good values
stay, and the next cycle tries again. A deleted assessment (ResourceNotFoundException) leaves the snapshot.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType

from exporter.aws import AuditManagerClient, AwsError
from exporter.config import Config, TargetConfig
from exporter.snapshot import AssessmentState, Snapshot, SnapshotStore

log = logging.getLogger(__name__)

NOT_FOUND = "ResourceNotFoundException"
NAME_REFRESH_SECONDS = 3600.0

_Key = tuple[str, str]


@dataclass(frozen=True)
class _Wanted:
    """An assessment this cycle polls, and the name the config gives it, if any."""

    assessment_id: str
    name: str | None


class Poller:
    """Polls the configured targets; `poll()` runs one cycle and publishes its Snapshot."""

    def __init__(
        self,
        config: Config,
        clients: Sequence[AuditManagerClient],
        store: SnapshotStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._targets = list(zip(config.targets, clients, strict=True))
        self._max_concurrency = config.max_concurrency
        self._store = store
        self._clock = clock
        self._stop = threading.Event()
        self._accounts: dict[int, str] = {}
        self._names: dict[_Key, str] = {}
        self._names_listed_at: dict[int, float] = {}

    def stop(self) -> None:
        """Make a running cycle skip the requests it has not started yet."""
        self._stop.set()

    def poll(self) -> Snapshot:
        """Run one cycle over every target and publish the resulting Snapshot (unless stopped meanwhile)."""
        previous = self._store.get()
        known = {(s.region, s.assessment_id): s for s in previous.assessments}
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(self._targets), thread_name_prefix="poll-target") as pool:
            results = list(pool.map(lambda i: self._poll_target(i, known), range(len(self._targets))))
        durations: dict[str, float] = {}
        states: list[AssessmentState] = []
        for region, seconds, target_states in results:
            durations[region] = max(durations.get(region, 0.0), seconds)
            states.extend(target_states)
        states.sort(key=lambda s: (s.account_id, s.region, s.assessment_id))
        snapshot = Snapshot(tuple(states), MappingProxyType(durations), previous.completed_cycles + 1)
        if self._stop.is_set():
            return snapshot
        self._store.publish(snapshot)
        failed = sum(not s.poll_success for s in states)
        log.info(
            "poll cycle finished",
            extra={
                "assessments": len(states),
                "failed": failed,
                "duration_seconds": round(time.monotonic() - started, 3),
            },
        )
        return snapshot

    def _poll_target(self, index: int, known: dict[_Key, AssessmentState]) -> tuple[str, float, list[AssessmentState]]:
        target, client = self._targets[index]
        started = time.monotonic()
        wanted = [_Wanted(a.id, a.name) for a in target.assessments]
        gone: set[str] = set()
        try:
            account_id = self._account_id(index, wanted, client, gone)
            self._refresh_names(index, wanted, client)
        except AwsError as error:
            _log_failure("cannot resolve target", error, region=target.region)
            kept = [
                _failed(known[target.region, w.assessment_id])
                for w in wanted
                if (target.region, w.assessment_id) in known
            ]
            return target.region, time.monotonic() - started, kept
        wanted = [w for w in wanted if w.assessment_id not in gone]
        with ThreadPoolExecutor(max_workers=self._max_concurrency, thread_name_prefix="poll") as pool:
            polled = pool.map(lambda w: self._poll_assessment(target, client, account_id, w, known), wanted)
            states = [state for state in polled if state is not None]
        return target.region, time.monotonic() - started, states

    def _account_id(self, index: int, wanted: list[_Wanted], client: AuditManagerClient, gone: set[str]) -> str:
        """The target's account id, from GetAssessment on its first assessment that exists; asked once per target."""
        if index in self._accounts:
            return self._accounts[index]
        for assessment in wanted:
            try:
                meta = client.assessment(assessment.assessment_id)
            except AwsError as error:
                if error.code != NOT_FOUND:
                    raise
                gone.add(assessment.assessment_id)
                continue
            self._names[client.region, meta.assessment_id] = meta.name
            self._accounts[index] = meta.account_id or ""
            return self._accounts[index]
        raise AwsError(NOT_FOUND, "none of the target's assessments exists")

    def _refresh_names(self, index: int, wanted: list[_Wanted], client: AuditManagerClient) -> None:
        """Names AWS reports, listed at most once per NAME_REFRESH_SECONDS and only when the config lacks some."""
        now = self._clock()
        if all(w.name for w in wanted) or now - self._names_listed_at.get(index, -NAME_REFRESH_SECONDS) < (
            NAME_REFRESH_SECONDS
        ):
            return
        try:
            listed = client.list_assessments()
        except AwsError as error:
            _log_failure("cannot list assessment names", error, region=client.region)
            return
        self._names_listed_at[index] = now
        for meta in listed:
            self._names[client.region, meta.assessment_id] = meta.name

    def _poll_assessment(
        self,
        target: TargetConfig,
        client: AuditManagerClient,
        account_id: str,
        wanted: _Wanted,
        known: dict[_Key, AssessmentState],
    ) -> AssessmentState | None:
        key = (target.region, wanted.assessment_id)
        previous = known.get(key)
        if self._stop.is_set():
            return previous
        name = wanted.name or self._names.get(key) or (previous.name if previous else wanted.assessment_id)
        try:
            insights = client.assessment_insights(wanted.assessment_id)
        except AwsError as error:
            _log_failure("poll failed", error, region=target.region, assessment_id=wanted.assessment_id)
            if error.code == NOT_FOUND:
                return None
            if previous is not None:
                return _failed(previous)
            return AssessmentState(account_id, target.region, wanted.assessment_id, name, None, False, None)
        return AssessmentState(account_id, target.region, wanted.assessment_id, name, insights, True, self._clock())


def _failed(state: AssessmentState) -> AssessmentState:
    return dataclasses.replace(state, poll_success=False)


def _log_failure(message: str, error: AwsError, **fields: str) -> None:
    log.warning(
        message,
        extra={**fields, "error_code": error.code, "error": error.message},
        exc_info=log.isEnabledFor(logging.DEBUG),
    )
