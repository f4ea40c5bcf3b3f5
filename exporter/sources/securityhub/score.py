"""Security Hub's control status and security score by AWS's documented rules, folded from the account's control
findings page by page: memory grows with the controls, never with the findings.

A control is failed when any of its findings is FAILED, unknown when any is WARNING or NOT_AVAILABLE (and none
FAILED), passed when all are PASSED, no_data without findings, disabled when the standard disables it. A standard's
score is passed / (enabled - no_data) * 100, and there is none while no enabled control has data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL")
CONTROL_STATUSES = ("passed", "failed", "unknown", "no_data", "disabled")
COMPLIANCE_STATUSES = ("PASSED", "WARNING", "FAILED", "NOT_AVAILABLE")
EVERY_STANDARD = "*"
"""What a malformed finding that names no standard makes fail: every standard of the pass."""

# What the findings of one control in one standard showed, as bits.
_PASSED, _UNKNOWN, _FAILED = 1, 2, 4
_BIT = {"PASSED": _PASSED, "WARNING": _UNKNOWN, "NOT_AVAILABLE": _UNKNOWN, "FAILED": _FAILED}


@dataclass(frozen=True, kw_only=True)
class ControlInfo:
    """A control of a standard as DescribeStandardsControls or the consolidated calls describe it. `key` is what its
    findings name it by (SecurityControlId, or in legacy mode the last segment of its StandardsControlArn)."""

    key: str
    control_id: str
    severity: str
    enabled: bool


@dataclass(frozen=True, kw_only=True)
class ControlStatus:
    control_id: str
    severity: str
    status: str


@dataclass(frozen=True, kw_only=True)
class StandardScore:
    """One standard's result of one pass: every enabled control's status, the controls by status (all five), the
    score (None while no enabled control has data), and the FAILED findings by severity (all five)."""

    controls: tuple[ControlStatus, ...]
    by_status: Mapping[str, int]
    score: float | None
    failed_findings: Mapping[str, int]


class FindingsFold:
    """The counts of one pass over an account's control findings, one page at a time (`add`).

    Consolidated findings (`legacy` False) name their control in Compliance.SecurityControlId and their standards in
    Compliance.AssociatedStandards; legacy ones name one standard and control in ProductFields. A finding without
    a Compliance block, with a status or severity outside the enum, or without its control is malformed: it is
    counted against the standards it names (EVERY_STANDARD if none) and never published as a number.
    """

    def __init__(self, *, legacy: bool) -> None:
        self.legacy = legacy
        self.findings = 0
        self.malformed: dict[str, int] = {}
        self.first_problem: str | None = None
        self._seen: dict[tuple[str, str], int] = {}
        self._failed: dict[str, dict[str, int]] = {}

    def add(self, findings: Iterable[Any]) -> None:
        """Fold one page of findings into the counts."""
        for finding in findings:
            self.findings += 1
            standards, control, status, severity, problem = _read(finding, self.legacy)
            if problem is not None:
                for standard in standards or (EVERY_STANDARD,):
                    self.malformed[standard] = self.malformed.get(standard, 0) + 1
                self.first_problem = self.first_problem or problem
                continue
            for standard in standards:
                key = (standard, control)
                self._seen[key] = self._seen.get(key, 0) | _BIT[status]
                if status == "FAILED":
                    failed = self._failed.setdefault(standard, dict.fromkeys(SEVERITIES, 0))
                    failed[severity] += 1

    def malformed_in(self, standard: str) -> int:
        """How many malformed findings make `standard` fail."""
        return self.malformed.get(standard, 0) + self.malformed.get(EVERY_STANDARD, 0)

    def score(self, standard: str, controls: Iterable[ControlInfo]) -> StandardScore:
        """The standard's result, from its controls and the findings folded so far."""
        by_status = dict.fromkeys(CONTROL_STATUSES, 0)
        statuses = []
        for control in controls:
            status = self._status(standard, control) if control.enabled else "disabled"
            by_status[status] += 1
            if control.enabled:
                statuses.append(ControlStatus(control_id=control.control_id, severity=control.severity, status=status))
        with_data = len(statuses) - by_status["no_data"]
        return StandardScore(
            controls=tuple(statuses),
            by_status=MappingProxyType(by_status),
            score=100 * by_status["passed"] / with_data if with_data else None,
            failed_findings=MappingProxyType(self._failed.get(standard, dict.fromkeys(SEVERITIES, 0))),
        )

    def _status(self, standard: str, control: ControlInfo) -> str:
        seen = self._seen.get((standard, control.key), 0)
        if seen & _FAILED:
            return "failed"
        if seen & _UNKNOWN:
            return "unknown"
        return "passed" if seen else "no_data"


def standard_id(arn: str) -> str:
    """The id findings name a standard by ("standards/…/v/1.0.0"): its ARN's resource part."""
    return arn.split(":", 5)[-1]


def _read(finding: Any, legacy: bool) -> tuple[tuple[str, ...], str, str, str, str | None]:
    """A finding's standards, control, compliance status and severity label, and its problem if it is malformed."""
    if not isinstance(finding, dict):
        return (), "", "", "", "a finding is not an object"
    compliance = finding.get("Compliance")
    fields = finding.get("ProductFields")
    standards: tuple[str, ...] = ()
    control = None
    if legacy and isinstance(fields, dict):
        arn = fields.get("StandardsArn")
        standards = (standard_id(arn),) if isinstance(arn, str) else ()
        control_arn = fields.get("StandardsControlArn")
        control = control_arn.rsplit("/", 1)[-1] if isinstance(control_arn, str) else fields.get("ControlId")
    elif not legacy and isinstance(compliance, dict):
        associated = compliance.get("AssociatedStandards") or []
        standards = tuple(a["StandardsId"] for a in associated if isinstance(a, dict) and "StandardsId" in a)
        control = compliance.get("SecurityControlId")
    if not isinstance(compliance, dict):
        return standards, "", "", "", f"finding {finding.get('Id')!r} has no Compliance block"
    status = compliance.get("Status")
    if status not in _BIT:
        return standards, "", "", "", f"finding {finding.get('Id')!r} has compliance status {status!r}"
    severity_block = finding.get("Severity")
    severity = severity_block.get("Label") if isinstance(severity_block, dict) else None
    if severity not in SEVERITIES:
        return standards, "", "", "", f"finding {finding.get('Id')!r} has severity {severity!r}"
    if not isinstance(control, str) or not standards:
        return standards, "", "", "", f"finding {finding.get('Id')!r} names no control or standard"
    return standards, control, status, severity, None
