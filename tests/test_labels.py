"""Label safety: hostile assessment names, from the config and from AWS, still give metrics promtool accepts."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import http_get, insights, parse_metrics, require_binary, series, uuid

NAMES = {
    1: 'Prod "PCI" \\ backslash',
    2: "two\nlines\r\nand a tab\t",
    3: "Zürich 東京 — ✓ 🚀",
    4: "x" * 300,
    5: "{braces}=\"quoted\",label='also'",
}


@pytest.mark.parametrize("source", ["config", "aws"])
def test_hostile_assessment_names_give_metrics_promtool_accepts(simulator, run_exporter, tmp_path, source):
    checker = require_binary("promtool")
    for n, name in NAMES.items():
        simulator.add_assessment("us-east-1", uuid(n), name, insights=insights())
    assessments = [{"id": uuid(n), **({"name": name} if source == "config" else {})} for n, name in NAMES.items()]
    exporter = run_exporter(
        {
            "poll_interval": "1h",
            "targets": [{"region": "us-east-1", "endpoint_url": simulator.url, "assessments": assessments}],
        }
    )
    status, body, _ = http_get(exporter.url + "/metrics")
    assert status == 200
    result = subprocess.run([checker, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    names = {s["assessment_name"] for s in series(parse_metrics(body.decode()), "auditmanager_assessment_controls")}
    assert names == set(NAMES.values())
