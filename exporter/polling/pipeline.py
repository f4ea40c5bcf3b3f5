"""The pipeline every registered source runs through: per target, its listing when due, its plan, then its tasks, all
in the target's lane of the shared workers; what they learned comes back as values (states, memories, cycle records)
for the publisher's one commit. A failure never escapes: it becomes a failed state and the target's error."""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Mapping
from concurrent.futures import CancelledError, Future, wait
from dataclasses import dataclass
from typing import Any

from exporter.config import Target
from exporter.failures import failure_of
from exporter.polling.lanes import TargetTasks
from exporter.polling.workers import Workers
from exporter.snapshot import TargetCycle
from exporter.sources.base import (
    Context,
    Listing,
    Memory,
    Plan,
    Polled,
    Source,
    SourceClient,
    Task,
    UnitState,
)

log = logging.getLogger("exporter.polling")


class ListingGate:
    """Keeps two listings of one target apart (a cycle's and the listings job's, each with its own copy of the
    target's memory), and holds when the latest succeeded, so that one that waited for the other does not list
    again from its older copy. Both are only changed while `lock` is held."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.listed_at: float | None = None

    def fresh(self, now: float, every: float) -> bool:
        """Whether a listing succeeded less than `every` seconds before `now` (call with `lock` held)."""
        return self.listed_at is not None and now - self.listed_at < every


@dataclass(frozen=True, kw_only=True)
class SourceRun:
    """A target as a poller runs one source for it: its config, its client and the gate that keeps two listings of
    it apart (its memory is read from the PollState at each cycle)."""

    target: Target
    client: SourceClient
    listing_gate: ListingGate


@dataclass(frozen=True, kw_only=True)
class SourceResult:
    """What one cycle of one source learned, for the commit: every unit state, the targets' new memories (by run
    index) and their cycle records."""

    states: tuple[UnitState, ...]
    memories: Mapping[int, Memory]
    cycles: tuple[TargetCycle, ...]


def listing_due(memory: Memory, now: float, every: float, *, retry_after_failure: bool) -> bool:
    """Whether a target's listing is due: never listed, or listed `every` seconds ago or more; a listing that just
    failed is tried again at once by a cycle, one `every` later by the listings job (`retry_after_failure` False)."""
    if memory.listing is not None and now - memory.listing.at < every:
        return False
    tried = memory.listing_tried_at
    return retry_after_failure or tried is None or now - tried >= every


def refresh_listing(
    source: Source[Any, Any],
    run: SourceRun,
    memory: Memory,
    context: Context[Any],
    *,
    blocking: bool,
    retry_after_failure: bool,
) -> Memory:
    """The target's memory after its listing, if due and no other thread is listing it (then, not `blocking`,
    the memory as it was). A failed listing keeps the previous one and records the failure."""
    now = context.monotonic()
    if not source.lists(run.target, memory) or not listing_due(
        memory, now, context.config.discovery_interval, retry_after_failure=retry_after_failure
    ):
        return memory
    gate = run.listing_gate
    if not gate.lock.acquire(blocking=blocking):
        return memory
    try:
        if gate.fresh(now, context.config.discovery_interval):
            return memory  # listed meanwhile by the other job, whose commit brings the listing
        listing: Listing = source.list(run.target, run.client, memory, now)
        gate.listed_at = now
    except Exception as error:
        message = source.list_log_message
        failure = failure_of(error, context.counters, source.list_operation, message, region=run.target.region)
        return dataclasses.replace(memory, listing_failure=failure, listing_tried_at=now)
    finally:
        gate.lock.release()
    return dataclasses.replace(
        memory,
        account_id=memory.account_id or listing.account_id,
        listing=listing,
        listing_failure=None,
        listing_tried_at=now,
    )


def merge(stored: Memory, learned: Memory) -> Memory:
    """The memory to keep when a cycle or listing learned `learned` from a copy that `stored` may have overtaken
    meanwhile (the listings job and a cycle both commit): the newer listing wins, a known account stays."""
    newer = learned
    if (stored.listing_tried_at or -1.0) > (learned.listing_tried_at or -1.0):
        newer = stored
    return dataclasses.replace(
        learned,
        account_id=stored.account_id or learned.account_id,
        listing=newer.listing,
        listing_failure=newer.listing_failure,
        listing_tried_at=newer.listing_tried_at,
    )


class SourceCycle:
    """One cycle of one source over its targets. `start` queues every target's work on the shared workers, so that
    all sources run side by side; `result` waits for it."""

    def __init__(
        self,
        source: Source[Any, Any],
        runs: list[SourceRun],
        memories: list[Memory],
        context: Context[Any],
        workers: Workers,
    ) -> None:
        self._source = source
        self._runs = runs
        self._memories = memories
        self._context = context
        self._workers = workers
        self._clock = context.monotonic
        self._started = self._clock()
        self._to_wall = context.wall_clock() - self._started
        self._work: list[TargetTasks] = []
        self._prepared: list[Future[tuple[Plan[Any], list[Future[Polled[Any]]]]]] = []

    def start(self) -> None:
        for run, memory in zip(self._runs, self._memories, strict=True):
            tasks = TargetTasks(self._workers.lane(run.target.max_concurrency), run.client, self._clock)
            tasks.expect(1)
            self._work.append(tasks)
            self._prepared.append(tasks.submit(functools.partial(self._prepare, run, memory, tasks)))

    def result(self) -> SourceResult:
        """Every state planned or polled, the memories the plans returned, and each target's cycle record (a closed
        pool cancels what had not started: those targets keep their memory and record nothing)."""
        states: list[UnitState] = []
        memories: dict[int, Memory] = {}
        cycles: list[TargetCycle] = []
        for i, (run, prepared, tasks) in enumerate(zip(self._runs, self._prepared, self._work, strict=True)):
            if prepared.cancelled() or isinstance(prepared.exception(), CancelledError):
                continue
            plan, polls = prepared.result()
            wait(polls)
            polled = [poll.result() for poll in polls if not poll.cancelled() and poll.exception() is None]
            for outcome in polled:
                if outcome.failure is not None:
                    tasks.fail(outcome.failure)
            mine = [*plan.decided, *(state for outcome in polled for state in outcome.states)]
            states += mine
            memories[i] = plan.memory
            units = [state for state in mine if self._source.counted(state)]
            cycles.append(tasks.record(self._source.name, run.target, plan.account_id, units, self._to_wall))
        return SourceResult(states=tuple(states), memories=memories, cycles=tuple(cycles))

    def durations(self) -> dict[str, float]:
        """The wall time of the cycle by region, from its start to the end of the region's last task."""
        durations: dict[str, float] = {}
        for run, tasks in zip(self._runs, self._work, strict=True):
            region = run.target.region
            durations[region] = max(durations.get(region, 0.0), tasks.finished - self._started)
        return durations

    def _prepare(
        self, run: SourceRun, memory: Memory, tasks: TargetTasks
    ) -> tuple[Plan[Any], list[Future[Polled[Any]]]]:
        """List if due, plan, then queue the plan's tasks in the lane without waiting for them (a task that waited
        would hold the lane's slot the polls need)."""
        source, context, target = self._source, self._context, run.target
        if context.stopped():
            return Plan(account_id=memory.account_id, memory=memory), []
        memory = refresh_listing(source, run, memory, context, blocking=False, retry_after_failure=True)
        try:
            plan = source.plan(target, run.client, memory, context)
        except Exception as error:
            failed = failure_of(error, context.counters, source.plan_operation, "cannot plan the target",
                                region=target.region)  # fmt: skip
            plan = source.failed_plan(target, memory, context, failed)
        target_failure = plan.failure or memory.listing_failure
        if target_failure is not None:
            tasks.fail(target_failure)
        tasks.expect(len(plan.tasks))
        polls = [tasks.submit(functools.partial(self._poll, task)) for task in plan.tasks]
        return plan, polls

    def _poll(self, task: Task[Any]) -> Polled[Any]:
        if self._context.stopped():
            return Polled()
        try:
            return task.run()
        except Exception as error:
            message = task.log_message
            failure = failure_of(error, self._context.counters, task.operation, message, **task.fields)
            return task.failed(failure)
