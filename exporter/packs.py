"""One poll cycle's AWS Config part for one target: which conformance packs it polls (named in the config, or
discovered through DescribeConformancePacks once per discovery_interval), their scores in one paged call, and each
pack's rules.

A failure never escapes: it becomes `poll_success=0` on the packs it touched and their last good values stay. A pack
that AWS Config no longer has (NoSuchConformancePackException), or that discovery no longer lists, leaves.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from exporter.aws import AwsError
from exporter.awsconfig import NOT_FOUND, ConformancePackClient
from exporter.config import Target
from exporter.conformance import ConformancePackKey, ConformancePackState, rule_counts

log = logging.getLogger(__name__)


class Sharding(Protocol):
    def owns(self, account_id: str, region: str, key: str) -> bool: ...

    @property
    def polls_accounts(self) -> bool: ...


@dataclass
class PackMemory:
    """What is known about one target's conformance packs between cycles; `listed_at` is on the monotonic clock."""

    account_id: str | None
    discovered: tuple[str, ...] = ()
    listed_at: float | None = None


@dataclass(frozen=True)
class PackSettings:
    """What the conformance-pack part of every cycle of one poller shares."""

    shard: Sharding
    discovery_interval: float
    wall_clock: Callable[[], float]
    monotonic: Callable[[], float]


@dataclass(frozen=True)
class PackPlan:
    """A prepared target: its account, the packs to poll with the scores of its packs, and the packs whose poll is
    already decided (failed, when the account or the scores could not be had)."""

    account_id: str = ""
    wanted: tuple[str, ...] = ()
    scores: Mapping[str, float | None] = field(default_factory=dict)
    decided: tuple[ConformancePackState, ...] = ()


def prepare_packs(
    target: Target,
    client: ConformancePackClient,
    memory: PackMemory,
    settings: PackSettings,
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
        if memory.listed_at is not None or not settings.shard.polls_accounts:
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
        _log_failure("conformance pack scores poll failed", error, region=region, account_id=account_id)
        decided = (_failed(known.get((account_id, region, name)), account_id, region, name) for name in wanted)
        return PackPlan(account_id, decided=tuple(decided))
    return PackPlan(account_id, wanted, scores)


def poll_pack(
    target: Target,
    client: ConformancePackClient,
    plan: PackPlan,
    name: str,
    settings: PackSettings,
    known: Mapping[ConformancePackKey, ConformancePackState],
) -> ConformancePackState | None:
    """The pack's rules (one paged DescribeConformancePackCompliance) with its score from the plan; None if AWS
    Config no longer has the pack."""
    region = target.region
    previous = known.get((plan.account_id, region, name))
    try:
        rules = client.rule_compliance(name)
    except AwsError as error:
        _log_failure("conformance pack poll failed", error, region=region, conformance_pack=name)
        if error.code == NOT_FOUND:
            return None
        return _failed(previous, plan.account_id, region, name)
    score = plan.scores.get(name)
    return ConformancePackState(
        plan.account_id, region, name, score, rule_counts(rules), rules, True, settings.wall_clock()
    )


def _refresh_listing(target: Target, client: ConformancePackClient, memory: PackMemory, settings: PackSettings) -> None:
    """DescribeConformancePacks at most once per discovery_interval, when discovering or while the account is not
    known: the packs discovery polls, and the account their ARNs name. On failure the previous listing stays."""
    packs = target.conformance_packs
    discover = packs is not None and packs.discover
    now = settings.monotonic()
    if not (discover or memory.account_id is None) or (
        memory.listed_at is not None and now - memory.listed_at < settings.discovery_interval
    ):
        return
    try:
        listed = client.conformance_packs()
    except AwsError as error:
        _log_failure("cannot list conformance packs", error, region=target.region)
        return
    memory.listed_at = now
    if memory.account_id is None and listed:
        memory.account_id = listed[0].account_id
    if packs is not None and packs.discover:
        memory.discovered = tuple(meta.name for meta in listed if packs.wants(meta.name))
        log.debug("discovered conformance packs", extra={"region": target.region, "count": len(memory.discovered)})


def _names(target: Target, memory: PackMemory) -> tuple[str, ...]:
    named = target.conformance_packs.names if target.conformance_packs is not None else ()
    return tuple(dict.fromkeys((*named, *memory.discovered)))


def _failed(previous: ConformancePackState | None, account_id: str, region: str, name: str) -> ConformancePackState:
    """A failed poll: the pack's last values stay; a pack never polled successfully publishes its status alone."""
    if previous is not None:
        return dataclasses.replace(previous, poll_success=False)
    return ConformancePackState(account_id, region, name, None, (), (), False, None)


def _log_failure(message: str, error: AwsError, **fields: str) -> None:
    log.warning(
        message,
        extra={**fields, "error_code": error.code, "error": error.message},
        exc_info=log.isEnabledFor(logging.DEBUG),
    )
