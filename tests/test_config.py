from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import Config, ConfigError, load, parse, parse_duration
from tests.conftest import ROOT, uuid

GOOD: dict[str, Any] = {
    "poll_interval": "15m",
    "max_concurrency": 4,
    "max_requests_per_second": 5,
    "targets": [
        {
            "region": "us-east-1",
            "endpoint_url": None,
            "profile": None,
            "assessments": [{"id": uuid(1), "name": "SOC 2 prod"}, {"id": uuid(2)}],
        }
    ],
}


def with_changes(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(raw)
    return caught.value.problems


def test_the_example_config_loads_with_the_documented_values():
    config = load(ROOT / "config.example.yaml")
    assert config.poll_interval == 900
    assert config.max_concurrency == 4
    assert config.max_requests_per_second == 5
    assert config.targets[0].region == "us-east-1"
    assert config.targets[0].assessments[0].name == "SOC 2 prod"
    assert (config.discovery_interval, config.max_control_domain_series) == (3600, 10000)
    (target,) = config.expanded_targets()
    assert (target.discover, target.control_domains, target.role_arn) == (False, False, None)


def test_a_discovering_target_needs_no_assessments_and_takes_the_roles_account():
    config = parse(
        {
            "targets": [
                {
                    "regions": ["us-east-1", "eu-west-1"],
                    "discover": True,
                    "role_arn": "arn:aws-us-gov:iam::123456789012:role/path/reader",
                    "include": "^prod",
                }
            ]
        }
    )
    targets = config.expanded_targets()
    assert [(t.region, t.role_account_id, t.session_name) for t in targets] == [
        ("us-east-1", "123456789012", "auditmanager-exporter"),
        ("eu-west-1", "123456789012", "auditmanager-exporter"),
    ]
    assert targets[0].wants("prod SOC 2") and not targets[0].wants("staging prod")


def test_a_minimal_config_gets_long_default_interval_and_gentle_limits():
    config = parse({"targets": [{"region": "eu-west-1", "assessments": [{"id": uuid(1)}]}]})
    assert config.poll_interval == 900
    assert config.max_requests_per_second == 5
    assert config.targets[0].assessments[0].name is None


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("1500ms", 1.5)]
)
def test_durations_take_prometheus_units(text: str, seconds: float):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (with_changes(bogus=1), "bogus: unknown key"),
        (with_changes(max_concurrency="4"), "max_concurrency: must be an integer"),
        (with_changes(max_concurrency=True), "max_concurrency: must be an integer"),
        (with_changes(max_concurrency=0), "max_concurrency: must be greater than 0"),
        (with_changes(max_requests_per_second=-1), "max_requests_per_second: must be greater than 0"),
        (with_changes(poll_interval="15 minutes"), "poll_interval: not a duration: '15 minutes'"),
        (with_changes(poll_interval=900), "poll_interval: must be a duration with a unit"),
        (with_changes(poll_interval="500ms"), "poll_interval: must be at least 1s"),
        (with_changes(read_timeout="0s"), "read_timeout: must be greater than 0"),
        (with_changes(read_timeout="2h"), "read_timeout: must be at most 1h"),
        (with_changes(poll_interval="99999999999h"), "poll_interval: must be at most 720h"),
        (with_changes(max_requests_per_second=float("inf")), "max_requests_per_second: must be a finite number"),
        (with_changes(max_requests_per_second=float("nan")), "max_requests_per_second: must be a finite number"),
        (with_changes(max_concurrency=10**12), "max_concurrency: must be less than or equal to 1000"),
        (with_changes(targets=[]), "targets: must not be empty"),
        (with_changes(targets="us-east-1"), "targets: must be a list"),
        ({"poll_interval": "1m"}, "targets: required"),
        (
            with_changes(targets=[{"region": "us-east-1", "assessments": [{"id": "0A1B"}]}]),
            "targets[0].assessments[0].id: not a UUID",
        ),
        (
            with_changes(targets=[{"region": "us-east-1", "assessments": [{"id": uuid(1), "nme": "x"}]}]),
            "targets[0].assessments[0].nme: unknown key",
        ),
        (with_changes(targets=[{"region": "moon", "assessments": [{"id": uuid(1)}]}]), "targets[0].region: not an AWS"),
        (
            with_changes(targets=[{"region": "us-east-1\n", "assessments": [{"id": uuid(1)}]}]),
            "targets[0].region: not an AWS",
        ),
        (
            with_changes(targets=[{"region": "us-east-1", "assessments": []}]),
            "targets[0].assessments: must not be empty",
        ),
        (
            with_changes(
                targets=[{"region": "us-east-1", "endpoint_url": "localhost:1", "assessments": [{"id": uuid(1)}]}]
            ),
            "targets[0].endpoint_url: not an http(s) URL",
        ),
        (
            with_changes(targets=[{"region": "us-east-1", "assessments": [{"id": uuid(1), "name": "x" * 301}]}]),
            "targets[0].assessments[0].name: longer than 300 characters",
        ),
        (
            with_changes(
                targets=[
                    {"region": "us-east-1", "assessments": [{"id": uuid(1)}]},
                    {"regions": ["eu-west-1", "us-east-1"], "assessments": [{"id": uuid(2)}, {"id": uuid(1)}]},
                ]
            ),
            f"targets[1].assessments[1].id: duplicate of targets[0].assessments[0].id ({uuid(1)})",
        ),
        (
            with_changes(targets=[{"region": "us-east-1", "assessments": [{"id": uuid(1)}, {"id": uuid(1)}]}]),
            f"targets[0].assessments[1].id: duplicate of targets[0].assessments[0].id ({uuid(1)})",
        ),
        (
            with_changes(targets=[{"region": "us-east-1", "regions": ["eu-west-1"], "discover": True}]),
            "targets[0].regions: give either region or regions, not both",
        ),
        (with_changes(targets=[{"discover": True}]), "targets[0].region: required (or regions"),
        (with_changes(targets=[{"regions": [], "discover": True}]), "targets[0].regions: must not be empty"),
        (
            with_changes(targets=[{"regions": ["eu-west-1", "eu-west-1"], "discover": True}]),
            "targets[0].regions[1]: duplicate of regions[0] (eu-west-1)",
        ),
        (with_changes(targets=[{"regions": ["moon"], "discover": True}]), "targets[0].regions[0]: not an AWS region"),
        (with_changes(targets=[{"region": "us-east-1"}]), "targets[0].assessments: required unless discover is true"),
        (
            with_changes(targets=[{"region": "us-east-1", "discover": "yes"}]),
            "targets[0].discover: must be true or false",
        ),
        (
            with_changes(targets=[{"region": "us-east-1", "discover": True, "include": "(unclosed"}]),
            "targets[0].include: not a regular expression",
        ),
        (
            with_changes(targets=[{"region": "us-east-1", "assessments": [{"id": uuid(1)}], "exclude": "x"}]),
            "targets[0].exclude: needs discover: true",
        ),
        (
            with_changes(targets=[{"region": "us-east-1", "discover": True, "role_arn": "arn:aws:iam::123:role/x"}]),
            "targets[0].role_arn: not an IAM role ARN",
        ),
        (
            with_changes(targets=[{"region": "us-east-1", "discover": True, "role_arn": "arn:aws:s3:::bucket"}]),
            "targets[0].role_arn: not an IAM role ARN",
        ),
        (
            with_changes(targets=[{"region": "us-east-1", "discover": True, "external_id": "abc"}]),
            "targets[0].external_id: needs role_arn",
        ),
        (
            with_changes(targets=[{"region": "us-east-1", "discover": True, "session_name": "x"}]),
            "targets[0].session_name: needs role_arn",
        ),
        (
            with_changes(
                targets=[
                    {
                        "region": "us-east-1",
                        "discover": True,
                        "role_arn": "arn:aws:iam::123456789012:role/r",
                        "session_name": "has space",
                    }
                ]
            ),
            "targets[0].session_name: must be 2 to 64",
        ),
        (
            with_changes(targets=[{"region": "us-east-1", "discover": True, "max_concurrency": 0}]),
            "targets[0].max_concurrency: must be greater than 0",
        ),
        (
            with_changes(targets=[{"region": "us-east-1", "discover": True, "max_requests_per_second": "5"}]),
            "targets[0].max_requests_per_second: must be a number",
        ),
        (with_changes(discovery_interval="0s"), "discovery_interval: must be at least 1s"),
        (with_changes(max_control_domain_series=-1), "max_control_domain_series: must be greater than or equal to 0"),
    ],
)
def test_each_bad_value_is_reported_with_its_key_path(raw: dict[str, Any], expected: str):
    problems = problems_of(raw)
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_reported_at_once():
    raw = {
        "poll_interval": "soon",
        "max_concurrency": -2,
        "surprise": True,
        "targets": [
            {"region": "us-east-1", "assessments": [{"id": "nope"}, {"id": uuid(1)}, {"id": uuid(1)}]},
            {"assessments": [{"id": uuid(3)}]},
        ],
    }
    problems = problems_of(raw)
    assert [p.split(":")[0] for p in problems] == [
        "poll_interval",
        "max_concurrency",
        "surprise",
        "targets[0].assessments[0].id",
        "targets[1].region",
        "targets[0].assessments[2].id",
    ]


def test_a_yaml_problem_names_the_place_but_never_quotes_the_file(tmp_path: Path):
    path = tmp_path / "config.yml"
    path.write_text("targets:\n  - region: us-east-1\n    profile: s3cr3t-value: oops\n")
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.problems == ["malformed YAML at line 3, column 26: mapping values are not allowed here"]


def test_yaml_nested_too_deeply_is_one_problem(tmp_path: Path):
    path = tmp_path / "config.yml"
    path.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.problems == ["malformed YAML: nested too deeply"]


def test_an_unreadable_file_is_one_problem(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path / "missing.yml")
    assert caught.value.problems == [f"cannot read: [Errno 2] No such file or directory: '{tmp_path / 'missing.yml'}'"]


@pytest.mark.parametrize("text", ["targets: [\n", "- just\n- a list\n", ""])
def test_malformed_or_non_mapping_yaml_is_one_problem(tmp_path: Path, text: str):
    path = tmp_path / "config.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert len(caught.value.problems) == 1
    assert "\n" not in caught.value.problems[0]


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--config.check", *args], capture_output=True, text=True, timeout=60
    )


def test_config_check_prints_config_ok_and_exits_0():
    result = run_check("--config.file", str(ROOT / "config.example.yaml"))
    assert (result.returncode, result.stdout.strip()) == (0, "config OK")


def test_config_check_lists_every_problem_one_line_each_and_exits_2(tmp_path: Path):
    path = tmp_path / "bad.yml"
    path.write_text("poll_interval: 0s\nmax_concurrency: 0\ntargets: []\n")
    result = run_check("--config.file", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{path}: poll_interval: must be at least 1s",
        f"{path}: max_concurrency: must be greater than 0",
        f"{path}: targets: must not be empty",
    ]
    assert "Traceback" not in result.stderr


# ---- sources and conformance packs


def config_target(**keys: Any) -> dict[str, Any]:
    return {"targets": [{"region": "us-east-1", "sources": ["config"], **keys}]}


def test_a_target_polls_audit_manager_only_unless_it_names_its_sources():
    (target,) = parse(GOOD).expanded_targets()

    assert (target.sources, target.conformance_packs) == (("auditmanager",), None)


def test_a_config_target_takes_a_list_of_pack_names_and_needs_no_assessments():
    (target,) = parse(config_target(conformance_packs=["Operational-Best-Practices-for-CIS", "S3"])).expanded_targets()

    assert target.sources == ("config",)
    assert target.conformance_packs is not None
    assert target.conformance_packs.names == ("Operational-Best-Practices-for-CIS", "S3")
    assert not target.conformance_packs.discover


def test_a_discovering_config_target_filters_packs_by_include_and_exclude():
    raw = config_target(conformance_packs={"discover": True, "include": "^Operational-", "exclude": "-Test$"})
    raw["targets"][0]["sources"] = ["auditmanager", "config"]
    raw["targets"][0]["discover"] = True

    (target,) = parse(raw).expanded_targets()

    packs = target.conformance_packs
    assert packs is not None and packs.discover and target.discover
    assert [packs.wants(name) for name in ("Operational-CIS", "Operational-CIS-Test", "S3")] == [True, False, False]


@pytest.mark.parametrize(
    ("keys", "problems"),
    [
        (
            {"sources": ["config", "awsconfig"]},
            ["targets[0].sources[1]: unknown source 'awsconfig' (known: auditmanager, config, securityhub)"],
        ),
        (
            {"sources": []},
            ["targets[0].sources: must not be empty", "targets[0].conformance_packs: needs config in sources"],
        ),
        ({"sources": ["config", "config"]}, ["targets[0].sources[1]: duplicate of targets[0].sources[0] (config)"]),
        ({"conformance_packs": None}, ["targets[0].conformance_packs: required when sources include config"]),
        (
            {"conformance_packs": {"names": []}},
            ["targets[0].conformance_packs: name at least one conformance pack, or set discover: true"],
        ),
        (
            {"conformance_packs": {"names": ["A"], "include": "^A"}},
            ["targets[0].conformance_packs.include: needs discover: true (it filters discovered conformance packs)"],
        ),
        (
            {"conformance_packs": ["Pack", "9-lives", "Pack"]},
            [
                "targets[0].conformance_packs.names[1]: not a conformance pack name (a letter, then letters, digits or"
                " -): '9-lives'",
                "targets[0].conformance_packs.names[2]: duplicate of targets[0].conformance_packs.names[0] (Pack)",
            ],
        ),
        (
            {"conformance_packs": {"discover": True, "exclude": "("}},
            [
                "targets[0].conformance_packs.exclude: not a regular expression: missing ), unterminated subpattern"
                " at position 0"
            ],
        ),
        (
            {"conformance_packs": {"discover": True, "aggregate": True}},
            ["targets[0].conformance_packs.aggregate: unknown key"],
        ),
        (
            {"conformance_packs": ["A"], "assessments": [{"id": uuid(1)}]},
            ["targets[0].assessments: needs auditmanager in sources"],
        ),
        (
            {"sources": ["auditmanager"], "assessments": [{"id": uuid(1)}]},
            ["targets[0].conformance_packs: needs config in sources"],
        ),
        (
            {"aggregator": "org/aggregator"},
            [
                "targets[0].aggregator: not a configuration aggregator name (1 to 256 letters, digits, _ or -):"
                " 'org/aggregator'"
            ],
        ),
        (
            {"aggregator": "a" * 257},
            [
                "targets[0].aggregator: not a configuration aggregator name (1 to 256 letters, digits, _ or -):"
                f" '{'a' * 257}'"
            ],
        ),
        ({"aggregator": 7}, ["targets[0].aggregator: must be a string"]),
        (
            {
                "sources": ["auditmanager"],
                "assessments": [{"id": uuid(1)}],
                "conformance_packs": None,
                "aggregator": "org",
            },
            ["targets[0].aggregator: needs config in sources"],
        ),
    ],
)
def test_bad_sources_and_conformance_packs_are_named_one_line_each(keys: dict[str, Any], problems: list[str]):
    raw = config_target(conformance_packs=["Pack"])
    raw["targets"][0].update(keys)
    raw["targets"][0] = {key: value for key, value in raw["targets"][0].items() if value is not None}

    assert problems_of(raw) == problems


def test_a_config_target_takes_an_aggregator_off_by_default():
    (plain,) = parse(config_target(conformance_packs=["Pack"])).expanded_targets()
    (aggregating,) = parse(config_target(conformance_packs=["Pack"], aggregator="org_aggregator-1")).expanded_targets()

    assert (plain.aggregator, aggregating.aggregator) == (None, "org_aggregator-1")


def test_config_check_names_a_bad_aggregator_in_one_line_and_exits_2(tmp_path: Path):
    path = tmp_path / "bad.yml"
    path.write_text(
        "targets:\n  - region: us-east-1\n    sources: [config]\n    conformance_packs: [P]\n    aggregator: a b\n"
    )

    result = run_check("--config.file", str(path))

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{path}: targets[0].aggregator: not a configuration aggregator name (1 to 256 letters, digits, _ or -): 'a b'"
    ]


def test_config_check_names_an_unknown_source_in_one_line_and_exits_2(tmp_path: Path):
    path = tmp_path / "bad.yml"
    path.write_text("targets:\n  - region: us-east-1\n    discover: true\n    sources: [auditmanager, cloudtrail]\n")

    result = run_check("--config.file", str(path))

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{path}: targets[0].sources[1]: unknown source 'cloudtrail' (known: auditmanager, config, securityhub)"
    ]


def test_the_configuration_reference_gives_each_top_level_default_the_code_has():
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    documented: dict[str, object] = {}
    for row in re.finditer(r"^\| ((?:`[a-z_]+`(?:, )?)+) \| ((?:`[^`|]*`(?:, )?)+) \|", text, re.MULTILINE):
        keys, values = re.findall(r"`([^`]*)`", row.group(1)), re.findall(r"`([^`]*)`", row.group(2))
        for key, value in zip(keys, values, strict=True):
            # A duration is a string; a list, the tuple the config holds; a mapping, the tuple of its pairs.
            raw = yaml.safe_load(value)
            if isinstance(raw, str):
                raw = parse_duration(raw)
            documented[key] = (
                tuple(raw) if isinstance(raw, list) else tuple(raw.items()) if isinstance(raw, dict) else raw
            )
    defaults = {field.name: field.default for field in dataclasses.fields(Config) if field.name != "targets"}
    assert {key: documented.get(key) for key in defaults} == defaults
