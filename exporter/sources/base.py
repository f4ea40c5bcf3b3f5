"""The contract between the pipeline and a source (one AWS service): what a source plans, polls and publishes for one
target, as values the pipeline runs and commits without naming the source. See docs/architecture.md."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from prometheus_client.core import Metric

from exporter.aws import SessionFactory
from exporter.config import Config, Target
from exporter.failures import EXPORTER_ERROR, Failure, failure_of
from exporter.sharding import Shard
from exporter.snapshot import ApiCounters

__all__ = [
    "EXPORTER_ERROR",
    "Chores",
    "Context",
    "Failure",
    "Held",
    "Listing",
    "Memory",
    "Plan",
    "Polled",
    "Shown",
    "Source",
    "SourceClient",
    "SourcePart",
    "StatusRow",
    "Task",
    "UnitKey",
    "UnitState",
    "failure_of",
    "register",
    "registered",
]

UnitKey = tuple[str, ...]
"""A unit's identity within its source, for example (account_id, region, assessment_id)."""


class UnitState(Protocol):
    """The published state of one unit (an assessment, a conformance pack, an aggregator, a standard): its last good
    values and how its latest poll went. Sources use frozen dataclasses."""

    @property
    def key(self) -> UnitKey: ...

    @property
    def poll_success(self) -> bool: ...


class ShownState(Protocol):
    """What every unit state tells /status: where the unit is and how its latest poll went."""

    @property
    def account_id(self) -> str: ...

    @property
    def region(self) -> str: ...

    @property
    def poll_success(self) -> bool: ...

    @property
    def last_success(self) -> float | None: ...

    @property
    def error_code(self) -> str | None: ...

    @property
    def error_message(self) -> str | None: ...


_S = TypeVar("_S", bound=UnitState)
_C = TypeVar("_C", bound="SourceClient")


class SourceClient(Protocol):
    """What the pipeline needs of a source's client (exporter.aws.ServiceClient has it all)."""

    @property
    def requests_started(self) -> int: ...

    def take_peak_rate(self) -> float: ...

    def close_idle_connections(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class Listing:
    """What one listing of a target found (DescribeConformancePacks, ListAssessments, ...): the account it names (None
    if it names none), the discovered units that pass the target's filters, and anything else the source keeps of it
    (`data`, immutable, e.g. names and statuses). `at` is the monotonic time it was made."""

    at: float
    account_id: str | None = None
    discovered: tuple[str, ...] = ()
    data: Any = None


@dataclass(frozen=True, kw_only=True)
class Memory:
    """What the pipeline keeps of one target for one source between cycles. Immutable: a plan gets it as a value
    and returns a new one in `Plan.memory`; only the publisher's commit stores it. `data` is the source's own part
    (immutable, e.g. look-up periods)."""

    account_id: str | None = None
    listing: Listing | None = None
    listing_failure: Failure | None = None
    listing_tried_at: float | None = None
    data: Any = None


@dataclass(frozen=True, kw_only=True)
class Polled(Generic[_S]):
    """What one task learned: the unit states it produced (none: the unit is gone, e.g. a discovered unit AWS no
    longer has; several: an account-wide pass that yields one unit per standard), and a target-wide failure it met
    (shown on the target's cycle record)."""

    states: tuple[_S, ...] = ()
    failure: Failure | None = None


@dataclass(frozen=True, kw_only=True)
class Task(Generic[_S]):
    """One poll the pipeline runs in the target's lane. `run` may raise: an AwsError is logged as a warning, any other
    exception is logged with its traceback and counted as EXPORTER_ERROR under `operation`; either way `failed` says
    what stands instead (usually the last good states with poll_success 0). `fields` name the unit in the log."""

    operation: str
    run: Callable[[], Polled[_S]]
    failed: Callable[[Failure], Polled[_S]]
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # The log message of an AWS failure of `run` (docs/troubleshooting.md lists every one).
    log_message: str = "poll failed"


@dataclass(frozen=True, kw_only=True)
class Plan(Generic[_S]):
    """A prepared target: its account (None while unknown), the tasks to run, the unit states already decided
    (failed, or skipped because no poll is possible), the target-wide failure, and the target's memory to commit."""

    account_id: str | None
    memory: Memory
    tasks: tuple[Task[_S], ...] = ()
    decided: tuple[_S, ...] = ()
    failure: Failure | None = None


@dataclass(frozen=True, kw_only=True)
class Chores:
    """A target's work between cycles (look-ups too slow or too rare for a cycle): `calls` run in the target's
    background lane, at most `at_once` at a time, each returning what it learned (None: nothing). `apply(stored,
    results)` is what the target keeps afterwards (`Held.background`), computed by the publisher's commit from the
    value stored then, so that nothing committed meanwhile is lost."""

    calls: tuple[Callable[[], Any], ...]
    at_once: int
    apply: Callable[[Any, Sequence[Any]], Any]


@dataclass(frozen=True, kw_only=True)
class Held:
    """One target of a source as the publisher holds it: its memory and what its chores between cycles keep."""

    target: Target
    memory: Memory
    background: Any = None


@dataclass(frozen=True, kw_only=True)
class Context(Generic[_S]):
    """What a source's plan may read: the shard, the clocks, the config, and the states this source published last
    (a copy, so the last good values can stay on failure)."""

    shard: Shard
    config: Config
    known: Mapping[UnitKey, _S]
    wall_clock: Callable[[], float]
    monotonic: Callable[[], float]
    counters: ApiCounters
    stopped: Callable[[], bool]


class Shown:
    """What /status derives from a row's `poll_success`: whether it is failing, and its state badge."""

    poll_success: bool

    @property
    def failing(self) -> bool:
        return not self.poll_success

    @property
    def state(self) -> str:
        return "failing" if self.failing else "ok"


@dataclass(frozen=True, kw_only=True)
class StatusRow(Shown):
    """One unit on /status, for every source alike: `kind` says what it is ("assessment", "conformance pack",
    "aggregator", "standard"); `details` are source-specific columns in display order, e.g. (("score", "87.5"),)."""

    source: str
    kind: str
    name: str
    id: str
    account_id: str
    region: str
    poll_success: bool
    last_success: float | None
    error_code: str | None = None
    error_message: str | None = None
    details: tuple[tuple[str, str], ...] = ()
    # When AWS last updated the unit's figures (an assessment's insights), as Unix time, if it says.
    updated: float | None = None

    @classmethod
    def of(cls, state: ShownState, *, source: str, kind: str, name: str, id: str, **columns: Any) -> StatusRow:
        """The row of `state`: where it is and how its latest poll went come from the state itself; `columns` are
        the row's other fields (`details`, `updated`)."""
        return cls(
            source=source,
            kind=kind,
            name=name,
            id=id,
            account_id=state.account_id,
            region=state.region,
            poll_success=state.poll_success,
            last_success=state.last_success,
            error_code=state.error_code,
            error_message=state.error_message,
            **columns,
        )


@dataclass(frozen=True, kw_only=True)
class SourcePart:
    """A source's part of the snapshot: its unit states in order, the latest listing outcome of each target that
    discovers ((account_id, region) -> success), and how many series its caps left out (cumulative). `data` is
    anything else the source publishes (immutable)."""

    states: tuple[UnitState, ...] = ()
    discovery: tuple[tuple[str, str, bool], ...] = ()
    dropped: int = 0
    data: Any = None


class Source(ABC, Generic[_S, _C]):
    """One AWS service as the pipeline runs it. A subclass names itself (`name`, the config's `sources` entry, and
    `metric_prefix`), builds its client, and for one target: whether it lists and discovers, its listing, its plan
    (which may call AWS: account look-up, an account-wide pass), and its snapshot part, metric families and /status
    rows. Every method except `plan`'s tasks runs on one thread at a time per target."""

    name: ClassVar[str]
    metric_prefix: ClassVar[str]
    # The AWS operations an unexpected exception in `list` and `plan` is counted under (ExporterError), and the log
    # message of an AWS failure of `list`.
    list_operation: ClassVar[str] = "List"
    plan_operation: ClassVar[str] = "Plan"
    list_log_message: ClassVar[str] = "cannot list the target"

    @abstractmethod
    def client(self, target: Target, config: Config, counters: ApiCounters, session: SessionFactory) -> _C:
        """The client of one target (with its own rate limits per operation if the service needs them)."""

    def polls(self, target: Target) -> bool:
        """Whether the target polls this source."""
        return self.name in target.sources

    def discovers(self, target: Target) -> bool:
        """Whether the target discovers units (then it has a `<metric_prefix>_discovery_success` series)."""
        return False

    def lists(self, target: Target, memory: Memory) -> bool:
        """Whether the target needs listings (for discovery, names, or to learn its account)."""
        return self.discovers(target)

    def list(self, target: Target, client: _C, memory: Memory, now: float) -> Listing:
        """One listing of the target (may raise AwsError). Called at most once per discovery_interval, by the
        cycle or by the listings job between cycles, never both at once."""
        raise NotImplementedError

    def initial_memory(self, target: Target) -> Memory:
        return Memory(account_id=target.role_account_id)

    @abstractmethod
    def plan(self, target: Target, client: _C, memory: Memory, context: Context[_S]) -> Plan[_S]:
        """The target's plan, after its listing (if due) is in `memory`. May raise: `failed_plan` stands instead."""

    @abstractmethod
    def failed_plan(self, target: Target, memory: Memory, context: Context[_S], failure: Failure) -> Plan[_S]:
        """The plan when `plan` raised: every configured unit failed with `failure` (last good values kept)."""

    @abstractmethod
    def part(self, states: Iterable[_S], previous: SourcePart | None, config: Config) -> SourcePart:
        """The snapshot part of one cycle's states (unique by key, in key order): caps applied, `dropped` added."""

    def counted(self, state: _S) -> bool:
        """Whether the state is one of the units a cycle record and the cycle's log line count (an account-wide
        figure beside the units is not)."""
        return True

    def background_due(self, target: Target, memory: Memory, kept: Any, now: float, config: Config) -> bool:
        """Whether the target has chores between cycles (`kept`: what its last chores kept; `now`: monotonic)."""
        return False

    def background(self, target: Target, client: _C, memory: Memory, kept: Any, context: Context[_S]) -> Chores | None:
        """The target's chores between cycles, if any (see `Chores`)."""
        return None

    def published(self, part: SourcePart, held: Sequence[Held], config: Config) -> SourcePart:
        """The part as a snapshot publishes it, with what the targets hold now (listings and chores between
        cycles may be newer than the cycle that made the part)."""
        return part

    @abstractmethod
    def families(self, part: SourcePart) -> Iterator[Metric]:
        """The metric families of the part (without `<metric_prefix>_discovery_success`: the pipeline adds it)."""

    @abstractmethod
    def status_rows(self, part: SourcePart) -> Iterable[StatusRow]:
        """The /status rows of the part's units."""


SourceFactory = Callable[[], Source[Any, Any]]
_REGISTRY: dict[str, SourceFactory] = {}


def register(name: str, factory: SourceFactory) -> None:
    """Make a source known to the pipeline by its config name; a name registers once."""
    if name in _REGISTRY:
        raise ValueError(f"source {name!r} registered twice")
    _REGISTRY[name] = factory


def registered() -> dict[str, SourceFactory]:
    """Every registered source, in registration order."""
    return dict(_REGISTRY)
