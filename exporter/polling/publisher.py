"""The one writer of snapshots: changes the PollState and publishes the snapshot made from it, for the current
generation only, so a poller that a reload replaced can never publish again."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from exporter.config import Config, Target
from exporter.polling.state import PollState, SourceEntry
from exporter.snapshot import Snapshot, SnapshotStore
from exporter.sources.base import Memory

_T = TypeVar("_T")


class Publisher:
    """Owns the PollState and the SnapshotStore's writes. `claim` starts a generation and ends the previous one."""

    def __init__(self, state: PollState, store: SnapshotStore) -> None:
        self._state = state
        self._store = store
        self._lock = threading.Lock()
        self._generation = 0

    def claim(
        self, config: Config, sources: Mapping[str, Sequence[tuple[Target, Memory, bool]]]
    ) -> tuple[int, dict[str, list[SourceEntry]]]:
        """A new generation for a poller of `config`, with the entry of each target of each source ((target,
        initial memory, discovers) by source name) kept for unchanged targets; return the generation and the entries
        (whose listing gates the poller uses; memories are read as copies). From now on, commits of older
        generations are refused."""
        with self._lock:
            self._generation += 1
            self._state.use_config(config)
            entries = {name: self._state.entries(name, runs) for name, runs in sources.items()}
            return self._generation, entries

    def end(self) -> None:
        """End the current generation without starting a poller (the service stops)."""
        with self._lock:
            self._generation += 1

    def read(self, reader: Callable[[PollState], _T]) -> _T:
        """Run `reader` on the state under the lock (to copy what it needs)."""
        with self._lock:
            return reader(self._state)

    def commit(self, generation: int, change: Callable[[PollState], None]) -> Snapshot | None:
        """Apply `change` to the state and publish the resulting snapshot, atomically, if `generation` is still the
        current one; return the snapshot, or None if the generation has ended (nothing changes then)."""
        with self._lock:
            if generation != self._generation:
                return None
            change(self._state)
            snapshot = self._state.snapshot(generation)
            self._store.publish(snapshot)
            return snapshot
