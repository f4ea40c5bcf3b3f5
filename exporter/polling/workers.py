"""The bounded pools of worker threads shared by every target (one for poll cycles, a small one for the framework
look-ups between them), and the lanes that keep each target within its own concurrency inside them."""

from __future__ import annotations

import bisect
import functools
import itertools
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import Any, TypeVar

_T = TypeVar("_T")
_Task = tuple[Future[Any], Callable[[], Any]]

# One worker in this many goes to the framework look-ups, which run beside the cycles on a slice of the budget.
BACKGROUND_FRACTION = 8


class Workers:
    """At most `max_workers` threads, created on demand and kept, for every target's calls: most for the poll
    cycles, `max_workers // 8` (at least one) for the framework look-ups, so those never hold a cycle's threads."""

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        background = max(1, max_workers // BACKGROUND_FRACTION)
        self._cycle = Pool(max(1, max_workers - background), "poll")
        self._background = Pool(background, "details")

    def lane(self, limit: int) -> Lane:
        """A lane of the poll cycles' pool."""
        return self._cycle.lane(limit)

    def background_lane(self, limit: int) -> Lane:
        """A lane of the framework look-ups' pool."""
        return self._background.lane(limit)

    def close(self) -> None:
        """Cancel queued tasks and let the threads end once their running task has (without waiting for them)."""
        self._cycle.close()
        self._background.close()


class Lane:
    """One target's queue of tasks in a Pool: at most `limit` of them run at once, in the order submitted. `order`
    is its place among the pool's lanes: the older lane goes first."""

    def __init__(self, pool: Pool, limit: int, order: int) -> None:
        self.limit = max(1, limit)
        self.order = order
        self.pending: deque[_Task] = deque()
        self.running = 0
        self._pool = pool

    def submit(self, task: Callable[[], _T]) -> Future[_T]:
        future: Future[_T] = Future()
        self._pool.enqueue(self, (future, task))
        return future


class Pool:
    """A fixed number of threads running the tasks of many lanes. A free thread takes the next task of the oldest
    lane that may start one (the lane made first, even if its tasks came later), so lanes are served about one after
    the other rather than all at once: a target's plan and then its calls run together and end together, and few
    targets hold a client and connections at any moment. A task waiting for its turn holds no thread, so one slow
    target cannot block the threads the others need."""

    def __init__(self, size: int, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)
        self._free = size
        self._lanes: list[Lane] = []
        self._made = itertools.count()
        self._lock = threading.Lock()

    def lane(self, limit: int) -> Lane:
        with self._lock:
            return Lane(self, limit, next(self._made))

    def enqueue(self, lane: Lane, task: _Task) -> None:
        with self._lock:
            lane.pending.append(task)
            # A lane is queued exactly while it has tasks pending.
            if len(lane.pending) == 1:
                bisect.insort(self._lanes, lane, key=lambda queued: queued.order)
        self._dispatch()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            lanes, self._lanes = self._lanes, []
        for lane in lanes:
            while lane.pending:
                _fail(lane.pending.popleft()[0], CancelledError())

    def _dispatch(self) -> None:
        starts = []
        with self._lock:
            # From the oldest lane, only as far as there are free threads: a thousand queued lanes cost nothing
            # while every thread is busy.
            index = 0
            while self._free and index < len(self._lanes):
                lane = self._lanes[index]
                while self._free and lane.pending and lane.running < lane.limit:
                    starts.append((lane, lane.pending.popleft()))
                    lane.running += 1
                    self._free -= 1
                if lane.pending:
                    index += 1
                else:
                    del self._lanes[index]
        for lane, (future, task) in starts:
            try:
                run = self._executor.submit(self._run, future, task)
            except RuntimeError:
                # The pool was closed (the service stopped or a reload replaced it): the task never runs.
                self._finished(lane)
                _fail(future, CancelledError())
            else:
                run.add_done_callback(functools.partial(self._on_done, lane, future))

    def _run(self, future: Future[Any], task: Callable[[], Any]) -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(task())
            except BaseException as error:
                future.set_exception(error)

    def _on_done(self, lane: Lane, future: Future[Any], run: Future[None]) -> None:
        self._finished(lane)
        if run.cancelled():
            _fail(future, CancelledError())
        self._dispatch()

    def _finished(self, lane: Lane) -> None:
        with self._lock:
            lane.running -= 1
            self._free += 1


def _fail(future: Future[Any], error: BaseException) -> None:
    if future.set_running_or_notify_cancel():
        future.set_exception(error)
