"""What one poll cycle learned, as an immutable Snapshot of every source's part, and the stores the collector reads.

A poll builds a whole new Snapshot and swaps it in with one assignment, so a scrape sees either the previous
poll or the next one, never half of each. API counters change during a poll and live beside it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from exporter.config import Target

if TYPE_CHECKING:
    from exporter.sources.base import SourcePart


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetCycle:
    """How one target's part of the latest poll cycle went for one source: when it started (Unix time), how long it
    took, how many units (assessments, conformance packs, ...) it polled and how many failed, how many HTTP requests
    it started and the highest request rate it reached, and its last target-wide AWS error (listing, account lookup,
    account-wide poll)."""

    source: str
    target: Target
    account_id: str | None
    started: float
    seconds: float
    units: int
    failures: int
    requests: int
    peak_rate: float
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """Everything a scrape publishes, as of one finished poll cycle: every source's part by source name (`parts`,
    see exporter.sources), the wall time of the cycle by region, and each target's cycle record.

    A part may be newer than the cycle: the listings and the look-ups between cycles publish their own copy.
    `generation` is the poller that published it: a reload starts a new one, and a snapshot of an older generation
    is never published.
    """

    poll_durations: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    completed_cycles: int = 0
    generation: int = 0
    targets: tuple[TargetCycle, ...] = ()
    parts: Mapping[str, SourcePart] = field(default_factory=lambda: MappingProxyType({}))


class SnapshotStore:
    """Holds the current Snapshot. Readers never block; `publish` swaps in a new one whole."""

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self._snapshot = snapshot or Snapshot()
        self._listeners: list[Callable[[Snapshot], object]] = []

    def get(self) -> Snapshot:
        return self._snapshot

    def publish(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        for listener in self._listeners:
            listener(snapshot)

    def subscribe(self, listener: Callable[[Snapshot], object]) -> None:
        """Call `listener` with every snapshot published from now on (for example to pre-render it)."""
        self._listeners.append(listener)


class ApiCounters:
    """Monotonic counts of AWS requests and of failed calls, by label values."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str]] = Counter()
        self._errors: Counter[tuple[str, str, str]] = Counter()
        self.changes = 0
        """How many counts so far: a reader that saw the same number saw the same counts."""

    def count_request(self, operation: str, region: str) -> None:
        with self._lock:
            self._requests[operation, region] += 1
            self.changes += 1

    def count_error(self, operation: str, region: str, error_code: str) -> None:
        with self._lock:
            self._errors[operation, region, error_code] += 1
            self.changes += 1

    def requests(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._requests)

    def errors(self) -> dict[tuple[str, str, str], int]:
        with self._lock:
            return dict(self._errors)


class ReloadStatus:
    """Whether the latest config reload worked, why not if it failed, when one was last tried and when one last
    worked (start-up counts as one)."""

    def __init__(self, now: float) -> None:
        self.successful = True
        self.problems: tuple[str, ...] = ()
        """The problems of the latest reload if it failed, one line each as `--config.check` prints them; else ()."""
        self.last_success = now
        self.last_attempt = now
        self.changes = 0
        """How many reloads were recorded: a reader that saw the same number saw the same status."""

    def record(self, successful: bool, now: float, problems: tuple[str, ...] = ()) -> None:
        self.problems = () if successful else problems
        self.successful = successful
        self.last_attempt = now
        if successful:
            self.last_success = now
        self.changes += 1
