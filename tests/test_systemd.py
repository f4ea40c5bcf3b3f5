"""deploy/systemd/: the socket-activated units verify with systemd-analyze, and the service's flags are the
exporter's own. A socket passed in as systemd does is served in tests/test_server.py."""

from __future__ import annotations

import configparser
import shlex
import subprocess
import sys
from pathlib import Path

from exporter.cli import DEFAULT_PORT, parse_args
from tests.conftest import ROOT, require_binary

UNITS = ROOT / "deploy" / "systemd"
SERVICE, SOCKET = UNITS / "auditmanager-exporter.service", UNITS / "auditmanager-exporter.socket"


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser


def test_the_units_verify_without_a_warning(tmp_path):
    analyze = require_binary("systemd-analyze")
    # verify checks that ExecStart's program exists: point it at this checkout's console script.
    script = Path(sys.executable).with_name("auditmanager-exporter")
    for path in (SERVICE, SOCKET):
        text = path.read_text(encoding="utf-8").replace("/usr/local/bin/auditmanager-exporter", str(script))
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / SOCKET.name), str(tmp_path / SERVICE.name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


def test_the_service_serves_the_socket_with_flags_the_exporter_accepts():
    command = shlex.split(unit(SERVICE)["Service"]["ExecStart"])
    args = parse_args(command[1:])
    assert args.systemd_socket
    assert unit(SERVICE)["Service"]["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "auditmanager-exporter.socket" in unit(SERVICE)["Unit"]["Requires"]


def test_the_socket_listens_on_the_exporters_port():
    assert unit(SOCKET)["Socket"]["ListenStream"] == str(DEFAULT_PORT)
