"""Real-sized assessment frameworks for GetAssessment: control sets and controls shaped as botocore's model
describes them (descriptions, evidence sources, counts, comments), about 780 bytes of JSON per control."""

from __future__ import annotations

import functools
import random
import uuid
from typing import Any

CONTROLS_PER_SET = 50
# Families of a NIST SP 800-53-like catalogue: a 1,000-control framework has 20 control sets of 50 controls.
_FAMILIES = (
    ("AC", "Access control"),
    ("AT", "Awareness and training"),
    ("AU", "Audit and accountability"),
    ("CA", "Assessment, authorization and monitoring"),
    ("CM", "Configuration management"),
    ("CP", "Contingency planning"),
    ("IA", "Identification and authentication"),
    ("IR", "Incident response"),
    ("MA", "Maintenance"),
    ("MP", "Media protection"),
    ("PE", "Physical and environmental protection"),
    ("PL", "Planning"),
    ("PM", "Program management"),
    ("PS", "Personnel security"),
    ("PT", "Personally identifiable information processing and transparency"),
    ("RA", "Risk assessment"),
    ("SA", "System and services acquisition"),
    ("SC", "System and communications protection"),
    ("SI", "System and information integrity"),
    ("SR", "Supply chain risk management"),
)
_TITLES = (
    "Account management",
    "Access enforcement",
    "Information flow enforcement",
    "Separation of duties",
    "Least privilege",
    "Unsuccessful logon attempts",
    "Session termination",
    "Remote access",
    "Audit record generation",
    "Protection of audit information",
    "Baseline configuration",
    "Configuration change control",
    "System backup",
    "Cryptographic key establishment and management",
    "Transmission confidentiality and integrity",
    "Flaw remediation",
    "Malicious code protection",
    "System monitoring",
)
_SENTENCES = (
    "The organization defines the types of accounts allowed and specifically prohibited for use within the system.",
    "Collect evidence from AWS Config rules that evaluate whether the relevant resources are configured as required.",
    "Verify that AWS CloudTrail is enabled in every Region and that log file validation is turned on.",
    "Review the findings reported by AWS Security Hub and record the remediation of each failed check.",
    "Ensure that IAM policies grant only the permissions required to perform a task, following least privilege.",
    "Encryption at rest uses keys managed in AWS KMS, rotated at least once a year, with access logged.",
    "Changes to the baseline configuration are approved, tested and documented before they are deployed.",
    "Security groups do not allow unrestricted ingress to administrative ports from any address.",
    "Backups are taken on a defined schedule, stored in a separate account and restored in a periodic test.",
    "Alerts on unusual API activity are routed to the on-call responder and reviewed within one business day.",
)
_EVIDENCE_SOURCES = ("AWS Config", "AWS Security Hub", "AWS CloudTrail", "AWS API calls", "Manual")
_COMMENT_EVERY = 7
_COMMENT_POSTED = 1_700_000_000.0


@functools.lru_cache(maxsize=32)
def control_sets(framework: str, controls: int) -> tuple[dict[str, Any], ...]:
    """The `controlSets` of an assessment's `framework` with `controls` controls in sets of CONTROLS_PER_SET.

    The same framework and size always give the same content, so it is built once and shared: read-only.
    """
    rng = random.Random(f"framework/{framework}/{controls}")
    sets = []
    for start in range(0, controls, CONTROLS_PER_SET):
        code, family = _FAMILIES[(start // CONTROLS_PER_SET) % len(_FAMILIES)]
        members = [
            _control(framework, code, index, rng) for index in range(start, min(start + CONTROLS_PER_SET, controls))
        ]
        system = sum(c["evidenceCount"] for c in members if c["response"] == "AUTOMATE")
        sets.append(
            {
                "id": f"{code} - {family} ({start // CONTROLS_PER_SET + 1})",
                "description": f"Controls of the {family.lower()} family of {framework}.",
                "status": "ACTIVE",
                "roles": [],
                "controls": members,
                "delegations": [],
                "systemEvidenceCount": system,
                "manualEvidenceCount": sum(c["evidenceCount"] for c in members) - system,
            }
        )
    return tuple(sets)


def _control(framework: str, code: str, index: int, rng: random.Random) -> dict[str, Any]:
    description = " ".join(rng.sample(_SENTENCES, 5))
    manual = rng.random() < 0.15
    control: dict[str, Any] = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"auditmanager-control/{framework}/{index}")),
        "name": f"{code}-{index + 1} {rng.choice(_TITLES)}",
        "description": description,
        "status": rng.choice(("UNDER_REVIEW", "REVIEWED")),
        "response": "MANUAL" if manual else "AUTOMATE",
        "comments": [],
        "evidenceSources": ["Manual"] if manual else sorted(rng.sample(_EVIDENCE_SOURCES[:4], rng.randint(1, 3))),
        "evidenceCount": rng.randint(0, 400),
        "assessmentReportEvidenceCount": rng.randint(0, 20),
    }
    if index % _COMMENT_EVERY == 0:
        control["comments"] = [
            {
                "authorName": "compliance-reviewer",
                "commentBody": "Evidence reviewed; the open findings are tracked in the remediation backlog.",
                "postedDate": _COMMENT_POSTED,
            }
        ]
    return control
