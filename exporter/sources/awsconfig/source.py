"""The AWS Config source: per target, the conformance packs it names or discovers (DescribeConformancePacks, which
also names the account), every pack's score in one paged call, each pack's rules, and with `aggregator` the
configuration aggregator's packs of every source account and region in one more paged call.

A named pack is never silent: when it does not exist, is denied, or the target cannot be listed, it is published
with poll_success 0 and the error. A discovered pack that AWS Config no longer has leaves.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import Metric

from exporter.aws import SessionFactory
from exporter.awsconfig import NOT_FOUND, ConformancePackClient
from exporter.config import AWS_CONFIG, Config, Target
from exporter.snapshot import ApiCounters
from exporter.sources.awsconfig.metrics import families, status_rows
from exporter.sources.awsconfig.state import AggregatorState, ConformancePackState, limit_rule_series, rule_counts
from exporter.sources.base import (
    Context,
    Failure,
    Listing,
    Memory,
    Plan,
    Polled,
    Source,
    SourcePart,
    StatusRow,
    Task,
    UnitKey,
    failure_of,
)

log = logging.getLogger("exporter.polling")

SCORES = "ListConformancePackComplianceScores"
RULES = "DescribeConformancePackCompliance"
AGGREGATE = "DescribeAggregateComplianceByConformancePacks"
LISTING = "DescribeConformancePacks"
NO_PACKS = Failure(code=NOT_FOUND, message="AWS Config has no conformance pack in this account and region")

_State = ConformancePackState | AggregatorState


@dataclass(frozen=True, kw_only=True)
class AwsConfigPart:
    """The source's part of the snapshot, typed: packs and aggregators in key order."""

    packs: tuple[ConformancePackState, ...] = ()
    aggregators: tuple[AggregatorState, ...] = ()


def packs_of(part: SourcePart | None) -> tuple[ConformancePackState, ...]:
    return part.data.packs if part is not None and isinstance(part.data, AwsConfigPart) else ()


def aggregators_of(part: SourcePart | None) -> tuple[AggregatorState, ...]:
    return part.data.aggregators if part is not None and isinstance(part.data, AwsConfigPart) else ()


class AwsConfigSource(Source[_State, ConformancePackClient]):
    name = AWS_CONFIG
    metric_prefix = "awsconfig"
    list_operation = LISTING
    plan_operation = SCORES
    list_log_message = "cannot list conformance packs"

    def client(
        self, target: Target, config: Config, counters: ApiCounters, session: SessionFactory
    ) -> ConformancePackClient:
        return ConformancePackClient(target, config, counters, session)

    def discovers(self, target: Target) -> bool:
        return target.conformance_packs is not None and target.conformance_packs.discover

    def lists(self, target: Target, memory: Memory) -> bool:
        # Without a role ARN the account is learned from the ARN of a listed pack.
        return self.discovers(target) or memory.account_id is None

    def list(self, target: Target, client: ConformancePackClient, memory: Memory, now: float) -> Listing:
        listed = client.conformance_packs()
        packs = target.conformance_packs
        discovered = tuple(p.name for p in listed if packs.wants(p.name)) if packs and packs.discover else ()
        log.debug("discovered conformance packs", extra={"region": target.region, "count": len(discovered)})
        return Listing(at=now, account_id=listed[0].account_id if listed else None, discovered=discovered)

    def plan(
        self, target: Target, client: ConformancePackClient, memory: Memory, context: Context[_State]
    ) -> Plan[_State]:
        account_id, region = memory.account_id, target.region
        aggregator = self._aggregator_tasks(target, client, account_id or "", context)
        if account_id is None:
            # No account: the listing failed, or it found no pack (so the named ones do not exist). The named packs
            # are failed polls from shard 0 only: no shard owns a pack before its account is known.
            failure = memory.listing_failure or NO_PACKS
            plan = self.failed_plan(target, memory, context, failure, failing_target=False)
            return dataclasses.replace(plan, tasks=aggregator)
        wanted = [n for n in _names(target, memory) if context.shard.owns(account_id, region, n)]
        if not wanted:
            return Plan(account_id=account_id, memory=memory, tasks=aggregator)
        try:
            scores = {score.name: score.score for score in client.compliance_scores()}
        except Exception as error:
            # The packs fail; the aggregator, another call, still polls.
            failure = failure_of(error, context.counters, SCORES, "conformance pack scores poll failed", region=region)
            plan = self.failed_plan(target, memory, context, failure)
            return dataclasses.replace(plan, tasks=aggregator)
        configured = set(_configured(target))
        tasks = tuple(
            _pack_task(client, context, (account_id, region, name), scores.get(name), name in configured)
            for name in wanted
        )
        return Plan(account_id=account_id, memory=memory, tasks=(*tasks, *aggregator))

    def failed_plan(
        self,
        target: Target,
        memory: Memory,
        context: Context[_State],
        failure: Failure,
        *,
        failing_target: bool = True,
    ) -> Plan[_State]:
        """Every pack the target polls fails with `failure`, keeping its last values; the aggregator still polls."""
        account_id, region = memory.account_id, target.region
        if account_id is None and not context.shard.polls_accounts:
            return Plan(account_id=None, memory=memory)
        names = _configured(target) if account_id is None else _names(target, memory)
        decided = tuple(
            _failed_pack(context.known, (account_id or "", region, name), failure)
            for name in names
            if account_id is None or context.shard.owns(account_id, region, name)
        )
        return Plan(account_id=account_id, memory=memory, decided=decided, failure=failure if failing_target else None)

    def part(self, states: Iterable[_State], previous: SourcePart | None, config: Config) -> SourcePart:
        packs = sorted({s.key: s for s in states if isinstance(s, ConformancePackState)}.values(), key=_key)
        aggregators = sorted({s.key: s for s in states if isinstance(s, AggregatorState)}.values(), key=_key)
        limit = config.max_conformance_pack_rule_series
        limited, dropped = limit_rule_series(packs, limit)
        if dropped:
            log.warning(
                "conformance-pack rule series over max_conformance_pack_rule_series left out",
                extra={"dropped": dropped, "limit": limit},
            )
        data = AwsConfigPart(packs=tuple(limited), aggregators=tuple(aggregators))
        return SourcePart(
            states=(*data.packs, *data.aggregators),
            dropped=(previous.dropped if previous else 0) + dropped,
            data=data,
        )

    def families(self, part: SourcePart) -> Iterator[Metric]:
        return families(packs_of(part), aggregators_of(part), part.dropped)

    def status_rows(self, part: SourcePart) -> Iterable[StatusRow]:
        return status_rows(packs_of(part), aggregators_of(part))

    def _aggregator_tasks(
        self, target: Target, client: ConformancePackClient, account_id: str, context: Context[_State]
    ) -> tuple[Task[_State], ...]:
        aggregator, region = target.aggregator, target.region
        if aggregator is None or not context.shard.owns(account_id, region, aggregator):
            return ()
        key = (aggregator, account_id, region)

        def poll() -> Polled[_State]:
            packs = client.aggregate_compliance(aggregator)
            state = AggregatorState(
                aggregator=aggregator,
                account_id=account_id,
                region=region,
                packs=packs,
                poll_success=True,
                last_success=context.wall_clock(),
            )
            return Polled(states=(state,))

        def failed(failure: Failure) -> Polled[_State]:
            previous = context.known.get(key)
            if not isinstance(previous, AggregatorState):
                previous = AggregatorState(aggregator=aggregator, account_id=account_id, region=region,
                                           poll_success=False)  # fmt: skip
            return Polled(states=(previous.failed(failure),))

        fields = {"region": region, "aggregator": aggregator}
        return (
            Task(
                operation=AGGREGATE,
                run=poll,
                failed=failed,
                fields=fields,
                log_message="configuration aggregator poll failed",
            ),
        )


def _pack_task(
    client: ConformancePackClient, context: Context[_State], key: UnitKey, score: float | None, configured: bool
) -> Task[_State]:
    """The poll of one pack's rules (one paged DescribeConformancePackCompliance), with its score from the plan."""
    account_id, region, name = key

    def poll() -> Polled[_State]:
        rules = client.rule_compliance(name)
        state = ConformancePackState(
            account_id=account_id,
            region=region,
            name=name,
            score=score,
            rule_counts=rule_counts(rules),
            rules=rules,
            poll_success=True,
            last_success=context.wall_clock(),
        )
        return Polled(states=(state,))

    def failed(failure: Failure) -> Polled[_State]:
        if failure.code == NOT_FOUND and not configured:
            return Polled()  # a discovered pack AWS Config no longer has leaves
        if failure.code == NOT_FOUND:
            return Polled(states=(_failed_pack({}, key, failure),))  # named, yet gone: no values to keep
        return Polled(states=(_failed_pack(context.known, key, failure),))

    fields = {"region": region, "conformance_pack": name}
    return Task(operation=RULES, run=poll, failed=failed, fields=fields, log_message="conformance pack poll failed")


def _failed_pack(known: Mapping[UnitKey, Any], key: UnitKey, failure: Failure) -> ConformancePackState:
    """A failed poll: the pack's last values stay; a pack never polled successfully publishes its status alone."""
    previous = known.get(key)
    if not isinstance(previous, ConformancePackState):
        account_id, region, name = key
        previous = ConformancePackState(account_id=account_id, region=region, name=name, poll_success=False)
    return previous.failed(failure)


def _configured(target: Target) -> tuple[str, ...]:
    return target.conformance_packs.names if target.conformance_packs is not None else ()


def _names(target: Target, memory: Memory) -> tuple[str, ...]:
    discovered = memory.listing.discovered if memory.listing is not None else ()
    return tuple(dict.fromkeys((*_configured(target), *discovered)))


def _key(state: _State) -> UnitKey:
    return state.key
