"""The Security Hub CSPM source: per target, the hub and its standards subscriptions (listed once per
discovery_interval), then per cycle each polled standard's controls and one pass over the account's control findings,
folded into every standard's status, score and failed findings at once.

A named standard is never silent: not enabled, not READY, denied, or unlisted, it is published with poll_success 0
and the reason. A discovered standard that is no longer enabled leaves. All of a target's standards belong to one
shard, since they share one pass over the findings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import Metric

from exporter.aws import MALFORMED, AwsError, SessionFactory
from exporter.config import SECURITY_HUB, Config, Target
from exporter.snapshot import ApiCounters
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
    failure_of,
)
from exporter.sources.securityhub.client import SecurityHubClient, Subscription
from exporter.sources.securityhub.metrics import families, status_rows
from exporter.sources.securityhub.score import ControlInfo, FindingsFold
from exporter.sources.securityhub.state import StandardKey, StandardState, limit_control_series

log = logging.getLogger("exporter.polling")

LISTING = "DescribeHub"
FINDINGS = "GetFindings"
READY = "READY"
NOT_ENABLED = "StandardNotEnabled"
NOT_READY = "StandardNotReady"
NOT_LISTED = Failure(code="NotListed", message="the hub and its standards have not been listed yet")


@dataclass(frozen=True, kw_only=True)
class HubListing:
    """What a listing keeps: the control finding generator, the subscriptions, and the standards' names by id."""

    legacy: bool
    subscriptions: tuple[Subscription, ...]
    names: tuple[tuple[str, str], ...]

    def name(self, standard: str) -> str:
        return dict(self.names).get(standard, "")


class SecurityHubSource(Source[StandardState, SecurityHubClient]):
    name = SECURITY_HUB
    metric_prefix = "securityhub"
    list_operation = LISTING
    plan_operation = FINDINGS
    list_log_message = "cannot list the Security Hub standards"

    def client(
        self, target: Target, config: Config, counters: ApiCounters, session: SessionFactory
    ) -> SecurityHubClient:
        return SecurityHubClient(target, config, counters, session)

    def discovers(self, target: Target) -> bool:
        return target.standards.discover

    def lists(self, target: Target, memory: Memory) -> bool:
        # The hub (account, generator) and the subscriptions are needed whether the standards are named or not.
        return True

    def list(self, target: Target, client: SecurityHubClient, memory: Memory, now: float) -> Listing:
        hub = client.hub()
        subscriptions = client.subscriptions()
        names = client.standard_names()
        standards = target.standards
        discovered = tuple(
            s.standard_id for s in subscriptions if standards.discover and standards.wants(s.standard_id)
        )
        data = HubListing(legacy=hub.legacy, subscriptions=subscriptions, names=tuple(sorted(names.items())))
        return Listing(at=now, account_id=hub.account_id, discovered=discovered, data=data)

    def plan(
        self, target: Target, client: SecurityHubClient, memory: Memory, context: Context[StandardState]
    ) -> Plan[StandardState]:
        account_id, region = memory.account_id, target.region
        listing = memory.listing
        if account_id is None or listing is None or not isinstance(listing.data, HubListing):
            return self.failed_plan(target, memory, context, memory.listing_failure or NOT_LISTED)
        if not context.shard.owns(account_id, region, SECURITY_HUB):
            return Plan(account_id=account_id, memory=memory)
        hub = listing.data
        subscriptions = {s.standard_id: s for s in hub.subscriptions}
        decided, ready = [], []
        for standard in _names(target, memory):
            key = (account_id, region, standard)
            subscription = subscriptions.get(standard)
            if subscription is None:
                failure = Failure(code=NOT_ENABLED, message=f"{standard} is not enabled in Security Hub here")
                decided.append(_failed(context.known, key, failure, name=hub.name(standard)))
            elif subscription.status != READY:
                message = f"subscription status {subscription.status}: only READY standards are scored"
                failure = Failure(code=NOT_READY, message=message)
                decided.append(
                    _failed(context.known, key, failure, name=hub.name(standard), status=subscription.status)
                )
            else:
                ready.append(subscription)
        tasks = (_pass_task(client, context, account_id, hub, tuple(ready)),) if ready else ()
        return Plan(account_id=account_id, memory=memory, tasks=tasks, decided=tuple(decided))

    def failed_plan(
        self, target: Target, memory: Memory, context: Context[StandardState], failure: Failure
    ) -> Plan[StandardState]:
        """Every standard the target polls fails with `failure`, keeping its last values."""
        account_id, region = memory.account_id, target.region
        if account_id is None and not context.shard.polls_accounts:
            return Plan(account_id=None, memory=memory)
        if account_id is not None and not context.shard.owns(account_id, region, SECURITY_HUB):
            return Plan(account_id=account_id, memory=memory)
        names = target.standards.names if account_id is None else _names(target, memory)
        decided = tuple(_failed(context.known, (account_id or "", region, name), failure) for name in names)
        return Plan(account_id=account_id, memory=memory, decided=decided, failure=failure)

    def part(self, states: Iterable[StandardState], previous: SourcePart | None, config: Config) -> SourcePart:
        ordered = sorted({s.key: s for s in states}.values(), key=lambda s: s.key)
        limited, dropped = limit_control_series(ordered, config.max_securityhub_control_series)
        return SourcePart(
            states=tuple(limited), dropped=(previous.dropped if previous else 0) + dropped, data=tuple(limited)
        )

    def families(self, part: SourcePart) -> Iterator[Metric]:
        return families(_states_of(part), part.dropped)

    def status_rows(self, part: SourcePart) -> Iterable[StatusRow]:
        return status_rows(_states_of(part))


def _pass_task(
    client: SecurityHubClient,
    context: Context[StandardState],
    account_id: str,
    hub: HubListing,
    ready: tuple[Subscription, ...],
) -> Task[StandardState]:
    """Each READY standard's controls, then one pass over the account's findings for all of them."""
    region = client.region

    def key(subscription: Subscription) -> StandardKey:
        return (account_id, region, subscription.standard_id)

    def poll() -> Polled[StandardState]:
        controls: dict[str, tuple[ControlInfo, ...]] = {}
        failures: dict[str, Failure] = {}
        for subscription in ready:
            try:
                controls[subscription.standard_id] = (
                    client.legacy_controls(subscription.subscription_arn)
                    if hub.legacy
                    else client.consolidated_controls(subscription.standards_arn)
                )
            except AwsError as error:
                failures[subscription.standard_id] = failure_of(
                    error,
                    context.counters,
                    "DescribeStandardsControls",
                    "standard's controls poll failed",
                    region=region,
                    standard=subscription.standard_id,
                )
        fold = FindingsFold(legacy=hub.legacy)
        if controls:
            client.fold_findings(account_id, fold.add)
        if fold.malformed:
            _report_malformed(context.counters, region, fold)
        now = context.wall_clock()
        states = []
        for subscription in ready:
            standard, name, status = subscription.standard_id, hub.name(subscription.standard_id), subscription.status
            malformed = fold.malformed_in(standard)
            if standard in failures:
                states.append(_failed(context.known, key(subscription), failures[standard], name=name, status=status))
            elif malformed:
                failure = Failure(
                    code=MALFORMED, message=f"{malformed} malformed findings, the first: {fold.first_problem}"
                )
                states.append(_failed(context.known, key(subscription), failure, name=name, status=status))
            else:
                state = StandardState(
                    account_id=account_id,
                    region=region,
                    standard=standard,
                    name=name,
                    status=status,
                    result=fold.score(standard, controls[standard]),
                    poll_success=True,
                    last_success=now,
                )
                states.append(state)
        return Polled(states=tuple(states))

    def failed(failure: Failure) -> Polled[StandardState]:
        return Polled(
            states=tuple(
                _failed(context.known, key(s), failure, name=hub.name(s.standard_id), status=s.status) for s in ready
            )
        )

    return Task(
        operation=FINDINGS,
        run=poll,
        failed=failed,
        fields={"region": region, "standards": str(len(ready))},
        log_message="Security Hub findings poll failed",
    )


def _report_malformed(counters: ApiCounters, region: str, fold: FindingsFold) -> None:
    """Once per cycle: count the pass's malformed findings as one MalformedResponse of GetFindings, and log them."""
    counters.count_error(FINDINGS, region, MALFORMED)
    log.warning(
        "malformed Security Hub findings; their standards keep their last good values",
        extra={"region": region, "malformed": str(sum(fold.malformed.values())), "error": fold.first_problem or ""},
    )


def _failed(
    known: Mapping[Any, Any], key: StandardKey, failure: Failure, *, name: str = "", status: str = ""
) -> StandardState:
    """A failed poll: the standard's last values stay; one never polled successfully publishes its status alone."""
    previous = known.get(key)
    if not isinstance(previous, StandardState):
        account_id, region, standard = key
        previous = StandardState(account_id=account_id, region=region, standard=standard, poll_success=False)
    return previous.failed(failure, name=name, status=status)


def _names(target: Target, memory: Memory) -> tuple[str, ...]:
    discovered = memory.listing.discovered if memory.listing is not None else ()
    return tuple(dict.fromkeys((*target.standards.names, *discovered)))


def _states_of(part: SourcePart) -> tuple[StandardState, ...]:
    return tuple(s for s in part.states if isinstance(s, StandardState))
