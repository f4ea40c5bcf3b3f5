"""Every kind of bad config and flag: one clear line on stderr, exit 2, no traceback; the README's table matches.

All cases run the real CLI, in parallel, from one module fixture; the test checks each case's outcome.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import ROOT, aws_env, free_port, uuid

GOOD_TARGETS = f"targets:\n  - region: us-east-1\n    assessments: [{{id: {uuid(1)}}}]\n"
BUSY = "@busy@"


@dataclass(frozen=True)
class Case:
    what: str
    config: str | None
    flags: tuple[str, ...]
    message: str


CASES = [
    Case("malformed YAML", "targets: [\n", (), "config.yml: malformed YAML"),
    Case("top level not a mapping", "- a\n", (), "config.yml: the top level must be a mapping"),
    Case("unknown key", "poll_intervall: 1m\n" + GOOD_TARGETS, (), "config.yml: poll_intervall: unknown key"),
    Case("wrong type", "max_concurrency: four\n" + GOOD_TARGETS, (), "config.yml: max_concurrency: must be an integer"),
    Case(
        "bad UUID",
        "targets:\n  - region: us-east-1\n    assessments: [{id: 0A1B}]\n",
        (),
        "config.yml: targets[0].assessments[0].id: not a UUID",
    ),
    Case(
        "duplicate ids",
        f"targets:\n  - region: us-east-1\n    assessments: [{{id: {uuid(1)}}}, {{id: {uuid(1)}}}]\n",
        (),
        "config.yml: targets[0].assessments[1].id: duplicate of targets[0].assessments[0].id",
    ),
    Case(
        "unknown source",
        GOOD_TARGETS + "    sources: [auditmanager, cloudtrail]\n",
        (),
        "config.yml: targets[0].sources[1]: unknown source 'cloudtrail' (known: auditmanager, config, securityhub)",
    ),
    Case(
        "no conformance packs",
        "targets:\n  - region: us-east-1\n    sources: [config]\n",
        (),
        "config.yml: targets[0].conformance_packs: required when sources include config",
    ),
    Case("bad duration", "poll_interval: 15 minutes\n" + GOOD_TARGETS, (), "config.yml: poll_interval: not a duration"),
    Case(
        "duration too short",
        "poll_interval: 500ms\n" + GOOD_TARGETS,
        (),
        "config.yml: poll_interval: must be at least 1s",
    ),
    Case("zero", "max_concurrency: 0\n" + GOOD_TARGETS, (), "config.yml: max_concurrency: must be greater than 0"),
    Case(
        "negative number",
        "max_requests_per_second: -5\n" + GOOD_TARGETS,
        (),
        "config.yml: max_requests_per_second: must be greater than 0",
    ),
    Case("empty targets", "targets: []\n", (), "config.yml: targets: must not be empty"),
    Case("empty config file", "# nothing yet\n", (), "config.yml: the file is empty"),
    Case("missing config file", None, (), "config.yml: cannot read"),
    Case("config file is a directory", "@dir@", (), "config.yml: cannot read"),
    Case("port in use", GOOD_TARGETS, ("--web.listen-address", BUSY), "cannot listen on 127.0.0.1:"),
    Case(
        "bad listen address",
        GOOD_TARGETS,
        ("--web.listen-address", "localhost"),
        "auditmanager-exporter: invalid listen address 'localhost'",
    ),
    Case("unknown flag", GOOD_TARGETS, ("--web.listen", ":1"), "unrecognized arguments: --web.listen"),
    Case(
        "--demo --config.check with --config.file",
        GOOD_TARGETS,
        ("--demo", "--config.check"),
        "auditmanager-exporter: error: --demo --config.check checks the built-in demo config, not --config.file",
    ),
    Case("bad flag value", GOOD_TARGETS, ("--log.level", "loud"), "argument --log.level: invalid choice: 'loud'"),
    Case(
        "missing web config",
        GOOD_TARGETS,
        ("--web.config.file", "@web@/nope.yml"),
        "auditmanager-exporter: web config @web@/nope.yml: cannot read",
    ),
    Case(
        "web config with an unknown key",
        GOOD_TARGETS,
        ("--web.config.file", "@web@/unknown.yml"),
        "web config @web@/unknown.yml: tls_config: unknown key",
    ),
    Case(
        "web config naming missing files",
        GOOD_TARGETS,
        ("--web.config.file", "@web@/files.yml"),
        "web config @web@/files.yml: tls_server_config.cert_file: cannot read",
    ),
    Case(
        "web config with a password instead of a hash",
        GOOD_TARGETS,
        ("--web.config.file", "@web@/plain.yml"),
        "web config @web@/plain.yml: basic_auth_users.alice: not a bcrypt hash",
    ),
    Case(
        "web config with an empty file name",
        GOOD_TARGETS,
        ("--web.config.file", "@web@/empty-name.yml"),
        "web config @web@/empty-name.yml: tls_server_config.cert_file: must not be empty",
    ),
    Case(
        "web config with a header the toolkit does not allow",
        GOOD_TARGETS,
        ("--web.config.file", "@web@/header.yml"),
        "web config @web@/header.yml: http_server_config.headers: HTTP header 'Server' can not be configured",
    ),
]
WEB_CONFIGS = {
    "unknown.yml": "tls_config: {}\n",
    "files.yml": "tls_server_config: {cert_file: missing.crt, key_file: server.key}\n",
    "plain.yml": "basic_auth_users: {alice: hunter2}\n",
    "empty-name.yml": 'tls_server_config: {cert_file: "", key_file: server.key}\n',
    # A usable key, so that each case above has one problem (every problem of a web config is reported at once).
    "server.key": ec.generate_private_key(ec.SECP256R1())
    .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    .decode(),
    "header.yml": "http_server_config: {headers: {Server: x}}\n",
}


@dataclass(frozen=True)
class Outcome:
    code: int | None
    stdout: str
    stderr: str
    message: str


def _run(case: Case, directory: Path, busy_port: int) -> Outcome:
    config = directory / "config.yml"
    if case.config == "@dir@":
        config.mkdir()
    elif case.config is not None:
        config.write_text(case.config, encoding="utf-8")
    web = str(directory)
    flags = [flag.replace(BUSY, f"127.0.0.1:{busy_port}").replace("@web@", web) for flag in case.flags]
    if "--web.listen-address" not in flags:
        flags += ["--web.listen-address", f"127.0.0.1:{free_port()}"]
    for name, text in WEB_CONFIGS.items():
        (directory / name).write_text(text, encoding="utf-8")
    args = [sys.executable, "-m", "exporter", "--config.file", str(config), *flags]
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=30, cwd=ROOT, env=aws_env(directory))
    except subprocess.TimeoutExpired as expired:
        return Outcome(None, str(expired.stdout), str(expired.stderr), "")
    message = case.message.replace("@web@", web).replace("config.yml:", f"{config}:")
    return Outcome(result.returncode, result.stdout, result.stderr, message)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = {case.what: pool.submit(_run, case, tmp_path_factory.mktemp("bad"), port) for case in CASES}
            yield {what: future.result() for what, future in futures.items()}


@pytest.mark.parametrize("case", CASES, ids=[case.what for case in CASES])
def test_bad_input_is_one_clear_line_and_exit_2(outcomes, case):
    outcome = outcomes[case.what]
    assert outcome.code == 2, outcome
    assert outcome.stdout == ""
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1, outcome.stderr
    assert outcome.message in lines[0]
    assert "Traceback" not in outcome.stderr
    assert "hunter2" not in outcome.stderr


def test_the_docs_table_lists_every_case():
    readme = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = readme.split("\n## Bad input\n", 1)[1].split("\n#", 1)[0]
    rows = {m.group(1) for m in re.finditer(r"^\| ([^|]+?) \|", section, re.MULTILINE)} - {"input"}
    assert rows == {case.what for case in CASES}
