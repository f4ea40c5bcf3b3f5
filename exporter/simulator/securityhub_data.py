"""The Security Hub simulator's data: the standards catalogue, controls, findings kept as compact sets (one record
for any number of alike findings, each finding built only when a page shows it) and GetFindings' string filters."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SECURITY_CONTROL = "SECURITY_CONTROL"
STANDARD_CONTROL = "STANDARD_CONTROL"
GENERATORS = (SECURITY_CONTROL, STANDARD_CONTROL)
PRODUCT_NAME = "Security Hub"
# Standard id (as findings name it in Compliance.AssociatedStandards) to its display name and ARN, with {region}.
STANDARDS: Mapping[str, tuple[str, str]] = {
    "standards/aws-foundational-security-best-practices/v/1.0.0": (
        "AWS Foundational Security Best Practices v1.0.0",
        "arn:aws:securityhub:{region}::standards/aws-foundational-security-best-practices/v/1.0.0",
    ),
    "ruleset/cis-aws-foundations-benchmark/v/1.2.0": (
        "CIS AWS Foundations Benchmark v1.2.0",
        "arn:aws:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0",
    ),
    "standards/cis-aws-foundations-benchmark/v/1.4.0": (
        "CIS AWS Foundations Benchmark v1.4.0",
        "arn:aws:securityhub:{region}::standards/cis-aws-foundations-benchmark/v/1.4.0",
    ),
    "standards/pci-dss/v/3.2.1": ("PCI DSS v3.2.1", "arn:aws:securityhub:{region}::standards/pci-dss/v/3.2.1"),
    "standards/nist-800-53/v/5.0.0": (
        "NIST Special Publication 800-53 Revision 5",
        "arn:aws:securityhub:{region}::standards/nist-800-53/v/5.0.0",
    ),
}
_NORMALIZED = {"INFORMATIONAL": 0, "LOW": 1, "MEDIUM": 40, "HIGH": 70, "CRITICAL": 90}
_FILTERED_FIELDS = ("RecordState", "WorkflowStatus", "ProductName", "AwsAccountId", "Region", "ComplianceStatus")
_POSITIVE = {"EQUALS", "PREFIX", "CONTAINS", "CONTAINS_WORD"}
_NEGATIVE = {"NOT_EQUALS", "PREFIX_NOT_EQUALS", "NOT_CONTAINS"}
_OBSERVED = "2026-01-05T08:00:00.000Z"


def standards_arn(standard_id: str, region: str) -> str:
    return STANDARDS[standard_id][1].format(region=region)


def subscription_arn(standard_id: str, region: str, account_id: str) -> str:
    path = standard_id.split("/", 1)[1]
    return f"arn:aws:securityhub:{region}:{account_id}:subscription/{path}"


def control_arn(standard_id: str, region: str, account_id: str, control_id: str) -> str:
    """The legacy StandardsControlArn; the exporter reads the control from its last segment."""
    path = standard_id.split("/", 1)[1]
    return f"arn:aws:securityhub:{region}:{account_id}:control/{path}/{control_id}"


def standard_named(arn: str) -> str | None:
    """The standard id a standards or subscription ARN names, if it is one of the catalogue's."""
    resource = arn.split(":", 5)[-1]
    for standard in STANDARDS:
        if resource == standard or resource == f"subscription/{standard.split('/', 1)[1]}":
            return standard
    return None


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True, kw_only=True)
class Control:
    """A security control and, per standard id, whether it is enabled there."""

    control_id: str
    title: str
    severity: str
    standards: Mapping[str, bool]


@dataclass(frozen=True, kw_only=True)
class FindingSet:
    """`count` alike findings of one control. None means the region's own account and region, the control's
    severity and standards; `status` and `severity` may be any string and `compliance=False` drops the Compliance
    block, so that tests can serve malformed findings."""

    control_id: str
    status: str
    count: int = 1
    severity: str | None = None
    standards: tuple[str, ...] | None = None
    record_state: str = "ACTIVE"
    workflow: str = "NEW"
    account_id: str | None = None
    region: str | None = None
    product: str = PRODUCT_NAME
    compliance: bool = True
    serial: int = field(default=0, compare=False)

    def fields(self, account_id: str, region: str) -> dict[str, str]:
        """The values GetFindings' filters compare, shared by every finding of the set."""
        return {
            "RecordState": self.record_state,
            "WorkflowStatus": self.workflow,
            "ProductName": self.product,
            "AwsAccountId": self.account_id or account_id,
            "Region": self.region or region,
            "ComplianceStatus": self.status,
        }


def unsupported_filters(filters: Mapping[str, Any]) -> list[str]:
    """The filter fields this simulator does not apply: asking for them is an error rather than silently ignored."""
    return sorted(key for key in filters if key not in _FILTERED_FIELDS)


def matches(filters: Mapping[str, Any], values: Mapping[str, str]) -> bool:
    """Whether a finding with these field values passes the StringFilters: on one field, the positive comparisons
    are ORed and the negative ones ANDed, as Security Hub combines them; fields are ANDed."""
    for key, conditions in filters.items():
        value = values[key]
        positive = [c for c in conditions if c.get("Comparison", "EQUALS") in _POSITIVE]
        negative = [c for c in conditions if c.get("Comparison") in _NEGATIVE]
        if positive and not any(_compare(c, value) for c in positive):
            return False
        if not all(_compare(c, value) for c in negative):
            return False
    return True


def _compare(condition: Mapping[str, str], value: str) -> bool:
    wanted = condition.get("Value", "")
    comparison = condition.get("Comparison", "EQUALS")
    if comparison in ("EQUALS", "NOT_EQUALS"):
        hit = value == wanted
    elif comparison in ("PREFIX", "PREFIX_NOT_EQUALS"):
        hit = value.startswith(wanted)
    elif comparison == "CONTAINS_WORD":
        hit = wanted in value.split()
    else:
        hit = wanted in value
    return hit if comparison in _POSITIVE else not hit


def finding_json(
    finding_set: FindingSet,
    index: int,
    standard_id: str | None,
    *,
    control: Control | None,
    account_id: str,
    region: str,
    subscription_account: str,
    updated: float,
) -> dict[str, Any]:
    """Finding `index` of the set: in consolidated form (`standard_id` None: SecurityControlId and every associated
    standard) or in legacy form for one standard (ProductFields name its ARN, subscription and control)."""
    owner = finding_set.account_id or account_id
    where = finding_set.region or region
    control_id = finding_set.control_id
    severity = finding_set.severity or (control.severity if control else "MEDIUM")
    title = control.title if control else control_id
    standards = finding_set.standards or (tuple(control.standards) if control else ())
    compliance: dict[str, Any] = {"Status": finding_set.status}
    product_fields = {"aws/securityhub/ProductName": PRODUCT_NAME, "aws/securityhub/CompanyName": "AWS"}
    if standard_id is None:
        generator = f"security-control/{control_id}"
        compliance |= {"SecurityControlId": control_id, "AssociatedStandards": [{"StandardsId": s} for s in standards]}
    else:
        generator = f"{standard_id.split('/', 1)[1]}/{control_id}"
        product_fields |= {
            "StandardsArn": standards_arn(standard_id, where),
            "StandardsSubscriptionArn": subscription_arn(standard_id, where, subscription_account),
            "ControlId": control_id,
            "StandardsControlArn": control_arn(standard_id, where, subscription_account, control_id),
        }
    resource = f"arn:aws:s3:::simulated-bucket-{finding_set.serial}-{index}"
    finding: dict[str, Any] = {
        "SchemaVersion": "2018-10-08",
        "Id": f"arn:aws:securityhub:{where}:{owner}:{generator}/finding/{finding_set.serial:05d}-{index:07d}",
        "ProductArn": f"arn:aws:securityhub:{where}::product/aws/securityhub",
        "ProductName": finding_set.product,
        "CompanyName": "AWS",
        "Region": where,
        "GeneratorId": generator,
        "AwsAccountId": owner,
        "Types": ["Software and Configuration Checks/Industry and Regulatory Standards"],
        "FirstObservedAt": _OBSERVED,
        "LastObservedAt": iso(updated),
        "CreatedAt": _OBSERVED,
        "UpdatedAt": iso(updated),
        "Severity": {"Label": severity, "Normalized": _NORMALIZED.get(severity, 0), "Original": severity},
        "Title": f"{control_id} {title}",
        "Description": f"This control checks: {title.lower()}.",
        "Remediation": {
            "Recommendation": {
                "Text": "For information on how to correct this issue, consult the AWS Security Hub controls "
                "documentation.",
                "Url": f"https://docs.aws.amazon.com/console/securityhub/{control_id}/remediation",
            }
        },
        "ProductFields": product_fields,
        "Resources": [{"Type": "AwsS3Bucket", "Id": resource, "Partition": "aws", "Region": where}],
        "WorkflowState": "NEW",
        "Workflow": {"Status": finding_set.workflow},
        "RecordState": finding_set.record_state,
        "FindingProviderFields": {"Severity": {"Label": severity, "Original": severity}},
        "ProcessedAt": iso(updated),
    }
    if finding_set.compliance:
        finding["Compliance"] = compliance
    return finding


def findings_slice(
    sets: Sequence[tuple[FindingSet, int]],
    start: int,
    size: int,
    standards_of: Callable[[FindingSet], tuple[str, ...]],
    legacy: bool,
) -> Iterator[tuple[FindingSet, int, str | None]]:
    """The findings at positions start..start+size of the sets laid end to end: each set's findings in order, in
    legacy mode each finding once per standard."""
    position = 0
    for finding_set, count in sets:
        if position + count <= start:
            position += count
            continue
        standards = standards_of(finding_set)
        for offset in range(max(0, start - position), count):
            if position + offset >= start + size:
                return
            if legacy:
                index, which = divmod(offset, len(standards))
                yield finding_set, index, standards[which]
            else:
                yield finding_set, offset, None
        position += count
