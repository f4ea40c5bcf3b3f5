"""Client-side measurements for the tests and the benchmarks: when the exporter's boto3 clients sent each request."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import boto3

from exporter.config import Target


def simulator_session(target: Target) -> boto3.Session:
    """A session with dummy credentials, for clients that talk to the simulator."""
    return boto3.Session(aws_access_key_id="simulator", aws_secret_access_key="simulator", region_name=target.region)


class SendTimes:
    """When the clients of its sessions sent each request, by region: measured at the client after its rate limiter,
    since the server's arrival times would add the machine's scheduling delays to the rate."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def session(self, target: Target) -> boto3.Session:
        """A session for `target` whose requests are recorded."""
        session = simulator_session(target)
        # Registered last for the same event as the client's rate limiter, so it runs after it (a handler for a
        # more specific event, "before-send.auditmanager.GetInsights", would run before).
        session.events.register_last("before-send.auditmanager", lambda **_: self._record(target.region))
        return session

    def _record(self, region: str) -> None:
        with self._lock:
            self.times.setdefault(region, []).append(time.monotonic())

    def all(self) -> list[float]:
        """Every send time, of every region, in order."""
        with self._lock:
            return sorted(t for times in self.times.values() for t in times)

    def clear(self) -> None:
        with self._lock:
            self.times.clear()


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most of `times` in any half-open interval [t, t + window)."""
    ordered = sorted(times)
    best = first = 0
    for last, sent in enumerate(ordered):
        while ordered[first] + window <= sent:
            first += 1
        best = max(best, last - first + 1)
    return best
