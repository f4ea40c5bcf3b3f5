"""The Audit Manager simulator's state: an assessment as the simulator holds it, the checks AWS applies to what a test
adds, and the REST-JSON shapes in which the API answers with it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from exporter.simulator.framework import control_sets
from exporter.simulator.model import ControlDomain, Insights

if TYPE_CHECKING:
    from exporter.simulator.demo import Drift

STATUSES = frozenset({"ACTIVE", "INACTIVE"})
ASSESSMENT_ID = re.compile(r"[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}")
# TagMap's limits in botocore's model.
_TAG_KEY = re.compile(r"(?!aws:)[a-zA-Z+-=._:/]{1,128}")
_MAX_TAG_VALUE = 256
_MAX_TAGS = 50
EVIDENCE_KEYS = (
    ("noncompliantEvidenceCount", "noncompliant_evidence"),
    ("compliantEvidenceCount", "compliant_evidence"),
    ("inconclusiveEvidenceCount", "inconclusive_evidence"),
)
CONTROL_KEYS = (
    ("assessmentControlsCountByNoncompliantEvidence", "noncompliant_controls"),
    ("totalAssessmentControlsCount", "total_controls"),
)
_DOMAIN_CONTROL_KEYS = (
    ("controlsCountByNoncompliantEvidence", "noncompliant_controls"),
    ("totalControlsCount", "total_controls"),
)
ACTIVE_KEY = (("activeAssessmentsCount", "active_assessments"),)


@dataclass
class Assessment:
    """One assessment of the simulated account, as its operations answer it (changed only under the simulator's
    lock)."""

    id: str
    name: str
    status: str
    framework: str
    compliance_type: str
    created: datetime
    updated: datetime
    insights: Insights | None
    control_domains: tuple[ControlDomain, ...]
    framework_controls: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    drift: Drift | None = None
    per_request: Callable[[int], Insights] | None = None
    served: int = 0

    def current(self, now: float) -> tuple[Insights | None, tuple[ControlDomain, ...]]:
        if self.drift is None:
            return self.insights, self.control_domains
        return self.drift.at(now)


def checked_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """A copy of `tags`, if AWS would accept them (TagMap in botocore's model); else ValueError."""
    if len(tags) > _MAX_TAGS:
        raise ValueError(f"at most {_MAX_TAGS} tags, not {len(tags)}")
    for key, value in tags.items():
        if not _TAG_KEY.fullmatch(key):
            raise ValueError(f"not a tag key AWS accepts: {key!r}")
        if len(value) > _MAX_TAG_VALUE:
            raise ValueError(f"tag {key!r}: value longer than {_MAX_TAG_VALUE} characters")
    return dict(tags)


def check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"assessment status must be ACTIVE or INACTIVE, not {status!r}")


def assessment_arn(account_id: str, region: str, assessment: Assessment) -> str:
    return f"arn:aws:auditmanager:{region}:{account_id}:assessment/{assessment.id}"


def assessment_json(account_id: str, region: str, assessment: Assessment) -> dict[str, Any]:
    """GetAssessment's `assessment`: the account, the metadata and the framework with its control sets."""
    account = {"id": account_id, "name": f"Account {account_id}", "emailAddress": f"aws+{account_id}@example.com"}
    framework_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"auditmanager-framework/{assessment.framework}"))
    arn_prefix = f"arn:aws:auditmanager:{region}:{account_id}"
    metadata = metadata_json(assessment) | {"scope": {"awsAccounts": [account], "awsServices": []}}
    return {
        "arn": assessment_arn(account_id, region, assessment),
        "awsAccount": account,
        "metadata": metadata,
        "framework": {
            "id": framework_id,
            "arn": f"{arn_prefix}:assessmentFramework/{framework_id}",
            "metadata": {"name": assessment.framework, "complianceType": assessment.compliance_type},
            "controlSets": list(control_sets(assessment.framework, assessment.framework_controls)),
        },
        "tags": dict(assessment.tags),
    }


def counts_json(source: object, keys: tuple[tuple[str, str], ...], last_updated: datetime) -> dict[str, Any]:
    payload = {key: value for key, attribute in keys if (value := getattr(source, attribute)) is not None}
    payload["lastUpdated"] = last_updated.timestamp()
    return payload


def insights_json(insights: Insights) -> dict[str, Any]:
    return counts_json(insights, EVIDENCE_KEYS + CONTROL_KEYS, insights.last_updated)


def domain_json(domain: ControlDomain) -> dict[str, Any]:
    evidence = {key: value for key, attribute in EVIDENCE_KEYS if (value := getattr(domain, attribute)) is not None}
    payload = {"name": domain.name, "id": domain.id, "evidenceInsights": evidence}
    return payload | counts_json(domain, _DOMAIN_CONTROL_KEYS, domain.last_updated)


def metadata_json(assessment: Assessment) -> dict[str, Any]:
    return {
        "name": assessment.name,
        "id": assessment.id,
        "complianceType": assessment.compliance_type,
        "status": assessment.status,
        "creationTime": assessment.created.timestamp(),
        "lastUpdated": assessment.updated.timestamp(),
        "roles": [],
        "delegations": [],
    }
