"""The Security Hub part of the config: `sources: [securityhub]`, `standards`, and the per-operation rate limits."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.config import EVERY_ENABLED_STANDARD, ConfigError, parse

FSBP = "standards/aws-foundational-security-best-practices/v/1.0.0"
CIS = "ruleset/cis-aws-foundations-benchmark/v/1.2.0"


def config_with(target: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"targets": [{"region": "us-east-1", "sources": ["securityhub"], **target}], **top}


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    return caught.value.problems


def test_a_target_without_standards_polls_every_enabled_standard_at_awss_quotas():
    config = parse(config_with({}))

    target = config.expanded_targets()[0]
    assert target.sources == ("securityhub",)
    assert target.standards == EVERY_ENABLED_STANDARD
    assert dict(config.securityhub_rate_limits) == {"GetFindings": 3.0, "default": 10.0}
    assert config.max_securityhub_control_series == 10000


def test_standards_are_a_list_of_ids_or_names_with_discovery_filters():
    listed = parse(config_with({"standards": [FSBP, CIS]})).expanded_targets()[0].standards
    mapped = parse(config_with({"standards": {"names": [CIS], "discover": True, "exclude": "pci"}}))
    standards = mapped.expanded_targets()[0].standards

    assert listed.names == (FSBP, CIS)
    assert not listed.discover
    assert standards.names == (CIS,)
    assert standards.wants(FSBP)
    assert not standards.wants("standards/pci-dss/v/3.2.1")


def test_rate_limits_are_set_per_operation_over_the_defaults():
    config = parse(config_with({}, securityhub_rate_limits={"GetFindings": 1.5, "DescribeStandardsControls": 2}))

    assert dict(config.securityhub_rate_limits) == {
        "GetFindings": 1.5,
        "default": 10.0,
        "DescribeStandardsControls": 2.0,
    }


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (config_with({"standards": ["pci-dss"]}), "targets[0].standards[0]: not a Security Hub standard id"),
        (config_with({"standards": [FSBP, FSBP]}), "targets[0].standards[1]: duplicate of targets[0].standards[0]"),
        (config_with({"standards": {"names": []}}), "targets[0].standards: name at least one standard"),
        (config_with({"standards": {"names": [FSBP], "include": "x"}}), "targets[0].standards.include: needs discover"),
        (config_with({"standards": {"nme": [FSBP]}}), "targets[0].standards.nme: unknown key"),
        (
            {
                "targets": [
                    {"region": "us-east-1", "sources": ["config"], "conformance_packs": ["P"], "standards": [FSBP]}
                ]
            },
            "targets[0].standards: needs securityhub in sources",
        ),
        (config_with({}, securityhub_rate_limits={"GetFinding": 1}), "securityhub_rate_limits.GetFinding: unknown key"),
        (config_with({}, securityhub_rate_limits={"GetFindings": 0}), "securityhub_rate_limits.GetFindings: must be"),
        (config_with({"sources": ["securityhub", "securityhub"]}), "targets[0].sources[1]: duplicate"),
    ],
)
def test_bad_security_hub_settings_are_named_one_line_each(raw, problem):
    problems = problems_of(raw)

    assert len(problems) == 1
    assert problems[0].startswith(problem)
