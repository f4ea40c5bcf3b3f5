from __future__ import annotations

import json
import logging
import sys

import pytest

from exporter.logs import JsonFormatter, LogfmtFormatter, setup
from exporter.simulator import Fault
from tests.conftest import insights, uuid


def record(message: str, exc_info: bool = False, **fields: object) -> logging.LogRecord:
    info = None
    if exc_info:
        try:
            raise ValueError("boom")
        except ValueError:
            info = sys.exc_info()
    made = logging.LogRecord("exporter.poller", logging.WARNING, __file__, 1, message, None, info)
    for key, value in fields.items():
        setattr(made, key, value)
    return made


def test_logfmt_quotes_only_values_that_need_it_and_keeps_fields():
    line = LogfmtFormatter().format(record("poll failed", region="us-east-1", error='said "no" twice'))
    assert line.startswith("ts=")
    assert ' level=warn logger=exporter.poller msg="poll failed" region=us-east-1 ' in line
    assert line.endswith('error="said \\"no\\" twice"')


def test_a_list_field_is_one_logfmt_value_of_its_items_joined_by_semicolons_never_a_repr():
    line = LogfmtFormatter().format(record("config reload failed", problems=["a: bad 'x'", 'b: "y" unknown']))
    assert line.endswith(' problems="a: bad \'x\'; b: \\"y\\" unknown"')


def test_a_trace_stays_one_logfmt_line():
    line = LogfmtFormatter().format(record("poll failed", exc_info=True))
    assert "\n" not in line
    assert 'trace="Traceback' in line
    assert "ValueError: boom" in line


def test_json_lines_carry_the_same_fields():
    line = JsonFormatter().format(record("poll failed", region="eu-west-1", count=3))
    fields = json.loads(line)
    assert fields["level"] == "warn"
    assert fields["msg"] == "poll failed"
    assert (fields["region"], fields["count"]) == ("eu-west-1", 3)


@pytest.mark.parametrize(("level", "shown"), [("debug", True), ("info", True), ("warn", False)])
def test_the_level_flag_filters_records(capsys, level, shown):
    setup(level, "logfmt")
    logging.getLogger("exporter.test").info("hello")
    assert ("msg=hello" in capsys.readouterr().err) is shown
    setup("info", "logfmt")


def test_library_loggers_stay_at_warn_even_at_debug():
    setup("debug", "logfmt")
    assert logging.getLogger("botocore").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("exporter").getEffectiveLevel() == logging.DEBUG
    setup("info", "logfmt")


def test_the_exporter_logs_json_lines_when_asked(simulator, run_exporter):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    simulator.add_assessment("us-east-1", uuid(2), "A2", insights=insights())
    simulator.add_fault(
        Fault("error", code="AccessDeniedException", assessment_id=uuid(2), operation="GetInsightsByAssessment")
    )
    config = {
        "max_attempts": 1,
        "targets": [
            {
                "region": "us-east-1",
                "endpoint_url": simulator.url,
                "assessments": [{"id": uuid(1), "name": "A1"}, {"id": uuid(2), "name": "A2"}],
            }
        ],
    }
    exporter = run_exporter(config, "--log.format", "json")
    exporter.stop()
    lines = [json.loads(line) for line in exporter.logs().splitlines() if line.strip()]
    failures = [line for line in lines if line["msg"] == "poll failed"]
    assert [(f["assessment_id"], f["error_code"], f["level"]) for f in failures] == [
        (uuid(2), "AccessDeniedException", "warn")
    ]
    assert "trace" not in failures[0]
    assert any(line["msg"] == "poll cycle finished" for line in lines)
