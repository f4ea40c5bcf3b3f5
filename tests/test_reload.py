"""Config reload by SIGHUP and POST /-/reload, end to end with the real process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable

import pytest

from exporter.simulator import Simulator
from tests.conftest import ROOT, ExporterProcess, Samples, eventually, insights, sample, series, uuid, write_config

REGION = "us-east-1"
DEADLINE_SECONDS = 20.0


def config_for(simulator: Simulator, numbers: list[int], poll_interval: str = "1h") -> dict[str, object]:
    return {
        "poll_interval": poll_interval,
        "max_attempts": 1,
        "targets": [
            {
                "region": REGION,
                "endpoint_url": simulator.url,
                "assessments": [{"id": uuid(n), "name": f"A{n}"} for n in numbers],
            }
        ],
    }


def post_reload(exporter: ExporterProcess, method: str = "POST") -> tuple[int, str]:
    request = urllib.request.Request(exporter.url + "/-/reload", method=method, data=b"" if method != "GET" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def sighup(exporter: ExporterProcess) -> None:
    exporter.process.send_signal(signal.SIGHUP)


TRIGGERS = {"SIGHUP": sighup, "POST /-/reload": post_reload}


def published(samples: Samples) -> set[str]:
    return {s["assessment_name"] for s in series(samples, "auditmanager_assessment_poll_success")}


def wait_for(exporter: ExporterProcess, condition: Callable[[Samples], bool]) -> Samples:
    return eventually(exporter.scrape, condition, what="the scrape", timeout=DEADLINE_SECONDS, detail=exporter.logs)


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_a_reload_polls_added_assessments_and_stops_publishing_removed_ones(simulator, run_exporter, trigger):
    for n in (1, 2, 3):
        simulator.add_assessment(REGION, uuid(n), f"A{n}", insights=insights(noncompliant=n))
    exporter = run_exporter(config_for(simulator, [1, 2]))
    before = exporter.scrape()
    assert published(before) == {"A1", "A2"}
    started = sample(before, "auditmanager_exporter_config_last_reload_success_timestamp_seconds")
    write_config(exporter.config_path, config_for(simulator, [2, 3]))
    if trigger == "POST /-/reload":
        assert post_reload(exporter) == (200, "config reloaded\n")
    else:
        sighup(exporter)
    after = wait_for(exporter, lambda samples: published(samples) == {"A2", "A3"})
    labels = {"account_id": "123456789012", "region": REGION, "assessment_id": uuid(3), "assessment_name": "A3"}
    assert sample(after, "auditmanager_assessment_evidence", **labels, compliance="noncompliant") == 3
    assert sample(after, "auditmanager_exporter_config_last_reload_successful") == 1
    assert sample(after, "auditmanager_exporter_config_last_reload_success_timestamp_seconds") > started
    assert 'msg="config reloaded"' in exporter.logs()


BAD_CONFIGS = {
    "malformed YAML": "targets: [\n",
    "a bad UUID": "targets:\n  - region: us-east-1\n    assessments: [{id: not-a-uuid}]\n",
    "an unknown key": "poll_intervall: 1s\ntargets: []\n",
}


@pytest.mark.parametrize(
    ("trigger", "bad"), [("SIGHUP", "malformed YAML"), ("POST /-/reload", "a bad UUID"), ("SIGHUP", "an unknown key")]
)
def test_a_bad_config_on_reload_is_rejected_and_the_old_one_keeps_running(simulator, run_exporter, trigger, bad):
    simulator.add_assessment(REGION, uuid(1), "A1", insights=insights(noncompliant=1))
    exporter = run_exporter(config_for(simulator, [1], poll_interval="1s"))
    started = sample(exporter.scrape(), "auditmanager_exporter_config_last_reload_success_timestamp_seconds")
    exporter.config_path.write_text(BAD_CONFIGS[bad], encoding="utf-8")
    if trigger == "POST /-/reload":
        status, body = post_reload(exporter)
        assert status == 500
        assert "previous config" in body
    else:
        sighup(exporter)
    samples = wait_for(exporter, lambda s: sample(s, "auditmanager_exporter_config_last_reload_successful") == 0)
    assert sample(samples, "auditmanager_exporter_config_last_reload_success_timestamp_seconds") == started
    failures = [line for line in exporter.logs().splitlines() if "config reload failed" in line]
    assert len(failures) == 1
    assert failures[0].startswith("ts=") and "level=error" in failures[0]
    assert "keeping the previous config" in failures[0]
    assert "Traceback" not in exporter.logs()
    # The old config keeps polling: a new value shows up.
    simulator.set_insights(REGION, uuid(1), insights(noncompliant=7))
    labels = {"account_id": "123456789012", "region": REGION, "assessment_id": uuid(1), "assessment_name": "A1"}
    wait_for(
        exporter, lambda s: sample(s, "auditmanager_assessment_evidence", **labels, compliance="noncompliant") == 7
    )
    # A fixed config is taken again.
    write_config(exporter.config_path, config_for(simulator, [1], poll_interval="1s"))
    TRIGGERS[trigger](exporter)
    wait_for(exporter, lambda s: sample(s, "auditmanager_exporter_config_last_reload_successful") == 1)


TWO_PROBLEMS = (
    f"poll_interval: soon\ntargets:\n  - region: us-east-1\n    bogus: 1\n    assessments: [{{id: {uuid(1)}}}]\n"
)
PROBLEMS = ["poll_interval: not a duration: 'soon' (use a unit, like 90s, 15m or 1h)", "targets[0].bogus: unknown key"]


def test_a_failed_reload_logs_its_problems_as_one_logfmt_value_joined_by_semicolons(simulator, run_exporter):
    exporter = run_exporter(config_for(simulator, [1]))
    exporter.config_path.write_text(TWO_PROBLEMS, encoding="utf-8")
    assert post_reload(exporter)[0] == 500
    [failure] = [line for line in exporter.logs().splitlines() if "config reload failed" in line]
    problems = [f"{exporter.config_path}: {problem}" for problem in PROBLEMS]
    assert failure.endswith(" problems=" + json.dumps("; ".join(problems)))


def test_a_failed_reload_logs_its_problems_as_a_json_list(simulator, run_exporter):
    exporter = run_exporter(config_for(simulator, [1]), "--log.format", "json")
    exporter.config_path.write_text(TWO_PROBLEMS, encoding="utf-8")
    assert post_reload(exporter)[0] == 500
    lines = [json.loads(line) for line in exporter.logs().splitlines() if line.startswith("{")]
    [failure] = [line for line in lines if line["msg"].startswith("config reload failed")]
    assert failure["problems"] == [f"{exporter.config_path}: {problem}" for problem in PROBLEMS]


def test_a_reload_with_the_config_file_gone_keeps_the_old_config(simulator, run_exporter):
    simulator.add_assessment(REGION, uuid(1), "A1", insights=insights())
    exporter = run_exporter(config_for(simulator, [1]))
    exporter.config_path.unlink()
    assert post_reload(exporter)[0] == 500
    samples = exporter.scrape()
    assert sample(samples, "auditmanager_exporter_config_last_reload_successful") == 0
    assert published(samples) == {"A1"}
    assert "cannot read" in exporter.logs()


def test_a_failed_reload_answers_with_the_problems_exactly_as_config_check_prints_them(simulator, run_exporter):
    simulator.add_assessment(REGION, uuid(1), "A1", insights=insights())
    exporter = run_exporter(config_for(simulator, [1]))
    assert exporter.config_path is not None
    exporter.config_path.write_text(
        "poll_interval: soon\ntargets:\n  - region: us-east-1\n    assessments: [{id: not-a-uuid}]\n    bogus: 1\n",
        encoding="utf-8",
    )
    check = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.check", "--config.file", str(exporter.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert check.returncode == 2
    problems = check.stderr.splitlines()
    assert len(problems) == 3, problems
    status, body = post_reload(exporter, "PUT")
    assert status == 500
    assert body.splitlines() == ["config reload failed; the previous config stays in use:", *problems]


def test_in_demo_mode_reload_re_reads_the_web_config_and_says_the_demo_config_stays(run_exporter):
    exporter = run_exporter(None, "--demo")
    for method in ("POST", "PUT"):
        status, body = post_reload(exporter, method)
        assert status == 200
        assert body == "web config reloaded; --demo has no config file to re-read, its built-in config stays in use\n"
    assert post_reload(exporter, "GET")[0] == 405
