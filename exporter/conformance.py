"""What AWS Config answers about conformance packs, as plain immutable data: what the client's parsers return and
the AWS Config source reads."""

from __future__ import annotations

from dataclasses import dataclass

COMPLIANT = "COMPLIANT"
NON_COMPLIANT = "NON_COMPLIANT"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
COMPLIANCE_TYPES = (COMPLIANT, NON_COMPLIANT, INSUFFICIENT_DATA)


@dataclass(frozen=True)
class PackScore:
    """One pack's entry of ListConformancePackComplianceScores: its score in percent, None when AWS has none."""

    name: str
    score: float | None


@dataclass(frozen=True)
class RuleCompliance:
    """One rule of a pack (DescribeConformancePackCompliance): its name and one of COMPLIANCE_TYPES."""

    rule: str
    compliance: str


@dataclass(frozen=True)
class PackMeta:
    """One pack of DescribeConformancePacks, with the account its ARN names."""

    name: str
    account_id: str


@dataclass(frozen=True)
class AggregatePackCompliance:
    """One entry of DescribeAggregateComplianceByConformancePacks: a pack of a source account and region, with how
    many of its rules are COMPLIANT and NON_COMPLIANT."""

    account_id: str
    region: str
    name: str
    compliant: int
    noncompliant: int
