"""One poll cycle's AWS Config part: per target, which conformance packs it polls (named in the config, or
discovered through DescribeConformancePacks once per discovery_interval), their scores in one paged call, and each
pack's rules, on the shared workers within the target's AWS Config limits; with `aggregator`, the configuration
aggregator's packs of every source account and region in one more paged call.

A failure never escapes: it becomes `poll_success=0` on the packs it touched and their last good values stay. A pack
that AWS Config no longer has (NoSuchConformancePackException), or that discovery no longer lists, leaves.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass, field

from exporter.aws import AwsError
from exporter.awsconfig import NOT_FOUND, ConformancePackClient
from exporter.config import Target
from exporter.conformance import (
    AggregatorKey,
    AggregatorState,
    ConformancePackKey,
    ConformancePackState,
    rule_counts,
)
from exporter.polling.cycle import CycleSettings
from exporter.polling.errors import log_aws_failure, report_unexpected
from exporter.polling.state import TargetMemory
from exporter.polling.workers import Lane, Workers

log = logging.getLogger("exporter.polling")

SCORES = "ListConformancePackComplianceScores"
RULES = "DescribeConformancePackCompliance"
AGGREGATE = "DescribeAggregateComplianceByConformancePacks"


@dataclass(frozen=True)
class PackRun:
    """A target that polls AWS Config, as a poller runs it: its config, its client and what is known about it."""

    target: Target
    client: ConformancePackClient
    memory: TargetMemory


@dataclass(frozen=True)
class PackPlan:
    """A prepared target: its account, the packs to poll with the scores of its packs, and the packs whose poll is
    already decided (failed, when the account or the scores could not be had)."""

    account_id: str = ""
    wanted: tuple[str, ...] = ()
    scores: Mapping[str, float | None] = field(default_factory=dict)
    decided: tuple[ConformancePackState, ...] = ()
    aggregate: AggregatorState | None = None


class PackCycle:
    """The conformance packs of one cycle over `runs`, started with what the service knew (`known`). `start` queues
    the work on the shared workers, so that it runs beside the Audit Manager cycle; `result` waits for it."""

    def __init__(
        self,
        runs: list[PackRun],
        settings: CycleSettings,
        workers: Workers,
        stopped: threading.Event,
        known: Mapping[ConformancePackKey, ConformancePackState],
        known_aggregators: Mapping[AggregatorKey, AggregatorState],
    ) -> None:
        self._runs = runs
        self._known_aggregators = known_aggregators
        self._settings = settings
        self._workers = workers
        self._stopped = stopped
        self._known = known
        self._prepared: list[Future[tuple[PackPlan, list[Future[ConformancePackState | None]]]]] = []

    def start(self) -> None:
        for run in self._runs:
            lane = self._workers.lane(run.target.max_concurrency)
            self._prepared.append(lane.submit(functools.partial(self._prepare, run, lane)))

    def result(self) -> tuple[list[ConformancePackState], list[AggregatorState]]:
        """Every pack polled or decided and every aggregator polled, in no particular order (a closed pool cancels
        what had not started)."""
        states: list[ConformancePackState] = []
        aggregators: list[AggregatorState] = []
        for prepared in self._prepared:
            if prepared.cancelled() or prepared.exception() is not None:
                continue
            plan, polls = prepared.result()
            states += plan.decided
            if plan.aggregate is not None:
                aggregators.append(plan.aggregate)
            wait(polls)
            states += [
                state
                for poll in polls
                if not poll.cancelled() and poll.exception() is None and (state := poll.result()) is not None
            ]
        return states, aggregators

    def _prepare(self, run: PackRun, lane: Lane) -> tuple[PackPlan, list[Future[ConformancePackState | None]]]:
        """Plan the target, then queue each pack's poll in its lane (without waiting for them: a task that waited
        would hold the lane's slot the polls need), and meanwhile poll the target's aggregator, if it has one."""
        if self._stopped.is_set():
            return PackPlan(), []
        try:
            plan = prepare_packs(run.target, run.client, run.memory, self._settings, self._known)
        except Exception as error:
            report_unexpected(self._settings.counters, SCORES, error, region=run.target.region)
            plan = PackPlan(decided=tuple(_failed(s, s.account_id, s.region, s.name) for s in self._of(run)))
        polls = [lane.submit(functools.partial(self._poll, run, plan, name)) for name in plan.wanted]
        aggregator = run.target.aggregator
        if aggregator is not None and self._settings.shard.owns(plan.account_id, run.target.region, aggregator):
            plan = dataclasses.replace(plan, aggregate=self._aggregate(run, aggregator))
        return plan, polls

    def _poll(self, run: PackRun, plan: PackPlan, name: str) -> ConformancePackState | None:
        key = (plan.account_id, run.target.region, name)
        if self._stopped.is_set():
            return self._known.get(key)
        try:
            return poll_pack(run.target, run.client, plan, name, self._settings, self._known)
        except Exception as error:
            report_unexpected(self._settings.counters, RULES, error, region=run.target.region, conformance_pack=name)
            return _failed(self._known.get(key), plan.account_id, run.target.region, name)

    def _aggregate(self, run: PackRun, aggregator: str) -> AggregatorState:
        account_id = run.memory.account_id or ""
        try:
            return poll_aggregator(run.target, run.client, aggregator, account_id, self._known_aggregators)
        except Exception as error:
            report_unexpected(self._settings.counters, AGGREGATE, error, region=run.target.region)
            return _failed_aggregator(self._known_aggregators, aggregator, account_id, run.target.region)

    def _of(self, run: PackRun) -> list[ConformancePackState]:
        """The packs the target published before (another target may poll other packs in the same region)."""
        names, account_id = set(_names(run.target, run.memory)), run.memory.account_id
        return [
            s
            for s in self._known.values()
            if s.region == run.target.region and s.name in names and account_id in (None, s.account_id)
        ]


def prepare_packs(
    target: Target,
    client: ConformancePackClient,
    memory: TargetMemory,
    settings: CycleSettings,
    known: Mapping[ConformancePackKey, ConformancePackState],
) -> PackPlan:
    """List the packs if due, resolve the account, and get every pack's score (one paged call)."""
    _refresh_listing(target, client, memory, settings)
    names = _names(target, memory)
    region = target.region
    if memory.account_id is None:
        # Listed, yet no account: the account has no packs, so the named ones do not exist.
        # Not listed: named packs are failed polls (from shard 0 only, as no shard owns a pack before its account is
        # known), so that the failure shows from the first cycle on.
        if memory.packs_listed_at is not None or not settings.shard.polls_accounts:
            return PackPlan()
        previous = {s.name: s for s in known.values() if s.region == region}
        return PackPlan(decided=tuple(_failed(previous.get(name), "", region, name) for name in names))
    account_id = memory.account_id
    wanted = tuple(name for name in names if settings.shard.owns(account_id, region, name))
    if not wanted:
        return PackPlan(account_id)
    try:
        scores = {score.name: score.score for score in client.compliance_scores()}
    except AwsError as error:
        log_aws_failure("conformance pack scores poll failed", error, region=region, account_id=account_id)
        decided = (_failed(known.get((account_id, region, name)), account_id, region, name) for name in wanted)
        return PackPlan(account_id, decided=tuple(decided))
    return PackPlan(account_id, wanted, scores)


def poll_pack(
    target: Target,
    client: ConformancePackClient,
    plan: PackPlan,
    name: str,
    settings: CycleSettings,
    known: Mapping[ConformancePackKey, ConformancePackState],
) -> ConformancePackState | None:
    """The pack's rules (one paged DescribeConformancePackCompliance) with its score from the plan; None if AWS
    Config no longer has the pack."""
    region = target.region
    try:
        rules = client.rule_compliance(name)
    except AwsError as error:
        log_aws_failure("conformance pack poll failed", error, region=region, conformance_pack=name)
        if error.code == NOT_FOUND:
            return None
        return _failed(known.get((plan.account_id, region, name)), plan.account_id, region, name)
    score = plan.scores.get(name)
    return ConformancePackState(
        plan.account_id, region, name, score, rule_counts(rules), rules, True, settings.wall_clock()
    )


def poll_aggregator(
    target: Target,
    client: ConformancePackClient,
    aggregator: str,
    account_id: str,
    known: Mapping[AggregatorKey, AggregatorState],
) -> AggregatorState:
    """The aggregator's packs of every source account and region (one paged call); on failure the last good ones
    stay."""
    try:
        packs = client.aggregate_compliance(aggregator)
    except AwsError as error:
        log_aws_failure("configuration aggregator poll failed", error, region=target.region, aggregator=aggregator)
        return _failed_aggregator(known, aggregator, account_id, target.region)
    return AggregatorState(aggregator, account_id, target.region, packs, True)


def _failed_aggregator(
    known: Mapping[AggregatorKey, AggregatorState], aggregator: str, account_id: str, region: str
) -> AggregatorState:
    previous = known.get((aggregator, account_id, region))
    if previous is not None:
        return dataclasses.replace(previous, poll_success=False)
    return AggregatorState(aggregator, account_id, region, (), False)


def _refresh_listing(
    target: Target, client: ConformancePackClient, memory: TargetMemory, settings: CycleSettings
) -> None:
    """DescribeConformancePacks at most once per discovery_interval of the monotonic clock, when discovering or
    while the account is not known: the packs discovery polls, and the account their ARNs name. On failure the
    previous listing stays."""
    packs = target.conformance_packs
    discover = packs is not None and packs.discover
    now = settings.monotonic()
    if not (discover or memory.account_id is None) or (
        memory.packs_listed_at is not None and now - memory.packs_listed_at < settings.discovery_interval
    ):
        return
    try:
        listed = client.conformance_packs()
    except AwsError as error:
        log_aws_failure("cannot list conformance packs", error, region=target.region)
        return
    memory.packs_listed_at = now
    if memory.account_id is None and listed:
        memory.account_id = listed[0].account_id
    if packs is not None and packs.discover:
        memory.packs_discovered = tuple(meta.name for meta in listed if packs.wants(meta.name))
        log.debug("discovered conformance packs", extra={"region": target.region, "count": len(listed)})


def _names(target: Target, memory: TargetMemory) -> tuple[str, ...]:
    named = target.conformance_packs.names if target.conformance_packs is not None else ()
    return tuple(dict.fromkeys((*named, *memory.packs_discovered)))


def _failed(previous: ConformancePackState | None, account_id: str, region: str, name: str) -> ConformancePackState:
    """A failed poll: the pack's last values stay; a pack never polled successfully publishes its status alone."""
    if previous is not None:
        return dataclasses.replace(previous, poll_success=False)
    return ConformancePackState(account_id, region, name, None, (), (), False, None)
