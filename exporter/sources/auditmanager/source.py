"""The Audit Manager source: per target, the assessments it names or discovers (ListAssessments, which also gives
names and statuses), the account (from role_arn, else one GetAssessment per credential source), one task per
assessment and, on shard 0, GetInsights for the account; between cycles, each assessment's framework and tags
(`lookups`).

A configured assessment is never silent: when it does not exist, is denied, or the target cannot be resolved, it is
published with poll_success 0 and the error. A discovered assessment that AWS no longer has, or lists as no longer
ACTIVE, leaves.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator, Sequence
from types import MappingProxyType
from typing import Any

from prometheus_client.core import Metric

from exporter.aws import SessionFactory
from exporter.config import AUDIT_MANAGER, Config, Target
from exporter.snapshot import ApiCounters, Snapshot
from exporter.sources.auditmanager import lookups
from exporter.sources.auditmanager.client import AuditManagerClient, DescribedAssessment
from exporter.sources.auditmanager.metrics import families, status_rows
from exporter.sources.auditmanager.polls import (
    ACTIVE,
    Listed,
    Polling,
    Wanted,
    account_task,
    assessment_task,
    failed_assessment,
    listed_of,
    name_of,
    polling_of,
    resolve_account,
    resolved,
    wanted,
)
from exporter.sources.auditmanager.state import (
    AccountState,
    AssessmentDetails,
    AssessmentState,
    AuditManagerPart,
    allowed,
    limit_control_domains,
)
from exporter.sources.base import (
    Chores,
    Context,
    Failure,
    Held,
    Listing,
    Memory,
    Plan,
    Source,
    SourcePart,
    StatusRow,
    UnitState,
    failure_of,
)

log = logging.getLogger("exporter.polling")


def part_of(part: SourcePart | None) -> AuditManagerPart:
    return part.data if part is not None and isinstance(part.data, AuditManagerPart) else AuditManagerPart()


def audit_manager_part(snapshot: Snapshot | None) -> AuditManagerPart:
    """The source's part of a snapshot (empty when it has none)."""
    return part_of(snapshot.parts.get(AUDIT_MANAGER) if snapshot is not None else None)


def part_with(data: AuditManagerPart) -> SourcePart:
    """The SourcePart that publishes `data` as it is."""
    return SourcePart(states=(*data.assessments, *data.accounts), dropped=data.control_domain_series_dropped, data=data)


class AuditManagerSource(Source[UnitState, AuditManagerClient]):
    name = AUDIT_MANAGER
    metric_prefix = "auditmanager"
    list_operation = "ListAssessments"
    plan_operation = "ListAssessments"
    list_log_message = "cannot list assessments"

    def client(
        self, target: Target, config: Config, counters: ApiCounters, session: SessionFactory
    ) -> AuditManagerClient:
        return AuditManagerClient(target, config, counters, session)

    def discovers(self, target: Target) -> bool:
        return target.discover

    def lists(self, target: Target, memory: Memory) -> bool:
        # Configured and discovered assessments alike take their names and statuses from the listing.
        return True

    def list(self, target: Target, client: AuditManagerClient, memory: Memory, now: float) -> Listing:
        listed = client.list_assessments()
        discovered: tuple[str, ...] = ()
        if target.discover:
            discovered = tuple(m.assessment_id for m in listed if m.status == ACTIVE and target.wants(m.name))
            log.debug("discovered assessments", extra={"region": target.region, "count": len(discovered)})
        data = Listed(
            names=MappingProxyType({m.assessment_id: m.name for m in listed}),
            statuses=MappingProxyType({m.assessment_id: m.status for m in listed}),
        )
        return Listing(at=now, discovered=discovered, data=data)

    def initial_memory(self, target: Target) -> Memory:
        return Memory(account_id=target.role_account_id, data=Polling())

    def plan(
        self, target: Target, client: AuditManagerClient, memory: Memory, context: Context[UnitState]
    ) -> Plan[UnitState]:
        assessments = wanted(target, memory)
        if not assessments and memory.account_id is None:
            # Nothing to poll and no way to learn the account from Audit Manager: an empty result, not an error.
            return Plan(account_id=None, memory=memory)
        gone: set[str] = set()
        if memory.account_id is None:
            # One GetAssessment per credential source, not per target: its other targets (its other Regions) are told.
            learned: list[DescribedAssessment] = []

            def learn() -> str:
                learned.append(resolve_account(client, assessments, gone))
                return learned[0].account_id

            try:
                account_id = client.account(learn)
            except Exception as error:
                failure = failure_of(error, context.counters, "GetAssessment", "cannot resolve target",
                                     region=target.region)  # fmt: skip
                return self._failed(target, memory, context, failure, assessments, gone)
            if learned:
                memory = resolved(memory, learned[0], context.config.tag_labels, context.monotonic())
            else:
                memory = dataclasses.replace(memory, account_id=account_id)
        account_id, region, shard = memory.account_id or "", target.region, context.shard
        owned = [
            w
            for w in assessments
            if (w.configured or w.assessment_id not in gone) and shard.owns(account_id, region, w.assessment_id)
        ]
        memory = dataclasses.replace(
            memory, data=dataclasses.replace(polling_of(memory), polled=tuple(w.assessment_id for w in owned))
        )
        tasks = [assessment_task(target, client, memory, context, account_id, w) for w in owned]
        if shard.polls_accounts:
            tasks.append(account_task(target, client, context, account_id))
        return Plan(account_id=account_id, memory=memory, tasks=tuple(tasks))

    def failed_plan(
        self, target: Target, memory: Memory, context: Context[UnitState], failure: Failure
    ) -> Plan[UnitState]:
        return self._failed(target, memory, context, failure, wanted(target, memory), set())

    def _failed(
        self,
        target: Target,
        memory: Memory,
        context: Context[UnitState],
        failure: Failure,
        assessments: Sequence[Wanted],
        gone: set[str],
    ) -> Plan[UnitState]:
        """A target that cannot be polled: its assessments are failed polls. Those polled before keep their last
        values. The others get `poll_success` 0 so the failure shows (and alerts) from the first cycle: under their
        account if it is known and this shard owns them, else with an empty `account_id` from shard 0 only (no
        shard owns an assessment before its account is known)."""
        account_id, region, shard = memory.account_id, target.region, context.shard
        previous = {
            s.assessment_id: s
            for s in context.known.values()
            if isinstance(s, AssessmentState) and s.region == region and account_id in (None, s.account_id)
        }
        decided: list[UnitState] = []
        for w in assessments:
            if w.assessment_id in gone and not w.configured:
                continue
            if w.assessment_id in previous:
                decided.append(previous[w.assessment_id].failed(failure))
                continue
            if account_id is not None and not shard.owns(account_id, region, w.assessment_id):
                continue
            if account_id is None and not shard.polls_accounts:
                continue
            name = w.name or name_of(memory, w.assessment_id) or w.assessment_id
            key = (account_id or "", region, w.assessment_id)
            decided.append(failed_assessment(target, key, name, None, failure))
        account = context.known.get((account_id or "", region))
        if isinstance(account, AccountState) and shard.polls_accounts:
            decided.append(dataclasses.replace(account, poll_success=False))
        return Plan(account_id=account_id, memory=memory, decided=tuple(decided), failure=failure)

    def counted(self, state: UnitState) -> bool:
        return isinstance(state, AssessmentState)

    def part(self, states: Iterable[UnitState], previous: SourcePart | None, config: Config) -> SourcePart:
        # Two targets may reach the same assessment (one configured, one discovering): it is published once.
        unique: dict[Any, UnitState] = {}
        for state in states:
            unique.setdefault(state.key, state)
        assessments = sorted((s for s in unique.values() if isinstance(s, AssessmentState)), key=lambda s: s.key)
        accounts = sorted((s for s in unique.values() if isinstance(s, AccountState)), key=lambda a: a.key)
        limit = config.max_control_domain_series
        limited, dropped = limit_control_domains(assessments, limit)
        if dropped:
            log.warning(
                "control-domain series over max_control_domain_series left out",
                extra={"dropped": dropped, "limit": limit},
            )
        total = (previous.dropped if previous else 0) + dropped
        data = dataclasses.replace(
            part_of(previous),
            assessments=tuple(limited),
            accounts=tuple(accounts),
            control_domain_series_dropped=total,
        )
        return part_with(data)

    def background_due(self, target: Target, memory: Memory, kept: Any, now: float, config: Config) -> bool:
        return lookups.due(memory, kept, now, config)

    def background(
        self, target: Target, client: AuditManagerClient, memory: Memory, kept: Any, context: Context[UnitState]
    ) -> Chores | None:
        return lookups.chores(target, client, memory, kept, context)

    def published(self, part: SourcePart, held: Sequence[Held], config: Config) -> SourcePart:
        """The details of the part's assessments: framework from their look-up, status from the latest listing of
        their target (the look-up's until a listing names them), allow-listed tags."""
        data = part_of(part)
        present = {s.key for s in data.assessments}
        statuses: dict[tuple[str, str, str], str] = {}
        found: dict[tuple[str, str, str], Any] = {}
        for h in held:
            account_id, region = h.memory.account_id, h.target.region
            if account_id is None:
                continue
            for assessment_id, status in listed_of(h.memory).statuses.items():
                statuses[account_id, region, assessment_id] = status
            for assessment_id, lookup in lookups.lookups_of(h.memory, h.background).items():
                found.setdefault((account_id, region, assessment_id), lookup)
        details = {
            key: AssessmentDetails(
                lookup.framework, statuses.get(key, lookup.status), allowed(lookup.tags, config.tag_labels)
            )
            for key, lookup in found.items()
            if key in present
        }
        data = dataclasses.replace(data, details=MappingProxyType(details), tag_labels=config.tag_labels)
        return dataclasses.replace(part, data=data)

    def families(self, part: SourcePart) -> Iterator[Metric]:
        return families(part_of(part))

    def status_rows(self, part: SourcePart) -> Iterable[StatusRow]:
        return status_rows(part_of(part))
