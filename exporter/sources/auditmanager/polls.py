"""Audit Manager's polls of one target: which assessments it polls (configured, then discovered ACTIVE ones), the
account that owns them, and the tasks of one cycle, one per assessment and GetInsights for the account."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from exporter.aws import AwsError
from exporter.config import Target
from exporter.failures import Failure, failure_of
from exporter.snapshot import ApiCounters
from exporter.sources.auditmanager.client import AuditManagerClient, DescribedAssessment
from exporter.sources.auditmanager.state import (
    AccountState,
    AssessmentState,
    ControlDomainInsights,
    Lookup,
    allowed,
)
from exporter.sources.base import Context, Memory, Polled, Task, UnitState

NOT_FOUND = "ResourceNotFoundException"
ACCOUNT_LOOKUP_FAILURES = 3
ACTIVE = "ACTIVE"


@dataclass(frozen=True, kw_only=True)
class Listed:
    """What the exporter keeps of a target's ListAssessments (`Listing.data`): each assessment's name and status."""

    names: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    statuses: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, kw_only=True)
class Polling:
    """What a cycle keeps of a target (`Memory.data`): the assessments it polled last, and the GetAssessment that
    resolved its account (its answer is that assessment's look-up: the look-ups between cycles need not ask again)."""

    polled: tuple[str, ...] = ()
    resolved: tuple[str, Lookup] | None = None
    resolved_at: float | None = None


@dataclass(frozen=True)
class Wanted:
    """An assessment a cycle polls, the name the config gives it, if any, and whether the config names it (then it
    never vanishes: when AWS does not have it, it is a failed poll)."""

    assessment_id: str
    name: str | None
    configured: bool = False


def listed_of(memory: Memory) -> Listed:
    data = memory.listing.data if memory.listing is not None else None
    return data if isinstance(data, Listed) else Listed()


def polling_of(memory: Memory) -> Polling:
    return memory.data if isinstance(memory.data, Polling) else Polling()


def wanted(target: Target, memory: Memory) -> list[Wanted]:
    """The configured assessments, with their configured names, then the discovered ones not configured."""
    configured = {a.id: a.name for a in target.assessments}
    found = memory.listing.discovered if memory.listing is not None else ()
    discovered = [i for i in found if i not in configured]
    return [Wanted(i, configured.get(i), i in configured) for i in [*configured, *discovered]]


def name_of(memory: Memory, assessment_id: str) -> str | None:
    """The assessment's name as the target's listing or its account look-up gives it."""
    resolved = polling_of(memory).resolved
    listed = listed_of(memory).names.get(assessment_id)
    if listed is None and resolved is not None and resolved[0] == assessment_id:
        return resolved[1].name
    return listed


def resolve_account(client: AuditManagerClient, assessments: list[Wanted], gone: set[str]) -> DescribedAssessment:
    """Learn the target's account (when role_arn does not give it) by GetAssessment on its first assessment that
    answers; return that answer. Assessments that do not exist are added to `gone`. One assessment's failure moves on
    to the next, up to ACCOUNT_LOOKUP_FAILURES failures a cycle (a target-wide failure, such as AccessDenied, would
    otherwise cost a call per assessment); then the last failure is raised."""
    failure = AwsError(NOT_FOUND, "none of the target's assessments exists")
    failures = 0
    for assessment in assessments:
        if failures == ACCOUNT_LOOKUP_FAILURES:
            break
        try:
            return client.describe_assessment(assessment.assessment_id)
        except AwsError as error:
            if error.code == NOT_FOUND:
                gone.add(assessment.assessment_id)
            else:
                failure, failures = error, failures + 1
    raise failure


def resolved(memory: Memory, described: DescribedAssessment, tag_labels: tuple[str, ...], now: float) -> Memory:
    """The memory once `described` named the target's account."""
    lookup = lookup_of(described, tag_labels)
    polling = dataclasses.replace(polling_of(memory), resolved=(described.assessment_id, lookup), resolved_at=now)
    return dataclasses.replace(memory, account_id=described.account_id, data=polling)


def lookup_of(described: DescribedAssessment, tag_labels: tuple[str, ...]) -> Lookup:
    """What the exporter keeps of a GetAssessment answer."""
    return Lookup(
        name=described.name,
        framework=described.framework_name,
        status=described.status,
        arn=described.arn,
        tags=allowed(described.tags, tag_labels),
    )


def failed_assessment(
    target: Target, key: tuple[str, str, str], name: str, last_success: float | None, failure: Failure
) -> AssessmentState:
    """A failed poll of an assessment with no values to keep (never polled, or gone although the config names it)."""
    account_id, region, assessment_id = key
    state = AssessmentState(
        account_id=account_id,
        region=region,
        assessment_id=assessment_id,
        name=name,
        insights=None,
        poll_success=False,
        last_success=last_success,
        control_domains_success=False if target.control_domains else None,
    )
    return state.failed(failure)


def assessment_task(
    target: Target,
    client: AuditManagerClient,
    memory: Memory,
    context: Context[UnitState],
    account_id: str,
    wanted: Wanted,
) -> Task[UnitState]:
    """GetInsightsByAssessment of one assessment, then, with `control_domains`, its control domains."""
    key = (account_id, target.region, wanted.assessment_id)
    known = context.known.get(key)
    previous = known if isinstance(known, AssessmentState) else None
    name = wanted.name or name_of(memory, wanted.assessment_id) or (previous.name if previous else None)
    name = name or wanted.assessment_id
    fields = {"region": target.region, "assessment_id": wanted.assessment_id}

    def poll() -> Polled[UnitState]:
        insights = client.assessment_insights(wanted.assessment_id)
        now = context.wall_clock()
        state = AssessmentState(
            account_id=account_id,
            region=target.region,
            assessment_id=wanted.assessment_id,
            name=name,
            insights=insights,
            poll_success=True,
            last_success=now,
        )
        if target.control_domains:
            state = _with_control_domains(state, client, previous, context.counters, now, fields)
        return Polled(states=(state,))

    def failed(failure: Failure) -> Polled[UnitState]:
        if failure.code == NOT_FOUND and not wanted.configured:
            return Polled()  # a discovered assessment AWS no longer has leaves
        if previous is not None and failure.code != NOT_FOUND:
            return Polled(states=(previous.failed(failure),))
        # Never polled, or named in the config yet gone: a failed poll without values.
        last_success = previous.last_success if previous is not None else None
        return Polled(states=(failed_assessment(target, key, name, last_success, failure),))

    return Task(operation="GetInsightsByAssessment", run=poll, failed=failed, fields=fields, log_message="poll failed")


def _with_control_domains(
    state: AssessmentState,
    client: AuditManagerClient,
    previous: AssessmentState | None,
    counters: ApiCounters,
    now: float,
    fields: Mapping[str, str],
) -> AssessmentState:
    domains: tuple[ControlDomainInsights, ...]
    try:
        domains = client.control_domain_insights(state.assessment_id)
    except Exception as error:
        operation = "ListControlDomainInsightsByAssessment"
        failure_of(error, counters, operation, "control domain poll failed", **fields)
        return dataclasses.replace(
            state,
            control_domains=previous.control_domains if previous else (),
            control_domains_success=False,
            control_domains_last_success=previous.control_domains_last_success if previous else None,
        )
    return dataclasses.replace(
        state, control_domains=domains, control_domains_success=True, control_domains_last_success=now
    )


def account_task(
    target: Target, client: AuditManagerClient, context: Context[UnitState], account_id: str
) -> Task[UnitState]:
    """GetInsights: the account-level counts of the target's account and region (shard 0 polls it)."""
    region = target.region
    known = context.known.get((account_id, region))
    previous = known if isinstance(known, AccountState) else None

    def poll() -> Polled[UnitState]:
        insights = client.account_insights()
        return Polled(states=(AccountState(account_id, region, insights, True, context.wall_clock()),))

    def failed(failure: Failure) -> Polled[UnitState]:
        if previous is None:
            return Polled(states=(AccountState(account_id, region, None, False, None),), failure=failure)
        return Polled(states=(dataclasses.replace(previous, poll_success=False),), failure=failure)

    return Task(
        operation="GetInsights",
        run=poll,
        failed=failed,
        fields={"region": region, "account_id": account_id},
        log_message="account insights poll failed",
    )
