"""Alerts delivered end to end: the real exporter polls the simulator, a real Prometheus evaluates
prometheus/alerts.yml over 8 days of backfilled history (promtool tsdb create-blocks-from openmetrics, then
create-blocks-from rules), and a real Alertmanager delivers to a webhook in this test.

Only the rules' `for:` durations are shortened in the test's copy of alerts.yml (a real-time test cannot wait 15-30
minutes per alert); `test_the_test_rules_differ_from_alerts_yml_only_in_their_for_durations` checks that."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.simulator import Fault, Insights, Simulator
from tests.conftest import eventually, free_port, http_get, parse_metrics, require_binary, uuid
from tests.test_prometheus_e2e import NEEDS_HISTORY, all_panel_queries, reads, stop, to_promql

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "prometheus" / "alerts.yml"
JOB = "auditmanager-exporter"
REGION = "us-east-1"
ASSESSMENT_ID, ASSESSMENT_NAME = uuid(1), "SOC 2 prod"
BASELINE, SPIKE = 5, 60
HISTORY_SECONDS = 8 * 86400
HISTORY_STEP_SECONDS = 600
TEST_FOR = "2s"
DEADLINE_SECONDS = 120.0


def insights(noncompliant: int) -> Insights:
    return Insights(noncompliant, 50, 2, 3, 40, datetime.now(UTC))


def wait_for(what: str, check: Callable[[], Any], logs: list[Path], deadline: float = DEADLINE_SECONDS) -> Any:
    def tails() -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}" for path in logs if path.exists()
        )

    return eventually(
        check, what=what, timeout=deadline, interval=0.5, ignoring=(OSError, ValueError, KeyError), detail=tails
    )


def rules_for_test(for_duration: str) -> dict[str, Any]:
    """prometheus/alerts.yml with every `for:` set to `for_duration`."""
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = for_duration
    return rules


# ---- the webhook receiver


@dataclass
class Webhook:
    """Alertmanager's webhook receiver: keeps every notification it is sent."""

    url: str = ""
    notifications: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alerts(self, alertname: str, status: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                alert
                for notification in self.notifications
                for alert in notification["alerts"]
                if alert["labels"]["alertname"] == alertname and alert["status"] == status
            ]


def serve_webhook(webhook: Webhook) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with webhook.lock:
                webhook.notifications.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the notifications are the record."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    webhook.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ---- the stack


@dataclass
class Stack:
    simulator: Simulator
    webhook: Webhook
    prometheus_url: str
    instance: str
    logs: list[Path]

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        status, body, _ = http_get(url)
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", f"{promql!r}: {answer.get('error', body)}"
        return list(answer["data"]["result"])

    def wait_for_alert(self, alertname: str, status: str) -> dict[str, Any]:
        alerts = wait_for(
            f"{alertname} {status} at the webhook", lambda: self.webhook.alerts(alertname, status), self.logs
        )
        return dict(alerts[-1])


def start(args: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, **kwargs)


def openmetrics_history(labels: dict[str, str], value: int, end: float) -> str:
    """8 days of one gauge series, one sample per HISTORY_STEP_SECONDS up to `end`, as OpenMetrics text."""
    name = labels.pop("__name__")
    selector = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    lines = [f"# TYPE {name} gauge"]
    for at in range(int(end) - HISTORY_SECONDS, int(end), HISTORY_STEP_SECONDS):
        lines.append(f"{name}{{{selector}}} {value} {at}")
    return "\n".join([*lines, "# EOF", ""])


def backfill(workdir: Path, data: Path, series: dict[str, str], logs: list[Path]) -> None:
    """Fill `data` with 8 days of the evidence series at the baseline and the recording rules computed over them."""
    promtool, prometheus = require_binary("promtool"), require_binary("prometheus")
    end = time.time() - 60
    history = workdir / "history.om"
    history.write_text(openmetrics_history(dict(series), BASELINE, end), encoding="utf-8")
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(history), str(data)], check=True
    )

    # create-blocks-from rules evaluates the recording rules against a Prometheus holding the raw history.
    port = free_port()
    log = workdir / "prometheus-backfill.log"
    logs.append(log)
    config = workdir / "empty.yml"
    config.write_text("global: {}\n", encoding="utf-8")
    source = start(
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        log,
        cwd=workdir,
    )
    try:
        wait_for("the backfill Prometheus", lambda: http_get(f"http://127.0.0.1:{port}/-/ready")[0] == 200, logs)
        rules_blocks = workdir / "rules-blocks"
        subprocess.run(
            [
                promtool,
                "tsdb",
                "create-blocks-from",
                "rules",
                "--quiet",
                f"--url=http://127.0.0.1:{port}",
                f"--start={int(end) - HISTORY_SECONDS}",
                f"--end={int(end)}",
                f"--eval-interval={HISTORY_STEP_SECONDS}s",
                f"--output-dir={rules_blocks}",
                str(RULES),
            ],
            check=True,
            cwd=workdir,
        )
    finally:
        stop(source)
    for block in rules_blocks.iterdir():
        shutil.move(block, data / block.name)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus, alertmanager = require_binary("prometheus"), require_binary("prometheus-alertmanager")
    require_binary("promtool")
    workdir = tmp_path_factory.mktemp("alertmanager")
    logs: list[Path] = []
    processes: list[subprocess.Popen[bytes]] = []
    webhook = Webhook()
    receiver = serve_webhook(webhook)
    simulator = Simulator().start()
    simulator.add_assessment(REGION, ASSESSMENT_ID, ASSESSMENT_NAME, insights=insights(BASELINE))
    try:
        # The exporter, polling every second.
        exporter_port = free_port()
        instance = f"127.0.0.1:{exporter_port}"
        config = workdir / "exporter.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "poll_interval": "1s",
                    "read_timeout": "2s",
                    "connect_timeout": "1s",
                    "max_attempts": 1,
                    "targets": [
                        {
                            "region": REGION,
                            "endpoint_url": simulator.url,
                            "assessments": [{"id": ASSESSMENT_ID, "name": ASSESSMENT_NAME}],
                        }
                    ],
                }
            ),
            encoding="utf-8",
        )
        env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE=str(workdir / "aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(workdir / "aws-credentials"),
            PYTHONUNBUFFERED="1",
        )
        log = workdir / "exporter.log"
        logs.append(log)
        exporter_args = [
            sys.executable,
            "-m",
            "exporter",
            "--web.listen-address",
            instance,
            "--config.file",
            str(config),
        ]
        processes.append(start(exporter_args, log, cwd=ROOT, env=env))
        exporter_url = f"http://{instance}"
        wait_for("the exporter's /readyz", lambda: http_get(f"{exporter_url}/readyz")[0] == 200, logs)

        # The history carries exactly the labels the live series will have once Prometheus scrapes it.
        samples = parse_metrics(http_get(f"{exporter_url}/metrics")[1].decode())
        (labels,) = [
            dict(labels)
            for name, labels in samples
            if name == "auditmanager_assessment_evidence" and ("compliance", "noncompliant") in labels
        ]
        data = workdir / "data"
        backfill(
            workdir,
            data,
            {"__name__": "auditmanager_assessment_evidence", **labels, "job": JOB, "instance": instance},
            logs,
        )

        # Alertmanager, notifying the webhook at once and of every resolution.
        alertmanager_port = free_port()
        alertmanager_config = workdir / "alertmanager.yml"
        alertmanager_config.write_text(
            yaml.safe_dump(
                {
                    "route": {
                        "receiver": "test",
                        "group_by": ["alertname", "assessment_id"],
                        "group_wait": "1s",
                        "group_interval": "1s",
                        "repeat_interval": "1h",
                    },
                    "receivers": [{"name": "test", "webhook_configs": [{"url": webhook.url, "send_resolved": True}]}],
                }
            ),
            encoding="utf-8",
        )
        log = workdir / "alertmanager.log"
        logs.append(log)
        processes.append(
            start(
                [
                    alertmanager,
                    f"--config.file={alertmanager_config}",
                    f"--storage.path={workdir / 'alertmanager-data'}",
                    f"--web.listen-address=127.0.0.1:{alertmanager_port}",
                    # No cluster: a second copy of the suite must not join this one's gossip.
                    "--cluster.listen-address=",
                ],
                log,
                cwd=workdir,
            )
        )
        wait_for(
            "Alertmanager's /-/ready", lambda: http_get(f"http://127.0.0.1:{alertmanager_port}/-/ready")[0] == 200, logs
        )

        # Prometheus over the backfilled history, scraping the exporter and alerting to Alertmanager.
        rules = workdir / "alerts.yml"
        rules.write_text(yaml.safe_dump(rules_for_test(TEST_FOR), sort_keys=False), encoding="utf-8")
        prometheus_port = free_port()
        prometheus_config = workdir / "prometheus.yml"
        prometheus_config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(rules)],
                    "alerting": {
                        "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]
                    },
                    "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [instance]}]}],
                }
            ),
            encoding="utf-8",
        )
        log = workdir / "prometheus.log"
        logs.append(log)
        processes.append(
            start(
                [
                    prometheus,
                    f"--config.file={prometheus_config}",
                    f"--storage.tsdb.path={data}",
                    f"--web.listen-address=127.0.0.1:{prometheus_port}",
                ],
                log,
                cwd=workdir,
            )
        )
        prometheus_url = f"http://127.0.0.1:{prometheus_port}"
        wait_for("Prometheus's /-/ready", lambda: http_get(f"{prometheus_url}/-/ready")[0] == 200, logs)
        yield Stack(simulator, webhook, prometheus_url, instance, logs)
    finally:
        for process in reversed(processes):
            stop(process)
        simulator.stop()
        receiver.shutdown()
        receiver.server_close()


# ---- tests


def test_the_test_rules_differ_from_alerts_yml_only_in_their_for_durations() -> None:
    original, shortened = yaml.safe_load(RULES.read_text(encoding="utf-8")), rules_for_test(TEST_FOR)
    durations = [rule.pop("for") for group in shortened["groups"] for rule in group["rules"] if "for" in rule]
    assert durations and set(durations) == {TEST_FOR}
    for group in original["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    assert shortened == original


def test_backfilled_history_gives_the_seven_day_baseline_and_the_dashboard_panel_shows_it(stack: Stack) -> None:
    baseline = wait_for(
        "the 7-day baseline",
        lambda: stack.query("assessment:auditmanager_noncompliant_evidence:baseline7d"),
        stack.logs,
    )
    assert [float(series["value"][1]) for series in baseline] == [BASELINE]
    assert baseline[0]["metric"]["assessment_id"] == ASSESSMENT_ID
    panels = [(title, expr) for title, expr in all_panel_queries() if reads(expr, NEEDS_HISTORY)]
    assert panels
    for title, expr in panels:
        assert stack.query(to_promql(expr)), title


def test_noncompliant_evidence_spike_reaches_the_webhook_with_labels_and_annotations_rendered(stack: Stack) -> None:
    wait_for(
        "the baseline",
        lambda: stack.query("assessment:auditmanager_noncompliant_evidence:baseline7d"),
        stack.logs,
    )
    # Before the spike: today's count at the baseline fires nothing.
    assert stack.query('ALERTS{alertname="AuditManagerNoncompliantEvidenceSpike"}') == []
    stack.simulator.set_insights(REGION, ASSESSMENT_ID, insights(SPIKE))

    alert = stack.wait_for_alert("AuditManagerNoncompliantEvidenceSpike", "firing")
    assert alert["labels"] == alert["labels"] | {
        "severity": "critical",
        "assessment_id": ASSESSMENT_ID,
        "assessment_name": ASSESSMENT_NAME,
        "region": REGION,
        "compliance": "noncompliant",
        "job": JOB,
        "instance": stack.instance,
    }
    assert alert["labels"]["account_id"].isdigit()
    annotations = alert["annotations"]
    assert annotations["summary"] == f"Noncompliant evidence spike in assessment {ASSESSMENT_NAME}"
    description = annotations["description"]
    assert f"has {SPIKE} pieces of noncompliant evidence" in description
    assert f"7-day baseline of {BASELINE} " in description
    assert f"({ASSESSMENT_ID}, account {alert['labels']['account_id']}, {REGION})" in description
    assert "{{" not in description and "<no value>" not in description


def test_polls_failing_reaches_the_webhook_and_resolves_when_the_simulator_recovers(stack: Stack) -> None:
    stack.simulator.add_fault(Fault("error", code="InternalServerException", assessment_id=ASSESSMENT_ID))
    try:
        alert = stack.wait_for_alert("AuditManagerPollsFailing", "firing")
    finally:
        stack.simulator.clear_faults()
    assert alert["labels"]["assessment_id"] == ASSESSMENT_ID
    assert alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["summary"] == f"auditmanager-exporter cannot poll assessment {ASSESSMENT_NAME}"
    assert stack.instance in alert["annotations"]["description"]

    resolved = stack.wait_for_alert("AuditManagerPollsFailing", "resolved")
    assert resolved["labels"] == alert["labels"]
    assert resolved["startsAt"] == alert["startsAt"]
