"""Which assessments a target polls: its configured ones and the ACTIVE ones discovery lists, the account that
owns them, and the shard each belongs to."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from exporter.aws import AuditManagerClient, AwsError, DescribedAssessment
from exporter.config import Target
from exporter.failures import log_aws_failure
from exporter.polling.state import TargetMemory

log = logging.getLogger("exporter.polling")

NOT_FOUND = "ResourceNotFoundException"
ACCOUNT_LOOKUP_FAILURES = 3
ACTIVE = "ACTIVE"


@dataclass(frozen=True)
class Wanted:
    """An assessment a cycle polls, the name the config gives it, if any, and whether the config names it (then it
    never vanishes: when AWS does not have it, it is a failed poll)."""

    assessment_id: str
    name: str | None
    configured: bool = False


def refresh_listing(
    target: Target, client: AuditManagerClient, memory: TargetMemory, now: float, every: float, *, blocking: bool = True
) -> AwsError | None:
    """One paged ListAssessments at most once every `every` seconds of the monotonic clock (`now`), for configured
    and discovered assessments alike: the names and statuses of all, and the ACTIVE ones for `discover`. On
    failure the previous listing stays, and the failure is returned. A target is never listed twice at once: while
    another thread lists it, a call waits (then finds the listing fresh) or, not `blocking`, keeps the previous
    listing and returns at once. Each works on its own copy of the memory: one that waited for the other finds the
    target listed by the gate."""
    gate = memory.listing_gate
    if not gate.lock.acquire(blocking=blocking):
        return None
    try:
        if (memory.listed_at is not None and now - memory.listed_at < every) or gate.fresh(now, every):
            return None
        try:
            listed = client.list_assessments()
        except AwsError as error:
            log_aws_failure("cannot list assessments", error, region=target.region)
            memory.listing_failed = True
            return error
        memory.listed_at, memory.listing_failed = now, False
        gate.listed_at = now
        memory.names.update((m.assessment_id, m.name) for m in listed)
        memory.statuses = {m.assessment_id: m.status for m in listed}
        if target.discover:
            memory.discovered = tuple(m.assessment_id for m in listed if m.status == ACTIVE and target.wants(m.name))
            log.debug("discovered assessments", extra={"region": target.region, "count": len(memory.discovered)})
        return None
    finally:
        gate.lock.release()


def wanted(target: Target, memory: TargetMemory) -> list[Wanted]:
    """The configured assessments, with their configured names, then the discovered ones not configured."""
    configured = {a.id: a.name for a in target.assessments}
    discovered = [i for i in memory.discovered if i not in configured]
    return [Wanted(i, configured.get(i), i in configured) for i in [*configured, *discovered]]


def resolve_account(
    client: AuditManagerClient, memory: TargetMemory, assessments: list[Wanted], gone: set[str]
) -> DescribedAssessment | None:
    """Learn the target's account, if not known (from role_arn), by GetAssessment on its first assessment that
    answers, once per target; return that answer (the assessment's look-up). Assessments that do not exist are added
    to `gone`. One assessment's failure moves on to the next, up to ACCOUNT_LOOKUP_FAILURES failures a cycle (a
    target-wide failure, such as AccessDenied, would otherwise cost a call per assessment); then the last failure
    is raised."""
    if memory.account_id is not None:
        return None
    failure = AwsError(NOT_FOUND, "none of the target's assessments exists")
    failures = 0
    for assessment in assessments:
        if failures == ACCOUNT_LOOKUP_FAILURES:
            break
        try:
            described = client.describe_assessment(assessment.assessment_id)
        except AwsError as error:
            if error.code == NOT_FOUND:
                gone.add(assessment.assessment_id)
            else:
                failure, failures = error, failures + 1
            continue
        memory.names[described.assessment_id] = described.name
        memory.account_id = described.account_id
        return described
    raise failure
