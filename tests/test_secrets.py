"""No secret reaches the log at any level: the real process at debug level, fed known secrets, then searched."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request

import bcrypt
import yaml

from exporter.simulator import Fault
from tests.conftest import eventually, insights, uuid

ACCESS_KEY_ID = "AKIAZZTESTKEYID4242"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY42"
SESSION_TOKEN = "FwoGZXIvYXdzSESSIONTOKEN4242//////////wEaDLongTokenValue"
PASSWORD = "s3cret-scrape-password-4242"
WRONG_PASSWORD = "wrong-guess-password-4242"


def call(url: str, method: str = "GET", password: str | None = None) -> int:
    headers = {}
    if password is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"prometheus:{password}".encode()).decode()
    request = urllib.request.Request(url, method=method, headers=headers, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_no_secret_reaches_the_log_even_at_debug_level(simulator, run_exporter, tmp_path):
    password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": password_hash}}), encoding="utf-8")
    for n in (1, 2, 3):
        simulator.add_assessment("us-east-1", uuid(n), f"A{n}", insights=insights())
    # Failures make the exporter log at length, traces included at debug level.
    simulator.add_fault(Fault("error", "AccessDeniedException", uuid(2)))
    simulator.add_fault(Fault("reset", assessment_id=uuid(3)))
    config = {
        "poll_interval": "1s",
        "max_attempts": 2,
        "targets": [
            {
                "region": "us-east-1",
                "endpoint_url": simulator.url,
                "assessments": [{"id": uuid(n)} for n in (1, 2, 3)],
            }
        ],
    }
    secrets = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
    }
    exporter = run_exporter(config, "--log.level", "debug", "--web.config.file", str(web), wait="none", env=secrets)

    def ready() -> bool:
        assert exporter.process.poll() is None, exporter.logs()
        return call(exporter.url + "/readyz", password=PASSWORD) == 200

    eventually(ready, what="/readyz", timeout=20, ignoring=(OSError,), detail=exporter.logs)
    assert call(exporter.url + "/metrics", password=PASSWORD) == 200
    assert call(exporter.url + "/metrics", password=WRONG_PASSWORD) == 401
    assert call(exporter.url + "/metrics") == 401
    assert call(exporter.url + "/-/reload", "POST", PASSWORD) == 200
    # The log is searched only once a poll with the reloaded config has finished (and logged its failures).
    eventually(
        lambda: 'msg="poll cycle finished"' in exporter.logs().partition('msg="config reloaded"')[2],
        what="a poll cycle after the reload",
        detail=exporter.logs,
    )
    assert exporter.stop() == 0
    log = exporter.logs()
    # The run did log at debug level, failures and HTTP requests included.
    assert "level=debug" in log
    assert "error_code=AccessDeniedException" in log
    assert "trace=" in log
    assert 'msg="http request"' in log
    credentials = base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
    salt = password_hash[7:29]
    for secret in (
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        SESSION_TOKEN,
        PASSWORD,
        WRONG_PASSWORD,
        password_hash,
        salt,
        credentials,
        "Authorization",
        "X-Amz-Security-Token",
        "Signature=",
    ):
        assert secret not in log, secret
