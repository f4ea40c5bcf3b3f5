"""The bounded pools of worker threads shared by every target (one for poll cycles, a small one for the framework
look-ups between them), and the lanes that keep each target within its own concurrency inside them."""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import Any, TypeVar

_T = TypeVar("_T")


# One worker in this many goes to the framework look-ups, which run beside the cycles on a slice of the budget.
BACKGROUND_FRACTION = 8


class Workers:
    """At most `max_workers` threads, created on demand and kept, for every target's calls: most for the poll
    cycles, `max_workers // 8` (at least one) for the framework look-ups, so those never hold a cycle's threads.

    A target never holds more than its lane's limit of them, and a task waiting for its turn holds none: lanes
    queue their tasks outside the pool, so one slow target cannot block the threads the others need.
    """

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        background = max(1, max_workers // BACKGROUND_FRACTION)
        self._cycle = ThreadPoolExecutor(max_workers=max(1, max_workers - background), thread_name_prefix="poll")
        self._background = ThreadPoolExecutor(max_workers=background, thread_name_prefix="details")

    def lane(self, limit: int) -> Lane:
        """A lane of the poll cycles' pool."""
        return Lane(self._cycle, limit)

    def background_lane(self, limit: int) -> Lane:
        """A lane of the framework look-ups' pool."""
        return Lane(self._background, limit)

    def close(self) -> None:
        """Cancel queued tasks and let the threads end once their running task has (without waiting for them)."""
        for executor in (self._cycle, self._background):
            executor.shutdown(wait=False, cancel_futures=True)


class Lane:
    """Runs tasks on a shared executor, at most `limit` at a time, in the order they were submitted."""

    def __init__(self, executor: ThreadPoolExecutor, limit: int) -> None:
        self._executor = executor
        self._limit = max(1, limit)
        self._lock = threading.Lock()
        self._pending: deque[tuple[Future[Any], Callable[[], Any]]] = deque()
        self._running = 0

    def submit(self, task: Callable[[], _T]) -> Future[_T]:
        future: Future[_T] = Future()
        with self._lock:
            self._pending.append((future, task))
        self._start_next()
        return future

    def _start_next(self) -> None:
        while True:
            with self._lock:
                if self._running >= self._limit or not self._pending:
                    return
                self._running += 1
                item = self._pending.popleft()
            future, task = item
            try:
                started = self._executor.submit(self._run, future, task)
            except RuntimeError as error:
                # The pool was closed (the service stopped or a reload replaced it): the task never runs.
                self._abandon(future, error)
            else:
                started.add_done_callback(functools.partial(self._on_done, future))

    def _on_done(self, future: Future[Any], run: Future[None]) -> None:
        if run.cancelled():
            self._abandon(future, CancelledError())

    def _abandon(self, future: Future[Any], error: BaseException) -> None:
        with self._lock:
            self._running -= 1
        if future.set_running_or_notify_cancel():
            future.set_exception(error)

    def _run(self, future: Future[Any], task: Callable[[], Any]) -> None:
        try:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(task())
                except BaseException as error:
                    future.set_exception(error)
        finally:
            with self._lock:
                self._running -= 1
            self._start_next()
