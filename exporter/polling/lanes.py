"""One target's tasks in a cycle, for any source: its lane, when its first task started and its last ended, its idle
connections closed as soon as it has no task left, and the cycle record of its part."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Protocol, TypeVar

from exporter.config import Target
from exporter.polling.workers import Lane
from exporter.snapshot import TargetCycle
from exporter.sources.base import Failure, SourceClient

_T = TypeVar("_T")


class _Polled(Protocol):
    @property
    def poll_success(self) -> bool: ...


class TargetTasks:
    """A cycle serves targets about one after the other, so few hold connections at once: the client's idle
    connections close when the target's last task ends. `fail` records the target-wide failure /status shows."""

    def __init__(self, lane: Lane, client: SourceClient, clock: Callable[[], float]) -> None:
        self._lane = lane
        self._client = client
        self._clock = clock
        self._lock = threading.Lock()
        self._left = 0
        self.started: float | None = None
        self.finished = clock()
        self.failure: Failure | None = None
        self._requests = client.requests_started
        client.take_peak_rate()

    def fail(self, failure: Failure) -> Failure:
        """Record a target-wide failure of this cycle; the latest one is shown. Returns it."""
        self.failure = failure
        return failure

    def record(
        self, source: str, target: Target, account_id: str | None, states: Iterable[_Polled], to_wall: float
    ) -> TargetCycle:
        """The target's part of the cycle for `source`; `to_wall` turns the monotonic clock into Unix time."""
        polled = list(states)
        started = self.finished if self.started is None else self.started
        return TargetCycle(
            source=source,
            target=target,
            account_id=account_id,
            started=started + to_wall,
            seconds=self.finished - started,
            units=len(polled),
            failures=sum(not s.poll_success for s in polled),
            requests=self._client.requests_started - self._requests,
            peak_rate=self._client.take_peak_rate(),
            error_code=self.failure.code if self.failure else None,
            error_message=self.failure.message if self.failure else None,
        )

    def expect(self, count: int) -> None:
        """Announce `count` tasks before submitting them, so that the target is not seen idle in between."""
        with self._lock:
            self._left += count

    def submit(self, task: Callable[[], _T]) -> Future[_T]:
        return self._lane.submit(functools.partial(self._run, task))

    def _run(self, task: Callable[[], _T]) -> _T:
        with self._lock:
            if self.started is None:
                self.started = self._clock()
        try:
            return task()
        finally:
            self._one_done(ran=True)

    def end_hold(self) -> None:
        """End a hold announced with `expect` that is not a task (a plan's, until its polls are submitted), so that
        the target is not idle, and its client not given back, in between."""
        self._one_done(ran=False)

    def _one_done(self, *, ran: bool) -> None:
        with self._lock:
            self._left -= 1
            if ran:
                self.finished = max(self.finished, self._clock())
            idle = self._left == 0
        if idle:
            self._client.close_idle_connections()


def results(futures: Iterable[Future[_T | None]]) -> list[_T]:
    """The results of the tasks that ran and returned something (a closed pool cancels the others)."""
    done = []
    for future in futures:
        if future.cancelled() or future.exception() is not None:
            continue
        result = future.result()
        if result is not None:
            done.append(result)
    return done
