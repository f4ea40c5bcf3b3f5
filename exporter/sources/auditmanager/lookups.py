"""Audit Manager's look-ups between cycles, on the background lane and the background slice of each target's rate:
one GetAssessment per polled assessment, once (its framework never changes), and, with `tag_labels`, one
ListTagsForResource per known assessment every discovery interval. They return values; the commit applies them."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from exporter.config import Config, Target
from exporter.failures import failure_of
from exporter.sources.auditmanager.client import AuditManagerClient, DescribedAssessment
from exporter.sources.auditmanager.polls import listed_of, lookup_of, polling_of
from exporter.sources.auditmanager.state import Lookup, allowed
from exporter.sources.base import Chores, Context, Memory, UnitState

# Look-ups of one target at a time: with the background slice of its rate, more would only wait.
LANE_LIMIT = 2


@dataclass(frozen=True, kw_only=True)
class LookedUp:
    """What the look-ups keep of one target: each assessment's look-up (by id), the look-ups' period (GetAssessment
    was tried for `tried` since `period_at`; a failed one is tried again in the next period), and when the tags were
    last refreshed, for which `tag_labels`. Times are on the monotonic clock."""

    lookups: Mapping[str, Lookup] = field(default_factory=lambda: MappingProxyType({}))
    period_at: float | None = None
    tried: frozenset[str] = frozenset()
    tags_at: float | None = None
    tag_labels: tuple[str, ...] = ()


def looked_up_of(kept: Any) -> LookedUp:
    return kept if isinstance(kept, LookedUp) else LookedUp()


def lookups_of(memory: Memory, kept: Any) -> dict[str, Lookup]:
    """Every look-up of the target: the one that resolved its account, and those made between cycles."""
    resolved = polling_of(memory).resolved
    return {**dict([resolved] if resolved is not None else []), **looked_up_of(kept).lookups}


def lookup_work(memory: Memory, kept: Any, now: float, every: float) -> list[str]:
    """The polled assessments never looked up: those not yet tried in the current period, or all of them once
    the period is older than `every` seconds of the monotonic clock (`now`), so a failed look-up is retried once
    a period."""
    if memory.account_id is None:
        return []
    known, looked = lookups_of(memory, kept), looked_up_of(kept)
    new = [i for i in polling_of(memory).polled if i not in known]
    if looked.period_at is not None and now - looked.period_at >= every:
        return new
    return [i for i in new if i not in looked.tried]


def tags_due(memory: Memory, kept: Any, now: float, every: float, tag_labels: tuple[str, ...]) -> bool:
    """Whether the target's tags are due: never refreshed (a new target, or the allow-list changed), or refreshed
    `every` seconds ago or more (the account look-up's answer holds tags too)."""
    if memory.account_id is None:
        return False
    looked = looked_up_of(kept)
    if looked.tag_labels != tag_labels:
        return True
    times = [t for t in (looked.tags_at, polling_of(memory).resolved_at) if t is not None]
    return not times or now - max(times) >= every


def due(memory: Memory, kept: Any, now: float, config: Config) -> bool:
    every, tag_labels = config.discovery_interval, config.tag_labels
    return bool(lookup_work(memory, kept, now, every)) or (
        bool(tag_labels) and tags_due(memory, kept, now, every, tag_labels)
    )


def chores(
    target: Target, client: AuditManagerClient, memory: Memory, kept: Any, context: Context[UnitState]
) -> Chores | None:
    """GetAssessment for each assessment `lookup_work` names, and, when the tags are due and `tag_labels` names
    some, ListTagsForResource for each polled assessment looked up before."""
    if memory.account_id is None:
        return None
    now, every, tag_labels = context.monotonic(), context.config.discovery_interval, context.config.tag_labels
    known, looked = lookups_of(memory, kept), looked_up_of(kept)
    work = lookup_work(memory, kept, now, every)
    new_period = looked.period_at is None or now - looked.period_at >= every
    tagging = tags_due(memory, kept, now, every, tag_labels)
    tagged = [i for i in polling_of(memory).polled if i in known] if tagging and tag_labels else []
    fields = {"region": target.region}
    calls: list[Callable[[], Any]] = [functools.partial(_describe, client, i, context, fields) for i in work]
    calls += [functools.partial(_list_tags, client, i, known[i].arn, context, fields) for i in tagged]

    # A look-up is kept while its assessment is polled or listed (a rediscovery does not ask again), and forgotten
    # after.
    keep = {*polling_of(memory).polled, *listed_of(memory).names, *work}

    def apply(stored: Any, results: Sequence[Any]) -> LookedUp:
        base = looked_up_of(stored)
        lookups = {i: lookup for i, lookup in base.lookups.items() if i in keep}
        for assessment_id, described in zip(work, results[: len(work)], strict=True):
            if isinstance(described, DescribedAssessment):
                lookups[assessment_id] = lookup_of(described, tag_labels)
        for assessment_id, tags in zip(tagged, results[len(work) :], strict=True):
            lookup = lookups.get(assessment_id) or known.get(assessment_id)
            if tags is not None and lookup is not None:
                lookups[assessment_id] = dataclasses.replace(lookup, tags=allowed(tags, tag_labels))
        return LookedUp(
            lookups=MappingProxyType(lookups),
            period_at=now if new_period else base.period_at,
            tried=frozenset(work) if new_period else base.tried | frozenset(work),
            tags_at=now if tagging else base.tags_at,
            tag_labels=tag_labels if tagging else base.tag_labels,
        )

    return Chores(calls=tuple(calls), at_once=min(LANE_LIMIT, target.max_concurrency), apply=apply)


def _describe(
    client: AuditManagerClient, assessment_id: str, context: Context[UnitState], fields: Mapping[str, str]
) -> DescribedAssessment | None:
    if context.stopped():
        return None
    try:
        return client.describe_assessment(assessment_id, background=True)
    except Exception as error:
        where = {**fields, "assessment_id": assessment_id}
        failure_of(error, context.counters, "GetAssessment", "cannot read assessment details", **where)
    return None


def _list_tags(
    client: AuditManagerClient, assessment_id: str, arn: str, context: Context[UnitState], fields: Mapping[str, str]
) -> Mapping[str, str] | None:
    if context.stopped():
        return None
    try:
        return client.list_tags(arn, background=True)
    except Exception as error:
        where = {**fields, "assessment_id": assessment_id}
        failure_of(error, context.counters, "ListTagsForResource", "cannot read assessment tags", **where)
    return None
