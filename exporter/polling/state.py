"""What the poll service knows between cycles: per source and target, its `Memory` (account, listing, the source's
own data) and what its chores between cycles keep; per source, the part its latest cycle published; and the cycle
records. The snapshot is made from it; nothing reads a snapshot back."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from exporter.config import Config, Target
from exporter.polling.pipeline import ListingGate, merge
from exporter.snapshot import Snapshot, TargetCycle
from exporter.sources.base import Held, Memory, SourcePart, UnitKey, UnitState
from exporter.sources.registry import sources


@dataclass(frozen=True, kw_only=True)
class CycleResult:
    """What one poll cycle learned, to be recorded in the PollState: every source's part and its targets' new
    memories (by entry index), the wall time by region, and every target's cycle record."""

    durations: Mapping[str, float]
    targets: Sequence[TargetCycle] = ()
    parts: Mapping[str, SourcePart] = field(default_factory=dict)
    memories: Mapping[str, Mapping[int, Memory]] = field(default_factory=dict)


@dataclass
class SourceEntry:
    """One target as the PollState keeps it for one source: its memory (replaced whole by each commit), what its
    chores between cycles keep (`background`), whether it discovers (for `<prefix>_discovery_success`), and the lock
    that keeps two listings of it apart."""

    target: Target
    memory: Memory
    discovers: bool
    background: Any = None
    listing_gate: ListingGate = field(default_factory=ListingGate, repr=False, compare=False)


class PollState:
    """The one owner of what the service knows. Its writer is the `Publisher`, which changes it under its lock;
    pollers read copies of it (`source_memories`, `known_units`) at the start of their work."""

    def __init__(self) -> None:
        self._config: Config | None = None
        self._durations: Mapping[str, float] = MappingProxyType({})
        self._completed_cycles = 0
        self._targets: tuple[TargetCycle, ...] = ()
        self._entries: dict[str, list[SourceEntry]] = {}
        self._parts: dict[str, SourcePart] = {}

    def use_config(self, config: Config) -> None:
        """Publish with this config from now on (a source's part may depend on it, e.g. the tag keys)."""
        self._config = config

    def entries(self, source: str, targets: Sequence[tuple[Target, Memory, bool]]) -> list[SourceEntry]:
        """The entry of each (target, initial memory, discovers) of `source`: kept for a target the previous config
        had too (equal in every setting), new for the others; the others are forgotten."""
        previous = list(self._entries.get(source, []))
        entries = []
        for target, memory, discovers in targets:
            match = next((i for i, known in enumerate(previous) if known.target == target), None)
            entries.append(previous.pop(match) if match is not None else SourceEntry(target, memory, discovers))
        self._entries[source] = entries
        return entries

    def source_memories(self, source: str) -> list[Memory]:
        """The current memory of each target of `source`, in the order of `entries`."""
        return [entry.memory for entry in self._entries.get(source, [])]

    def held(self, source: str) -> list[Held]:
        """What is held of each target of `source`, in the order of `entries`."""
        return [Held(target=e.target, memory=e.memory, background=e.background) for e in self._entries.get(source, [])]

    def known_units(self, source: str) -> dict[UnitKey, UnitState]:
        """The states `source` published last, by key."""
        part = self._parts.get(source)
        return {state.key: state for state in part.states} if part is not None else {}

    def part(self, source: str) -> SourcePart | None:
        return self._parts.get(source)

    def record_memories(self, source: str, memories: Mapping[int, Memory]) -> None:
        """Keep what a cycle learned of the targets of `source` (by entry index)."""
        entries = self._entries.get(source, [])
        for index, memory in memories.items():
            entries[index].memory = merge(entries[index].memory, memory)

    def record_listings(self, source: str, memories: Mapping[int, Memory]) -> None:
        """Keep the listings made between cycles (by entry index); the rest of each memory is the cycle's."""
        entries = self._entries.get(source, [])
        for index, memory in memories.items():
            stored = entries[index].memory
            entries[index].memory = merge(stored, dataclasses.replace(memory, data=stored.data))

    def record_background(self, source: str, applied: Mapping[int, Callable[[Any], Any]]) -> None:
        """Keep what chores between cycles learned: each function makes the entry's new value from its stored one."""
        entries = self._entries.get(source, [])
        for index, apply in applied.items():
            entries[index].background = apply(entries[index].background)

    def record_cycle(self, result: CycleResult) -> None:
        """Keep what a cycle polled: each source's part (whatever a source did not poll is forgotten) and memories."""
        self._durations = MappingProxyType(dict(result.durations))
        self._completed_cycles += 1
        self._targets = tuple(result.targets)
        self._parts.update(result.parts)
        for source, memories in result.memories.items():
            self.record_memories(source, memories)

    def snapshot(self, generation: int) -> Snapshot:
        return Snapshot(
            poll_durations=self._durations,
            completed_cycles=self._completed_cycles,
            generation=generation,
            targets=self._targets,
            parts=MappingProxyType(self._source_parts()),
        )

    def _source_parts(self) -> dict[str, SourcePart]:
        """Each source's part as published with what its targets hold now, and the outcome of each discovering
        target's latest listing."""
        registered = sources()
        parts = {}
        for name, entries in self._entries.items():
            part = dataclasses.replace(self._parts.get(name) or SourcePart(), discovery=_discovery(entries))
            source = registered.get(name)
            if source is not None and self._config is not None:
                part = source.published(part, self.held(name), self._config)
            parts[name] = part
        return parts


def _discovery(entries: Sequence[SourceEntry]) -> tuple[tuple[str, str, bool], ...]:
    """(account_id, region, success) of the latest listing of each discovering target that was listed; two targets
    of one account and region publish one series, failing if either fails."""
    outcomes: dict[tuple[str, str], bool] = {}
    for entry in entries:
        memory = entry.memory
        if not entry.discovers or memory.listing_tried_at is None:
            continue
        key = (memory.account_id or "", entry.target.region)
        outcomes[key] = outcomes.get(key, True) and memory.listing_failure is None
    return tuple((account_id, region, ok) for (account_id, region), ok in sorted(outcomes.items()))
