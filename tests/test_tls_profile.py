"""The default `tls_server_config` passes an independent scan: sslyze against Mozilla's "intermediate" profile.

sslyze runs as a tool of its own (its `cryptography<47` pin cannot sit beside pyOpenSSL 26 in one environment):
`$SSLYZE` names it, else `sslyze` on the PATH; `.ci/run` installs it in a virtualenv of its own.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import ssl
import subprocess
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import require_binary
from tests.test_webconfig import started_over_tls


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for 127.0.0.1, of a lifespan and signature the profile accepts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "self-signed.crt", directory / "self-signed.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def mozilla_findings(report: str) -> dict[str, str]:
    """The findings of sslyze's compliance check, by name (`ciphers`, `tls_curves`, ...)."""
    assert "COMPLIANCE AGAINST TLS CONFIGURATION" in report, report
    section = report.split("COMPLIANCE AGAINST TLS CONFIGURATION", 1)[1]
    assert re.search(r": (FAILED - Not compliant|OK - Compliant)\.", section), report
    return dict(re.findall(r"^\s+\* (\w+): (.*)$", section, re.MULTILINE))


def test_the_default_tls_settings_pass_mozillas_intermediate_profile_but_for_the_self_signed_trust(
    run_exporter, tmp_path
):
    sslyze = os.environ.get("SSLYZE") or require_binary("sslyze")
    cert, key = self_signed(tmp_path)
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": str(cert), "key_file": str(key)}}))
    anyone = ssl.create_default_context()
    anyone.check_hostname, anyone.verify_mode = False, ssl.CERT_NONE
    served = started_over_tls(run_exporter, web, anyone, {})
    scan = subprocess.run(
        [sslyze, "--mozilla_config=intermediate", f"127.0.0.1:{served.port}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    findings = mozilla_findings(scan.stdout)
    assert set(findings) == {"certificate_path_validation"}, findings
    assert "CN=localhost" in findings["certificate_path_validation"]
    assert re.search(r"Supported curves:\s+X25519, secp256r1, secp384r1\s*$", scan.stdout, re.MULTILINE), scan.stdout
