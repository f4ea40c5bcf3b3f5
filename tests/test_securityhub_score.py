"""Security Hub's control status and score rules, folded from findings as the GetFindings pages bring them."""

import pytest

from exporter.sources.securityhub.score import SEVERITIES, ControlInfo, FindingsFold, standard_id

FSBP = "standards/aws-foundational-security-best-practices/v/1.0.0"
CIS = "ruleset/cis-aws-foundations-benchmark/v/1.2.0"
FSBP_ARN = f"arn:aws:securityhub:us-east-1::{FSBP}"


def control(key, *, enabled=True, severity="MEDIUM"):
    return ControlInfo(key=key, control_id=key, severity=severity, enabled=enabled)


def finding(control_id, status, *, standards=(FSBP,), severity="MEDIUM"):
    return {
        "Id": f"{control_id}/{status}",
        "Severity": {"Label": severity},
        "Compliance": {
            "Status": status,
            "SecurityControlId": control_id,
            "AssociatedStandards": [{"StandardsId": s} for s in standards],
        },
    }


def legacy_finding(control_id, status, *, standard_arn=FSBP_ARN, severity="MEDIUM"):
    return {
        "Id": f"{control_id}/{status}",
        "Severity": {"Label": severity},
        "Compliance": {"Status": status},
        "ProductFields": {
            "StandardsArn": standard_arn,
            "ControlId": control_id,
            "StandardsControlArn": f"arn:aws:securityhub:us-east-1:123456789012:control/x/v/1.0.0/{control_id}",
        },
    }


def test_awss_own_example_12_enabled_6_passed_2_without_data_scores_60():
    controls = [control(f"C.{n}") for n in range(12)]
    findings = [finding(f"C.{n}", "PASSED") for n in range(6)]
    findings += [finding("C.6", "FAILED"), finding("C.7", "FAILED"), finding("C.8", "WARNING")]
    findings += [finding("C.9", "NOT_AVAILABLE")]
    fold = FindingsFold(legacy=False)

    fold.add(findings[:5])
    fold.add(findings[5:])
    result = fold.score(FSBP, controls)

    assert result.score == 60.0
    assert dict(result.by_status) == {"passed": 6, "failed": 2, "unknown": 2, "no_data": 2, "disabled": 0}


def test_one_failed_finding_fails_a_control_and_warnings_make_it_unknown_only_without_failures():
    fold = FindingsFold(legacy=False)
    fold.add([finding("A.1", "PASSED"), finding("A.1", "FAILED"), finding("A.1", "WARNING")])
    fold.add([finding("B.1", "PASSED"), finding("B.1", "NOT_AVAILABLE"), finding("C.1", "PASSED")])

    result = fold.score(FSBP, [control("A.1"), control("B.1"), control("C.1")])

    assert [(c.control_id, c.status) for c in result.controls] == [
        ("A.1", "failed"),
        ("B.1", "unknown"),
        ("C.1", "passed"),
    ]


def test_disabled_controls_count_as_disabled_are_left_out_of_the_score_and_have_no_status_series():
    fold = FindingsFold(legacy=False)
    fold.add([finding("A.1", "PASSED"), finding("B.1", "FAILED")])

    result = fold.score(FSBP, [control("A.1"), control("B.1", enabled=False)])

    assert result.score == 100.0
    assert result.by_status["disabled"] == 1
    assert [c.control_id for c in result.controls] == ["A.1"]


def test_no_score_while_no_enabled_control_has_data():
    fold = FindingsFold(legacy=False)
    fold.add([finding("B.1", "PASSED")])

    result = fold.score(FSBP, [control("A.1"), control("B.1", enabled=False)])

    assert result.score is None
    assert result.by_status["no_data"] == 1


def test_failed_findings_are_counted_by_severity_with_all_five_present_in_each_associated_standard():
    fold = FindingsFold(legacy=False)
    fold.add([finding("A.1", "FAILED", standards=(FSBP, CIS), severity="CRITICAL")] * 3)
    fold.add([finding("A.1", "FAILED", severity="LOW"), finding("A.1", "PASSED", severity="HIGH")])

    fsbp = fold.score(FSBP, [control("A.1")])
    cis = fold.score(CIS, [control("A.1")])
    other = fold.score("standards/pci-dss/v/3.2.1", [control("A.1")])

    assert dict(fsbp.failed_findings) == {"CRITICAL": 3, "HIGH": 0, "MEDIUM": 0, "LOW": 1, "INFORMATIONAL": 0}
    assert dict(cis.failed_findings) == {"CRITICAL": 3, "HIGH": 0, "MEDIUM": 0, "LOW": 0, "INFORMATIONAL": 0}
    assert set(other.failed_findings) == set(SEVERITIES)
    assert sum(other.failed_findings.values()) == 0


def test_a_legacy_account_groups_by_the_standard_and_control_its_product_fields_name():
    cis_arn = f"arn:aws:securityhub:::{CIS}"
    fold = FindingsFold(legacy=True)
    fold.add([legacy_finding("IAM.1", "FAILED"), legacy_finding("IAM.1", "PASSED", standard_arn=cis_arn)])
    fold.add([legacy_finding("S3.1", "PASSED")])

    fsbp = fold.score(FSBP, [control("IAM.1"), control("S3.1")])
    cis = fold.score(CIS, [control("IAM.1")])

    assert fsbp.score == 50.0
    assert cis.score == 100.0
    assert fold.malformed == {}


@pytest.mark.parametrize(
    "bad",
    [
        {"Id": "no-compliance", "Severity": {"Label": "HIGH"}},
        finding("A.1", "MAYBE"),
        finding("A.1", "FAILED", severity="SEVERE"),
        finding("A.1", "FAILED") | {"Severity": None},
        "not an object",
    ],
)
def test_a_malformed_finding_is_counted_against_its_standards_not_folded(bad):
    fold = FindingsFold(legacy=False)

    fold.add([finding("A.1", "PASSED"), bad])
    result = fold.score(FSBP, [control("A.1")])

    assert fold.malformed_in(FSBP) == 1
    assert fold.first_problem
    assert result.by_status["passed"] == 1
    assert sum(result.failed_findings.values()) == 0


def test_a_malformed_finding_naming_no_standard_fails_every_standard():
    fold = FindingsFold(legacy=False)

    fold.add(
        [
            {"Id": "x", "Severity": {"Label": "LOW"}},
            finding("A.1", "PASSED", standards=(CIS,))
            | {"Compliance": {"Status": "BAD", "AssociatedStandards": [{"StandardsId": CIS}]}},
        ]
    )

    assert fold.malformed_in(FSBP) == 1
    assert fold.malformed_in(CIS) == 2


def test_the_standard_id_is_the_resource_part_of_its_arn():
    assert standard_id(FSBP_ARN) == FSBP
    assert standard_id(f"arn:aws:securityhub:::{CIS}") == CIS
