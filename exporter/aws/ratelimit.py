"""The sliding-window limit on the AWS requests one client starts, so that AWS never sees more than its quota."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RequestRateLimiter:
    """Lets at most `limit` requests start in any window of `window` seconds (a sliding-window log).

    Fractional rates below one request per second widen the window instead: 0.5/s is one request per 2 s.
    A small margin on the window keeps network jitter from pushing the rate AWS sees over the limit.
    `clock` and `sleep` are injected so that tests can run the limiter on a clock of their own.
    """

    MARGIN = 0.02

    def __init__(
        self,
        per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._limit = max(1, int(per_second))
        self._seconds_per_window = 1.0 if per_second >= 1 else 1.0 / per_second
        self._window = self._seconds_per_window + self.MARGIN
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._peak = 0
        self.acquired = 0

    def acquire(self) -> None:
        """Block until a request may start, and record that it does (`acquired` counts them)."""
        while True:
            with self._lock:
                now = self._clock()
                # Compared with the end of the oldest start's window, not with its age, so that sleeping exactly until
                # that end is enough (floating-point rounding of an age could make it fall short forever).
                while self._starts and now >= self._starts[0] + self._window:
                    self._starts.popleft()
                if len(self._starts) < self._limit:
                    self._starts.append(now)
                    self.acquired += 1
                    self._peak = max(self._peak, len(self._starts))
                    return
                wait = self._starts[0] + self._window - now
            self._sleep(wait)

    def take_peak_rate(self) -> float:
        """The most requests per second that started within one window since the last call; starts afresh."""
        with self._lock:
            peak, self._peak = self._peak, 0
        return peak / self._seconds_per_window
