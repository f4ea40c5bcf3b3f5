"""What the poll service knows between cycles: per target (account id, names and statuses, listing, look-up and
tags times on the monotonic clock; every other source's `Memory`) and overall (the last state of every assessment,
account and conformance pack, what the look-ups learned). The snapshot is made from it; nothing reads a snapshot
back."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from exporter.config import Target
from exporter.polling.pipeline import ListingGate, merge
from exporter.snapshot import AccountState, AssessmentDetails, AssessmentKey, AssessmentState, Snapshot, TargetCycle
from exporter.sources.base import Memory, SourcePart, UnitKey, UnitState

AccountKey = tuple[str, str]
"""(account_id, region)"""


@dataclass
class TargetMemory:
    """What is known about one target for Audit Manager. Times are on the monotonic clock; a reload that keeps the
    target keeps it. Workers change copies of it only (`PollState.memory_copies`); the commit merges them back."""

    account_id: str | None
    names: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    discovered: tuple[str, ...] = ()
    listed_at: float | None = None
    # Whether the latest listing failed (then `auditmanager_discovery_success` is 0 for a discovering target).
    listing_failed: bool = False
    # Held while the target is listed, so a cycle and the listings job between cycles never list it both at once.
    listing_gate: ListingGate = field(default_factory=ListingGate, repr=False, compare=False)
    polled: tuple[str, ...] = ()
    # The look-ups' period: GetAssessment was tried for `details_tried` since `details_at`; a failed one is tried
    # again in the next period.
    details_at: float | None = None
    details_tried: set[str] = field(default_factory=set)
    tags_at: float | None = None


@dataclass(frozen=True)
class Lookup:
    """What the exporter keeps of an assessment's GetAssessment, asked once: its framework and ARN, its status
    until a listing gives one, and its allow-listed tags, refreshed with ListTagsForResource."""

    framework: str
    status: str
    arn: str
    tags: Mapping[str, str]


@dataclass(frozen=True, kw_only=True)
class CycleResult:
    """What one poll cycle learned, to be recorded in the PollState: Audit Manager's states, every other source's
    part and its targets' new memories (by run index), and every target's cycle record."""

    assessments: Sequence[AssessmentState]
    accounts: Sequence[AccountState]
    durations: Mapping[str, float]
    lookups: Mapping[AssessmentKey, Lookup]
    control_domain_series_dropped: int
    targets: Sequence[TargetCycle] = ()
    # What the cycle changed in the Audit Manager memories: (index, the copy as taken, the copy as it ends).
    audit_memories: Sequence[tuple[int, TargetMemory, TargetMemory]] = ()
    parts: Mapping[str, SourcePart] = field(default_factory=dict)
    memories: Mapping[str, Mapping[int, Memory]] = field(default_factory=dict)


@dataclass
class SourceEntry:
    """One target as the PollState keeps it for one source: its memory (replaced whole by each commit), whether it
    discovers (for `<prefix>_discovery_success`), and the lock that keeps two listings of it apart."""

    target: Target
    memory: Memory
    discovers: bool
    listing_gate: ListingGate = field(default_factory=ListingGate, repr=False, compare=False)


class PollState:
    """The one owner of what the service knows. Its writer is the `Publisher`, which changes it under its lock;
    pollers read copies of it (`known_assessments`, `known_accounts`) at the start of their work."""

    def __init__(self) -> None:
        self._memories: list[tuple[Target, TargetMemory]] = []
        self._assessments: dict[AssessmentKey, AssessmentState] = {}
        self._accounts: dict[AccountKey, AccountState] = {}
        self._lookups: dict[AssessmentKey, Lookup] = {}
        self._statuses: dict[AssessmentKey, str] = {}
        self._tag_labels: tuple[str, ...] = ()
        self._durations: Mapping[str, float] = MappingProxyType({})
        self._completed_cycles = 0
        self._dropped = 0
        self._targets: tuple[TargetCycle, ...] = ()
        self._entries: dict[str, list[SourceEntry]] = {}
        self._parts: dict[str, SourcePart] = {}

    def keep_memories(self, targets: Sequence[Target]) -> None:
        """Keep the Audit Manager memory of each target the previous config had too (equal in every setting), start
        one for the others, and forget the memories of targets no longer configured."""
        previous = list(self._memories)
        memories = []
        for target in targets:
            match = next((i for i, (known, _) in enumerate(previous) if known == target), None)
            memory = previous.pop(match)[1] if match is not None else TargetMemory(target.role_account_id)
            memories.append((target, memory))
        self._memories = memories

    def memory_copies(self, indexes: Sequence[int]) -> list[TargetMemory]:
        """Copies of the Audit Manager memories at `indexes` (of the targets of the latest claim): a cycle, listing
        or look-up changes its own copy, and `merge_memories` applies what it changed under the publisher's lock."""
        return [_copy(self._memories[i][1]) for i in indexes]

    def merge_memories(self, changes: Iterable[tuple[int, TargetMemory, TargetMemory]]) -> None:
        """Apply to each stored memory what a worker changed in its copy: (index, the copy as it was taken, the copy
        as it ends). Only the fields it changed are applied, so a listing committed meanwhile stays."""
        for index, base, learned in changes:
            stored = self._memories[index][1]
            for name in _MEMORY_FIELDS:
                value = getattr(learned, name)
                if value != getattr(base, name):
                    setattr(stored, name, value)

    def use_tag_labels(self, tag_labels: tuple[str, ...]) -> None:
        """Publish these tag keys from now on. When they change, the kept tags lose the keys no longer wanted, and
        every target's tags are due again (to learn the new keys)."""
        if tag_labels == self._tag_labels:
            return
        self._tag_labels = tag_labels
        self._lookups = {
            key: dataclasses.replace(lookup, tags=allowed(lookup.tags, tag_labels))
            for key, lookup in self._lookups.items()
        }
        for _, memory in self._memories:
            memory.tags_at = None

    def known_assessments(self) -> dict[AssessmentKey, AssessmentState]:
        return dict(self._assessments)

    def known_accounts(self) -> dict[AccountKey, AccountState]:
        return dict(self._accounts)

    def looked_up(self) -> dict[AssessmentKey, str]:
        """The ARN of every assessment whose GetAssessment has been read."""
        return {key: lookup.arn for key, lookup in self._lookups.items()}

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

    def known_units(self, source: str) -> dict[UnitKey, UnitState]:
        """The states `source` published last, by key."""
        part = self._parts.get(source)
        return {state.key: state for state in part.states} if part is not None else {}

    def part(self, source: str) -> SourcePart | None:
        return self._parts.get(source)

    def record_memories(self, source: str, memories: Mapping[int, Memory]) -> None:
        """Keep what a cycle or a listing learned of the targets of `source` (by entry index)."""
        entries = self._entries.get(source, [])
        for index, memory in memories.items():
            entries[index].memory = merge(entries[index].memory, memory)

    def record_cycle(self, result: CycleResult) -> None:
        """Keep what a cycle polled and forget every assessment and account it did not. A look-up is kept while
        its assessment is polled or listed (a reload or a rediscovery does not ask again), and forgotten after."""
        self.merge_memories(result.audit_memories)
        self._assessments = {s.key: s for s in result.assessments}
        self._accounts = {(a.account_id, a.region): a for a in result.accounts}
        self._statuses = self._listed_statuses()
        self._lookups = {
            key: lookup
            for key, lookup in {**self._lookups, **result.lookups}.items()
            if key in self._assessments or key in self._statuses
        }
        self._durations = MappingProxyType(dict(result.durations))
        self._completed_cycles += 1
        self._dropped += result.control_domain_series_dropped
        self._targets = tuple(result.targets)
        self._parts.update(result.parts)
        for source, memories in result.memories.items():
            self.record_memories(source, memories)

    def record_lookups(
        self,
        lookups: Mapping[AssessmentKey, Lookup],
        tags: Mapping[AssessmentKey, Mapping[str, str]],
        changes: Iterable[tuple[int, TargetMemory, TargetMemory]] = (),
    ) -> None:
        """Keep new look-ups, the refreshed tags of known ones, and when the targets' look-ups were made."""
        self.merge_memories(changes)
        self._lookups.update(lookups)
        for key, refreshed in tags.items():
            lookup = self._lookups.get(key)
            if lookup is not None:
                self._lookups[key] = dataclasses.replace(lookup, tags=allowed(refreshed, self._tag_labels))

    def record_listings(self, changes: Iterable[tuple[int, TargetMemory, TargetMemory]]) -> None:
        """Keep the latest listings, made between cycles, and the statuses they give."""
        self.merge_memories(changes)
        self._statuses = self._listed_statuses()

    def _listed_statuses(self) -> dict[AssessmentKey, str]:
        """The status the latest listing of each target (whose account is known) gives every assessment it lists,
        read from the targets' memories when publishing, so a cycle never publishes statuses older than a listing
        made meanwhile."""
        return {
            (memory.account_id, target.region, assessment_id): status
            for target, memory in self._memories
            if memory.account_id is not None
            for assessment_id, status in memory.statuses.items()
        }

    def snapshot(self, generation: int) -> Snapshot:
        assessments = tuple(sorted(self._assessments.values(), key=lambda s: s.key))
        return Snapshot(
            assessments=assessments,
            poll_durations=self._durations,
            completed_cycles=self._completed_cycles,
            accounts=tuple(sorted(self._accounts.values(), key=lambda a: (a.account_id, a.region))),
            details=MappingProxyType(
                {
                    key: AssessmentDetails(lookup.framework, self._statuses.get(key, lookup.status), lookup.tags)
                    for key, lookup in self._lookups.items()
                    if key in self._assessments
                }
            ),
            control_domain_series_dropped=self._dropped,
            generation=generation,
            targets=self._targets,
            tag_labels=self._tag_labels,
            parts=MappingProxyType({**self._discovery_parts(), **self._source_parts()}),
        )

    def _source_parts(self) -> dict[str, SourcePart]:
        """Each source's part with the outcome of each discovering target's latest listing."""
        return {
            source: dataclasses.replace(self._parts.get(source) or SourcePart(), discovery=_discovery(entries))
            for source, entries in self._entries.items()
        }

    def _discovery_parts(self) -> dict[str, SourcePart]:
        """Audit Manager's listings (its polls are not a source of the pipeline yet)."""
        outcomes = {
            (memory.account_id or "", target.region): not memory.listing_failed
            for target, memory in self._memories
            if target.discover and (memory.listed_at is not None or memory.listing_failed)
        }
        return {"auditmanager": SourcePart(discovery=tuple((a, r, ok) for (a, r), ok in sorted(outcomes.items())))}


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


_MEMORY_FIELDS = tuple(f.name for f in dataclasses.fields(TargetMemory) if f.name != "listing_gate")


def _copy(memory: TargetMemory) -> TargetMemory:
    """A copy whose containers are its own (the listing gate is shared: it keeps two listings of a target apart)."""
    return dataclasses.replace(
        memory, names=dict(memory.names), statuses=dict(memory.statuses), details_tried=set(memory.details_tried)
    )


def allowed(tags: Mapping[str, str], tag_labels: tuple[str, ...]) -> Mapping[str, str]:
    """The tags of the allow-listed keys only: the others are never kept."""
    return MappingProxyType({key: tags[key] for key in tag_labels if key in tags})


def failed(state: AssessmentState, error: tuple[str, str]) -> AssessmentState:
    """The assessment after a failed poll with `error` (code, message): its last values stay, its success
    timestamps do not move."""
    domains = None if state.control_domains_success is None else False
    code, message = error
    return dataclasses.replace(
        state, poll_success=False, control_domains_success=domains, error_code=code, error_message=message
    )
