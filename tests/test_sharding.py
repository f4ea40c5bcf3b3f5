"""Sharding: replicas split the assessments by a stable hash, every assessment polled by exactly one of them, and
the StatefulSet example gives each pod its shard from its ordinal."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from exporter.aws import AuditManagerClient
from exporter.config import parse
from exporter.polling import Poller, Shard, shard_of
from exporter.simulator import Simulator
from exporter.snapshot import ApiCounters
from exporter.sources.auditmanager.source import audit_manager_part
from tests.conftest import ROOT, insights, new_poller, require_module, series, uuid

STATEFULSET = ROOT / "deploy" / "kubernetes" / "sharded" / "statefulset.yaml"
DEPLOYMENT = ROOT / "deploy" / "kubernetes" / "deployment.yaml"
REGIONS = ("us-east-1", "eu-west-1")


def session(target):
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=target.region)


def shard_poller(sim: Simulator, shard: Shard) -> Poller:
    config = parse(
        {
            "max_requests_per_second": 100,
            "targets": [{"regions": list(REGIONS), "endpoint_url": sim.url, "discover": True}],
        }
    )
    clients = [AuditManagerClient(t, config, ApiCounters(), session) for t in config.expanded_targets()]
    return new_poller(config, clients, shard=shard)


def test_the_shard_is_a_sha256_of_account_region_and_assessment():
    digest = hashlib.sha256(f"123456789012/us-east-1/{uuid(1)}".encode()).digest()
    assert shard_of("123456789012", "us-east-1", uuid(1), 7) == int.from_bytes(digest[:8], "big") % 7
    assert shard_of("123456789012", "us-east-1", uuid(1), 1) == 0


def test_shards_spread_assessments_roughly_evenly():
    counts = [0, 0, 0, 0]
    for n in range(2000):
        counts[shard_of("123456789012", REGIONS[n % 2], uuid(n), 4)] += 1
    assert all(400 < count < 600 for count in counts), counts


@pytest.mark.parametrize("count", [1, 2, 3])
def test_every_assessment_is_polled_by_exactly_one_shard(simulator, count):
    for region in REGIONS:
        for n in range(12):
            simulator.add_assessment(region, uuid(n), f"{region} {n}", insights=insights())
    everything = {("123456789012", region, uuid(n)) for region in REGIONS for n in range(12)}
    polled: list[set[tuple[str, str, str]]] = []
    for index in range(count):
        simulator.reset_stats()
        snapshot = shard_poller(simulator, Shard(index, count)).poll()
        published = {s.key for s in audit_manager_part(snapshot).assessments}
        asked = {("123456789012", r.region, r.assessment_id) for r in simulator.requests("GetInsightsByAssessment")}
        assert asked == published
        # Only shard 0 polls and publishes the account-level insights.
        assert simulator.count("GetInsights") == (len(REGIONS) if index == 0 else 0)
        assert len(audit_manager_part(snapshot).accounts) == (len(REGIONS) if index == 0 else 0)
        polled.append(published)
    assert set().union(*polled) == everything
    assert sum(len(p) for p in polled) == len(everything)


def test_two_exporter_processes_split_the_assessments_without_overlap(simulator, run_exporter):
    for n in range(10):
        simulator.add_assessment("us-east-1", uuid(n), f"A{n}", insights=insights())
    config = {"targets": [{"region": "us-east-1", "endpoint_url": simulator.url, "discover": True}]}
    shards = [run_exporter(config, "--shard.index", str(i), "--shard.count", "2").scrape() for i in range(2)]
    polled = [
        {s["assessment_id"] for s in series(samples, "auditmanager_assessment_poll_success")} for samples in shards
    ]
    assert polled[0] | polled[1] == {uuid(n) for n in range(10)}
    assert not polled[0] & polled[1]
    assert [len(series(samples, "auditmanager_account_active_assessments")) for samples in shards] == [1, 0]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--shard.index", "2", "--shard.count", "2"], "--shard.index 2 must be at least 0 and below --shard.count 2"),
        (["--shard.index", "-1"], "--shard.index -1 must be at least 0 and below --shard.count 1"),
        (["--shard.count", "0"], "--shard.count 0 must be at least 1"),
        (["--shard.count", "two"], "argument --shard.count: invalid int value: 'two'"),
    ],
)
def test_a_bad_shard_flag_is_one_line_and_exit_2(flags, message):
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--demo", *flags], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_the_statefulset_example_validates_against_the_kubernetes_schema():
    kubernetes_validate = require_module("kubernetes_validate")
    kubernetes_validate.validate(load(STATEFULSET), kubernetes_validate.latest_version(), strict=True)


def test_each_statefulset_pod_takes_its_shard_from_its_ordinal_and_the_count_from_the_replicas():
    spec = load(STATEFULSET)["spec"]
    (container,) = spec["template"]["spec"]["containers"]
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {"SHARD_INDEX": "metadata.labels['apps.kubernetes.io/pod-index']"}
    assert "--shard.index=$(SHARD_INDEX)" in container["args"]
    counts = [int(m.group(1)) for a in container["args"] if (m := re.fullmatch(r"--shard\.count=(\d+)", a))]
    assert counts == [spec["replicas"]]


def test_the_statefulset_pods_match_the_deployments_but_for_the_shard():
    sharded = load(STATEFULSET)["spec"]["template"]
    plain = load(DEPLOYMENT)["spec"]["template"]
    (container,) = sharded["spec"]["containers"]
    container.pop("env")
    container["args"] = [a for a in container["args"] if not a.startswith("--shard.")]
    assert sharded == plain
    assert (
        load(STATEFULSET)["spec"]["serviceName"]
        == load(ROOT / "deploy" / "kubernetes" / "service.yaml")["metadata"]["name"]
    )
