"""`--healthcheck` against the real process serving TLS, mutual TLS and basic auth."""

from __future__ import annotations

import subprocess
import sys

import bcrypt
import pytest
import yaml

from tests.conftest import ROOT, aws_env, eventually, free_port, insights, uuid
from tests.test_webconfig import PASSWORD, Pki, make_pki, tls_config

ENV = "AUDITMANAGER_EXPORTER_HEALTHCHECK_"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def healthcheck(address: str, web: str, tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "--healthcheck", "--web.listen-address", address, "--web.config.file", web],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=aws_env(tmp_path) | {ENV + key: value for key, value in env.items()},
    )


@pytest.fixture
def secured(simulator, run_exporter, pki, tmp_path):
    """The exporter with TLS, RequireAndVerifyClientCert and basic auth: (listen address, web config path)."""
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    settings = tls_config(pki, client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(pki.ca))
    web.write_text(yaml.safe_dump({**settings, "basic_auth_users": {"alice": hashed}}))
    config = {
        "poll_interval": "1h",
        "targets": [{"region": "us-east-1", "endpoint_url": simulator.url, "assessments": [{"id": uuid(1)}]}],
    }
    exporter = run_exporter(config, "--web.config.file", str(web), wait="none")
    address = exporter.url.removeprefix("http://")
    right = {
        "USERNAME": "alice",
        "PASSWORD": PASSWORD,
        "CERT_FILE": str(pki.client_cert),
        "KEY_FILE": str(pki.client_key),
    }

    def passes() -> bool:
        assert exporter.process.poll() is None, exporter.logs()
        return healthcheck(address, str(web), tmp_path, **right).returncode == 0

    eventually(passes, what="the health check to pass", timeout=60, interval=0.2, detail=exporter.logs)
    return address, str(web), right


def test_healthcheck_passes_with_the_right_client_certificate_and_password(secured, tmp_path):
    address, web, right = secured
    result = healthcheck(address, web, tmp_path, **right)
    assert (result.returncode, result.stdout.strip()) == (0, "auditmanager-exporter: healthcheck: OK")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"PASSWORD": "wrong"}, "/healthz answered 401"),
        ({"USERNAME": ""}, "/healthz answered 401"),
        ({"CERT_FILE": "", "KEY_FILE": ""}, "cannot reach"),
        ({"CERT_FILE": "@rogue.crt", "KEY_FILE": "@rogue.key"}, "cannot reach"),
    ],
    ids=["wrong password", "no user", "the server's own certificate, not a client one", "a client cert of another CA"],
)
def test_healthcheck_fails_with_wrong_credentials(secured, pki, tmp_path, change, problem):
    address, web, right = secured
    env = right | {
        key: str(pki.directory / value[1:]) if value.startswith("@") else value for key, value in change.items()
    }
    result = healthcheck(address, web, tmp_path, **env)
    assert result.returncode == 1
    assert problem in result.stderr
    assert "Traceback" not in result.stderr


def test_healthcheck_fails_when_nothing_listens(pki, tmp_path):
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump(tls_config(pki)))
    result = healthcheck(f"127.0.0.1:{free_port()}", str(web), tmp_path)
    assert result.returncode == 1
    assert "cannot reach" in result.stderr


def test_healthcheck_over_plain_http_on_a_wildcard_address(run_exporter, simulator, tmp_path):
    port = free_port()
    exporter = run_exporter(None, "--demo", "--web.listen-address", f":{port}", wait="none")
    exporter.url = f"http://127.0.0.1:{port}"
    exporter.wait_ready(60)
    web = tmp_path / "empty.yml"
    web.write_text("")
    assert healthcheck(f":{port}", str(web), tmp_path).returncode == 0


def test_healthcheck_reads_the_web_config_named_by_the_environment_as_the_docker_image_does(secured, tmp_path):
    address, web, right = secured
    env = aws_env(tmp_path) | {ENV + key: value for key, value in right.items()}
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--healthcheck", "--web.listen-address", address],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env | {"AUDITMANAGER_EXPORTER_WEB_CONFIG_FILE": web},
    )
    assert result.returncode == 0, result.stderr
    without = subprocess.run(
        [sys.executable, "-m", "exporter", "--healthcheck", "--web.listen-address", address],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )
    assert without.returncode == 1
