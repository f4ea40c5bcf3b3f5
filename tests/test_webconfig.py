"""The web config: TLS, mutual TLS and basic auth on every endpoint, bad web configs, and hostile clients.

Certificates are made at test time; the server is the real MetricsServer over real sockets.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from exporter.exposition import Exposition
from exporter.server import App, MetricsServer, ReloadOutcome, bind
from exporter.snapshot import ApiCounters, Snapshot, SnapshotStore
from exporter.webconfig import WebConfigError, WebConfigSource, load
from tests.conftest import (
    ROOT,
    ExporterProcess,
    aws_env,
    eventually,
    insights,
    parse_metrics,
    sample,
    uuid,
    write_config,
)

PASSWORD = "correct horse battery staple"
ENDPOINTS = [("GET", "/metrics"), ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/"), ("POST", "/-/reload")]


@dataclass(frozen=True)
class Pki:
    directory: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path
    rogue_key: Path
    ca_cert: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey

    def issue(
        self, stem: str, subject: str, *, server: bool = True, directory: Path | None = None
    ) -> tuple[Path, Path]:
        """A new certificate from the test CA, written as STEM.crt and STEM.key."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(subject, key, (self.ca_cert.subject, self.ca_key), server=server)
        return _write(directory or self.directory, stem, cert, key)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    elif server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("prometheus.example")]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def make_pki(directory: Path) -> Pki:
    ca_key, rogue_ca_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test CA", ca_key, None)
    rogue_ca = _certificate("rogue CA", rogue_ca_key, None)
    ca_path, _ = _write(directory, "ca", ca, ca_key)
    server_key, client_key, rogue_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    server = _write(
        directory, "server", _certificate("server", server_key, (ca.subject, ca_key), server=True), server_key
    )
    client = _write(directory, "client", _certificate("client", client_key, (ca.subject, ca_key)), client_key)
    rogue = _write(directory, "rogue", _certificate("client", rogue_key, (rogue_ca.subject, rogue_ca_key)), rogue_key)
    return Pki(directory, ca_path, *server, *client, *rogue, ca, ca_key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def password_hash() -> str:
    # Cost 4 keeps the tests fast; the cost is part of the hash, so the code path is the same.
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class Served:
    url: str
    port: int
    server: MetricsServer
    reloads: list[bool]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    servers: list[MetricsServer] = []

    def start(web: dict[str, object], directory: Path = tmp_path) -> Served:
        path = directory / f"web-{len(servers)}.yml"
        path.write_text(yaml.safe_dump(web), encoding="utf-8")
        store = SnapshotStore(Snapshot(completed_cycles=1))
        reloads: list[bool] = []
        app = App(Exposition(store, ApiCounters()), store, "/metrics", lambda: reloads.append(True) or ReloadOutcome())
        server = MetricsServer([bind("127.0.0.1:0")], app, WebConfigSource(path))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        scheme = "https" if server.web.current().tls else "http"
        return Served(f"{scheme}://127.0.0.1:{server.port}", server.port, server, reloads)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def client_context(pki: Pki, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    return context


def request(
    served: Served,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, str], bytes]:
    if served.url.startswith("https"):
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            "127.0.0.1", served.port, timeout=10, context=context
        )
    else:
        connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_the_right_password_opens_every_endpoint(serve, password_hash, method, path):
    served = serve({"basic_auth_users": {"alice": password_hash}})
    status, _, body = request(served, method, path, {"Authorization": basic("alice", PASSWORD)})
    assert status == 200, body
    assert served.reloads == ([True] if path == "/-/reload" else [])


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_no_password_gets_401_with_a_basic_challenge_on_every_endpoint(serve, password_hash, method, path):
    served = serve({"basic_auth_users": {"alice": password_hash}})
    status, headers, body = request(served, method, path)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic ")
    assert b"auditmanager" not in body
    assert served.reloads == []


@pytest.mark.parametrize(
    "authorization",
    [
        basic("alice", "wrong"),
        basic("alice", PASSWORD + " "),
        basic("alice", ""),
        basic("mallory", PASSWORD),
        basic("", PASSWORD),
        "Bearer " + PASSWORD,
        "Basic !!!not base64!!!",
        "Basic " + base64.b64encode(b"alice").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:" + PASSWORD.encode()).decode(),
        basic("alice", "x" * 100),
    ],
    ids=[
        "wrong password",
        "password with a trailing space",
        "empty password",
        "unknown user",
        "empty user",
        "another scheme",
        "not base64",
        "no colon",
        "user not utf-8",
        "password over bcrypt's 72 bytes",
    ],
)
def test_wrong_credentials_get_401(serve, password_hash, authorization):
    served = serve({"basic_auth_users": {"alice": password_hash}})
    assert request(served, "GET", "/metrics", {"Authorization": authorization})[0] == 401


def test_a_wrong_password_is_refused_even_after_the_right_one_was_accepted(serve, password_hash):
    served = serve({"basic_auth_users": {"alice": password_hash, "bob": password_hash}})
    assert request(served, "GET", "/metrics", {"Authorization": basic("alice", PASSWORD)})[0] == 200
    assert request(served, "GET", "/metrics", {"Authorization": basic("alice", PASSWORD)})[0] == 200
    assert request(served, "GET", "/metrics", {"Authorization": basic("alice", PASSWORD + "!")})[0] == 401
    assert request(served, "GET", "/metrics", {"Authorization": basic("bob", PASSWORD)})[0] == 200


def test_an_htpasswd_2y_hash_is_accepted(serve, password_hash):
    served = serve({"basic_auth_users": {"alice": password_hash.replace("$2b$", "$2y$", 1)}})
    assert request(served, "GET", "/metrics", {"Authorization": basic("alice", PASSWORD)})[0] == 200


def plain_http_answer(port: int) -> bytes:
    """What a TLS port answers to plain HTTP: nothing, or a reset."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        plain.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            return plain.recv(65536)
        except ConnectionResetError:
            return b""


def tls_config(pki: Pki, **settings: object) -> dict[str, object]:
    return {"tls_server_config": {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key), **settings}}


def test_tls_serves_https_and_plain_http_gets_nothing(serve, pki):
    served = serve(tls_config(pki))
    assert request(served, "GET", "/metrics", context=client_context(pki))[0] == 200
    assert b"auditmanager_" not in plain_http_answer(served.port)


def test_relative_file_names_are_relative_to_the_web_config(serve, pki):
    relative = {"tls_server_config": {"cert_file": pki.server_cert.name, "key_file": pki.server_key.name}}
    served = serve(relative, pki.directory)
    assert served.url.startswith("https")


def test_min_version_tls13_refuses_a_tls12_client(serve, pki):
    served = serve(tls_config(pki, min_version="TLS13"))
    context = client_context(pki)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        request(served, "GET", "/metrics", context=context)
    assert request(served, "GET", "/metrics", context=client_context(pki))[0] == 200


def test_mutual_tls_accepts_a_client_certificate_from_the_ca(serve, pki):
    served = serve(tls_config(pki, client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(pki.ca)))
    context = client_context(pki, (pki.client_cert, pki.client_key))
    assert request(served, "GET", "/metrics", context=context)[0] == 200


@pytest.mark.parametrize("client", ["none", "rogue"])
def test_mutual_tls_refuses_a_client_without_a_certificate_from_the_ca(serve, pki, client):
    served = serve(tls_config(pki, client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(pki.ca)))
    context = client_context(pki, None if client == "none" else (pki.rogue_cert, pki.rogue_key))
    # TLS 1.3 reports the refusal after the handshake, on the first read.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        request(served, "GET", "/metrics", context=context)


def test_verify_client_cert_if_given_lets_clients_without_one_in(serve, pki):
    served = serve(tls_config(pki, client_auth_type="VerifyClientCertIfGiven", client_ca_file=str(pki.ca)))
    assert request(served, "GET", "/metrics", context=client_context(pki))[0] == 200
    with pytest.raises((ssl.SSLError, ConnectionError)):
        request(served, "GET", "/metrics", context=client_context(pki, (pki.rogue_cert, pki.rogue_key)))


def test_tls_and_basic_auth_together_need_both(serve, pki, password_hash):
    served = serve({**tls_config(pki), "basic_auth_users": {"alice": password_hash}})
    context = client_context(pki)
    assert request(served, "GET", "/metrics", context=context)[0] == 401
    assert request(served, "GET", "/metrics", {"Authorization": basic("alice", PASSWORD)}, context)[0] == 200


T = "tls_server_config: {cert_file: @S@, key_file: @K@, "
BAD_WEB_CONFIGS = [
    ("malformed YAML", "tls_server_config: [", "malformed YAML"),
    ("not a mapping", "- a\n- b\n", "the top level must be a mapping"),
    ("unknown key", "basic_auth_user: {}\n", "basic_auth_user: unknown key"),
    ("unknown TLS key", T + "ciphers: x}", "tls_server_config.ciphers: unknown key"),
    ("TLS not a mapping", "tls_server_config: yes", "tls_server_config: must be a mapping"),
    ("missing cert_file", "tls_server_config: {key_file: @K@}", "tls_server_config: missing one of cert or cert_file"),
    ("missing key_file", "tls_server_config: {cert_file: @S@}", "tls_server_config: missing one of key or key_file"),
    ("empty cert_file", 'tls_server_config: {cert_file: "", key_file: @K@}', "tls_server_config.cert_file: must not"),
    ("empty key_file", 'tls_server_config: {cert_file: @S@, key_file: ""}', "tls_server_config.key_file: must not"),
    ("cert_file a number", "tls_server_config: {cert_file: 7, key_file: @K@}", "cert_file: must be a string"),
    ("cert_file not there", "tls_server_config: {cert_file: nope.crt, key_file: @K@}", "cert_file: cannot read"),
    ("key_file not there", "tls_server_config: {cert_file: @S@, key_file: nope.key}", "key_file: cannot read"),
    ("a NUL in a file name", 'tls_server_config: {cert_file: "a\\0b", key_file: @K@}', "cert_file: cannot read"),
    ("bad min_version", T + "min_version: TLS14}", "tls_server_config.min_version: 'TLS14' is not one of TLS10"),
    ("bad max_version", T + "max_version: SSL3}", "tls_server_config.max_version: 'SSL3' is not one of"),
    ("min above max", T + "min_version: TLS13, max_version: TLS12}", "min_version is above max_version"),
    ("bad client_auth_type", T + "client_auth_type: Always}", "client_auth_type: 'Always' is not one of"),
    ("a CA without client auth", T + "client_ca_file: @C@}", "client_ca_file: set, but client_auth_type does not"),
    ("key does not match", "tls_server_config: {cert_file: @S@, key_file: @R@}", "cert_file and key_file do not"),
    ("cert is not PEM", "tls_server_config: {cert_file: @W@, key_file: @K@}", "cert_file: no PEM certificate"),
    ("key is not PEM", "tls_server_config: {cert_file: @S@, key_file: @W@}", "key_file: no PEM private key"),
    ("encrypted key", "tls_server_config: {cert_file: @S@, key_file: @E@}", "key_file: the key is encrypted"),
    (
        "CA is not PEM",
        T + "client_auth_type: RequireAndVerifyClientCert, client_ca_file: @W@}",
        "client_ca_file: no PEM certificate",
    ),
    ("unknown cipher", T + "cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]}", "cipher_suites: unknown cipher"),
    ("OpenSSL cipher name", T + "cipher_suites: [ECDHE-RSA-AES128-GCM-SHA256]}", "cipher_suites: unknown cipher"),
    ("ciphers not a list", T + "cipher_suites: TLS_AES_128_GCM_SHA256}", "cipher_suites: must be a list"),
    ("unknown curve", T + "curve_preferences: [CurveP224]}", "curve_preferences: unknown curve 'CurveP224'"),
    ("prefer not a boolean", T + "prefer_server_cipher_suites: maybe}", "prefer_server_cipher_suites: must be true"),
    ("sans not a list", T + "client_allowed_sans: prometheus}", "client_allowed_sans: must be a list"),
    ("http_server_config unknown key", "http_server_config: {h2c: true}", "http_server_config.h2c: unknown key"),
    ("http2 not a boolean", "http_server_config: {http2: sometimes}", "http_server_config.http2: must be true or"),
    ("headers not a mapping", "http_server_config: {headers: [a]}", "http_server_config.headers: must be a mapping"),
    (
        "a header that must not be set",
        "http_server_config: {headers: {Content-Type: text/html}}",
        "HTTP header 'Content-Type' can not be configured",
    ),
    (
        "a header name in another case",
        "http_server_config: {headers: {x-frame-options: deny}}",
        "HTTP header 'x-frame-options' can not be configured",
    ),
    (
        "bad X-Frame-Options",
        "http_server_config: {headers: {X-Frame-Options: allow-from}}",
        "headers.X-Frame-Options: invalid value 'allow-from', expected one of deny, sameorigin",
    ),
    (
        "bad X-Content-Type-Options",
        "http_server_config: {headers: {X-Content-Type-Options: sniff}}",
        "headers.X-Content-Type-Options: invalid value 'sniff', expected one of nosniff",
    ),
    ("rate_limit unknown key", "rate_limit: {every: 1s}", "rate_limit.every: unknown key"),
    ("rate_limit bad interval", "rate_limit: {interval: soon, burst: 1}", "rate_limit.interval: not a duration"),
    ("rate_limit bad burst", "rate_limit: {interval: 1s, burst: -1}", "rate_limit.burst: must be a whole number"),
    ("not a bcrypt hash", "basic_auth_users: {alice: plaintext-password}", "basic_auth_users.alice: not a bcrypt hash"),
    ("users not a mapping", "basic_auth_users: [alice]", "basic_auth_users: must be a mapping"),
    (
        "a bcrypt cost bcrypt refuses",
        "basic_auth_users: {alice: '$2b$99$" + "a" * 53 + "'}",
        "basic_auth_users.alice: bcrypt cost must be 4 to 31",
    ),
    (
        "a bcrypt cost too low",
        "basic_auth_users: {alice: '$2b$03$" + "a" * 53 + "'}",
        "basic_auth_users.alice: bcrypt cost must be 4 to 31",
    ),
]


def _web_config_text(template: str, pki: Pki) -> str:
    files = {
        "S": pki.server_cert,
        "K": pki.server_key,
        "C": pki.ca,
        "R": pki.rogue_key,
        "W": pki.directory / "web",
        "E": pki.directory / "encrypted.key",
    }
    (pki.directory / "web").write_text("not a certificate\n")
    key = serialization.load_pem_private_key(pki.server_key.read_bytes(), None)
    encrypted = serialization.BestAvailableEncryption(b"secret")
    files["E"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encrypted))
    for letter, path in files.items():
        template = template.replace(f"@{letter}@", str(path))
    return template


@pytest.mark.parametrize(
    ("text", "problem"), [(t, p) for _, t, p in BAD_WEB_CONFIGS], ids=[i for i, _, _ in BAD_WEB_CONFIGS]
)
def test_a_bad_web_config_is_rejected_with_a_clear_problem(pki, tmp_path, text, problem):
    path = tmp_path / "web.yml"
    path.write_text(_web_config_text(text, pki), encoding="utf-8")
    with pytest.raises(WebConfigError) as raised:
        load(path)
    assert len(raised.value.problems) == 1, raised.value.problems
    assert problem in raised.value.problems[0]
    assert "plaintext-password" not in raised.value.problems[0]


def test_a_malformed_web_config_never_quotes_the_hash_it_holds(tmp_path, password_hash):
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  alice: {password_hash}: oops\n", encoding="utf-8")
    with pytest.raises(WebConfigError) as raised:
        load(path)
    assert raised.value.problems == ["malformed YAML at line 2, column 70: mapping values are not allowed here"]
    assert password_hash[7:] not in raised.value.problems[0]


def test_an_empty_web_config_serves_plain_http_without_auth(tmp_path):
    path = tmp_path / "web.yml"
    path.write_text("", encoding="utf-8")
    web = load(path)
    assert (web.tls, web.auth) == (None, None)


def test_the_exporter_process_serves_tls_with_basic_auth(simulator, run_exporter, pki, password_hash, tmp_path):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({**tls_config(pki), "basic_auth_users": {"alice": password_hash}}))
    config = {
        "poll_interval": "1h",
        "targets": [{"region": "us-east-1", "endpoint_url": simulator.url, "assessments": [{"id": uuid(1)}]}],
    }
    exporter = run_exporter(config, "--web.config.file", str(web), wait="none")
    served = Served(exporter.url, int(exporter.url.rsplit(":", 1)[1]), None, [])  # type: ignore[arg-type]
    served.url = served.url.replace("http:", "https:")
    context = client_context(pki)
    authorization = {"Authorization": basic("alice", PASSWORD)}

    def ready() -> bool:
        assert exporter.process.poll() is None, exporter.logs()
        return request(served, "GET", "/readyz", authorization, context)[0] == 200

    eventually(ready, what="/readyz over TLS", ignoring=(OSError,), detail=exporter.logs)
    status, _, body = request(served, "GET", "/metrics", authorization, context)
    assert status == 200
    assert b"auditmanager_assessment_controls{" in body
    assert request(served, "GET", "/healthz", context=context)[0] == 401
    assert b"auditmanager_" not in plain_http_answer(served.port)
    assert "tls=True basic_auth=True" in exporter.logs()


HOSTILE = [
    ("random bytes", os.urandom(4096)),
    ("a request line of 100 kB", b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n"),
    ("a header of 100 kB", b"GET /metrics HTTP/1.1\r\nX-Big: " + b"b" * 100_000 + b"\r\n\r\n"),
    ("300 headers", b"GET /metrics HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(300)) + b"\r\n"),
    ("a bad content length", b"POST /-/reload HTTP/1.1\r\nContent-Length: lots\r\n\r\n"),
    ("a huge content length", b"POST /-/reload HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\nabc"),
    ("an unknown method", b"BREW /metrics HTTP/1.1\r\n\r\n"),
    ("a TLS client hello to plain HTTP", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64)),
    ("nul bytes", b"\x00" * 8192),
]


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_garbage_and_slow_clients_never_take_the_server_down(serve, pki, password_hash, capfd, tls):
    served = serve({**(tls_config(pki) if tls else {}), "basic_auth_users": {"alice": password_hash}})
    context = client_context(pki) if tls else None
    authorization = {"Authorization": basic("alice", PASSWORD)}
    # Slow clients first: silent ones, and one that sends half a request; they stay connected throughout.
    slow = [socket.create_connection(("127.0.0.1", served.port), timeout=10) for _ in range(20)]
    slow[0].sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    try:
        for _, payload in HOSTILE:
            with socket.create_connection(("127.0.0.1", served.port), timeout=10) as hostile:
                try:
                    hostile.sendall(payload)
                    hostile.shutdown(socket.SHUT_WR)
                    while hostile.recv(65536):
                        pass
                except OSError:
                    pass
            assert request(served, "GET", "/metrics", authorization, context)[0] == 200
    finally:
        for connection in slow:
            connection.close()
    assert request(served, "GET", "/healthz", authorization, context)[0] == 200
    # Hostile clients are routine: nothing at warning level or above, and never a traceback.
    assert capfd.readouterr().err == ""


# ---- every client_auth_type, against no client certificate, one from the CA, and one from another CA

ACCEPTED = {
    "NoClientCert": {"none", "from the CA", "from another CA"},
    "RequestClientCert": {"none", "from the CA", "from another CA"},
    "RequireAnyClientCert": {"from the CA", "from another CA"},
    "RequireClientCert": {"from the CA", "from another CA"},
    "VerifyClientCertIfGiven": {"none", "from the CA"},
    "RequireAndVerifyClientCert": {"from the CA"},
}


def client_cert(pki: Pki, which: str) -> tuple[Path, Path] | None:
    return {"none": None, "from the CA": (pki.client_cert, pki.client_key)}.get(which, (pki.rogue_cert, pki.rogue_key))


def answers(served: Served, context: ssl.SSLContext) -> bool:
    """Whether a request over TLS gets an HTTP answer; TLS 1.3 reports a refused client certificate on first read."""
    try:
        return request(served, "GET", "/healthz", context=context)[0] == 200
    except (ssl.SSLError, ConnectionError):
        return False


@pytest.mark.parametrize("auth_type", list(ACCEPTED))
@pytest.mark.parametrize("client", ["none", "from the CA", "from another CA"])
def test_each_client_auth_type_admits_the_client_certificates_the_toolkit_admits(serve, pki, auth_type, client):
    settings = {"client_auth_type": auth_type} | (
        {} if auth_type == "NoClientCert" else {"client_ca_file": str(pki.ca)}
    )
    served = serve(tls_config(pki, **settings))
    assert answers(served, client_context(pki, client_cert(pki, client))) is (client in ACCEPTED[auth_type])


def test_verify_client_cert_if_given_without_a_ca_verifies_against_the_system_roots(serve, pki):
    served = serve(tls_config(pki, client_auth_type="VerifyClientCertIfGiven"))
    assert answers(served, client_context(pki))
    assert not answers(served, client_context(pki, (pki.client_cert, pki.client_key)))


@pytest.mark.parametrize(("allowed", "admitted"), [(["prometheus.example"], True), (["other.example"], False)])
def test_client_allowed_sans_admit_only_certificates_naming_one(serve, pki, allowed, admitted):
    settings = {"client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": str(pki.ca)}
    served = serve(
        tls_config(pki, **settings)
        | {"tls_server_config": {**tls_config(pki, **settings)["tls_server_config"], "client_allowed_sans": allowed}}
    )  # type: ignore[dict-item]
    assert answers(served, client_context(pki, (pki.client_cert, pki.client_key))) is admitted


def test_inline_cert_key_and_client_ca_serve_like_files(serve, pki):
    served = serve(
        {
            "tls_server_config": {
                "cert": pki.server_cert.read_text(),
                "key": pki.server_key.read_text(),
                "client_ca": pki.ca.read_text(),
                "client_auth_type": "RequireAndVerifyClientCert",
            }
        }
    )
    assert answers(served, client_context(pki, (pki.client_cert, pki.client_key)))
    assert not answers(served, client_context(pki, (pki.rogue_cert, pki.rogue_key)))


# ---- versions, cipher suites, curves


def tls12_client(pki: Pki, ciphers: str | None = None) -> ssl.SSLContext:
    context = client_context(pki)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        context.set_ciphers(ciphers)
    return context


def negotiated(served: Served, context: ssl.SSLContext) -> tuple[str, str]:
    with (
        socket.create_connection(("127.0.0.1", served.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        cipher = tls.cipher()
        assert cipher is not None
        return str(tls.version()), cipher[0]


def test_max_version_tls12_refuses_a_tls13_only_client(serve, pki):
    served = serve(tls_config(pki, max_version="TLS12"))
    only13 = client_context(pki)
    only13.minimum_version = ssl.TLSVersion.TLSv1_3
    assert not answers(served, only13)
    assert negotiated(served, client_context(pki))[0] == "TLSv1.2"


def test_the_default_versions_are_tls12_to_tls13(serve, pki):
    served = serve(tls_config(pki))
    assert negotiated(served, client_context(pki))[0] == "TLSv1.3"
    assert negotiated(served, tls12_client(pki))[0] == "TLSv1.2"


def old_client(pki: Pki, version: ssl.TLSVersion) -> ssl.SSLContext:
    context = client_context(pki)
    context.minimum_version = context.maximum_version = version
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_min_version_tls10_admits_old_clients_which_the_default_refuses(serve, pki, version):
    assert not answers(serve(tls_config(pki)), old_client(pki, version))
    assert answers(serve(tls_config(pki, min_version="TLS10")), old_client(pki, version))


def test_cipher_suites_by_go_names_limit_tls12_to_those(serve, pki):
    served = serve(tls_config(pki, cipher_suites=["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]))
    assert negotiated(served, tls12_client(pki)) == ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert not answers(served, tls12_client(pki, "ECDHE-ECDSA-AES256-GCM-SHA384"))
    assert not answers(served, tls12_client(pki, "ECDHE-ECDSA-CHACHA20-POLY1305"))


def rsa_server_files(directory: Path) -> tuple[Path, Path]:
    """A self-signed RSA certificate and its key: RSA key exchange needs an RSA certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("rsa server"))
        .issuer_name(_name("rsa server"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return _write(directory, "rsa-server", cert, key)  # type: ignore[arg-type]


def unverified_tls12_client(ciphers: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    return context


@pytest.mark.parametrize(
    ("suite", "openssl_name"),
    [
        ("TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA"),
        ("TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA"),
        ("TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"),
        ("TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384"),
    ],
)
def test_the_rsa_key_exchange_suites_go_lists_are_served_when_cipher_suites_names_them(
    serve, tmp_path, suite, openssl_name
):
    cert, key = rsa_server_files(tmp_path)
    served = serve({"tls_server_config": {"cert_file": str(cert), "key_file": str(key), "cipher_suites": [suite]}})
    assert negotiated(served, unverified_tls12_client(openssl_name)) == ("TLSv1.2", openssl_name)


def test_the_rsa_key_exchange_suites_are_off_by_default(serve, tmp_path):
    cert, key = rsa_server_files(tmp_path)
    served = serve({"tls_server_config": {"cert_file": str(cert), "key_file": str(key)}})
    assert not answers(served, unverified_tls12_client("AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA:AES256-SHA"))
    assert (
        negotiated(served, unverified_tls12_client("ECDHE-RSA-AES128-GCM-SHA256"))[1] == "ECDHE-RSA-AES128-GCM-SHA256"
    )


def test_the_ecdhe_cbc_suites_and_p521_are_off_by_default_and_on_when_asked_for(serve, pki):
    cbc = "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"
    p521 = client_context(pki)
    p521.set_ecdh_curve("secp521r1")
    default = serve(tls_config(pki))
    assert not answers(default, tls12_client(pki, cbc))
    assert not answers(default, p521)
    asked = serve(
        tls_config(pki, cipher_suites=["TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"], curve_preferences=["CurveP521"])
    )
    assert negotiated(asked, tls12_client(pki, cbc))[1] == "ECDHE-ECDSA-AES128-SHA"
    assert answers(asked, p521)


def test_prefer_server_cipher_suites_picks_the_servers_first_choice(serve, pki):
    suites = ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]
    client = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"
    preferred = serve(tls_config(pki, cipher_suites=suites))
    assert negotiated(preferred, tls12_client(pki, client))[1] == "ECDHE-ECDSA-AES256-GCM-SHA384"
    clients = serve(tls_config(pki, cipher_suites=suites, prefer_server_cipher_suites=False))
    assert negotiated(clients, tls12_client(pki, client))[1] == "ECDHE-ECDSA-AES128-GCM-SHA256"


@pytest.mark.parametrize(
    ("curve", "offered", "other"),
    [
        ("CurveP384", "secp384r1", "prime256v1"),
        ("X25519", "X25519", "prime256v1"),
        ("CurveP521", "secp521r1", "X25519"),
    ],
)
def test_curve_preferences_refuse_a_client_offering_only_other_curves(serve, pki, curve, offered, other):
    # TLS 1.3, where the key exchange group is separate from the certificate's curve (P-256 here).
    served = serve(tls_config(pki, curve_preferences=[curve]))
    refused, admitted = client_context(pki), client_context(pki)
    refused.set_ecdh_curve(other)
    admitted.set_ecdh_curve(offered)
    assert not answers(served, refused)
    assert answers(served, admitted)


# ---- http_server_config and rate_limit


def test_configured_headers_are_sent_on_every_response(serve, password_hash):
    headers = {
        "X-Frame-Options": "deny",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'",
    }
    served = serve(
        {"http_server_config": {"headers": headers, "http2": False}, "basic_auth_users": {"alice": password_hash}}
    )
    for authorization in ({}, {"Authorization": basic("alice", PASSWORD)}):
        status, sent, _ = request(served, "GET", "/metrics", authorization)
        assert status in (200, 401)
        assert {name: sent.get(name) for name in headers} == headers


def test_header_values_yaml_reads_as_numbers_or_booleans_are_sent_as_written(serve, tmp_path):
    # The toolkit's headers are a map[string]string: `1` is the string "1", and `0x10` stays "0x10".
    path = tmp_path / "headers.yml"
    path.write_text(
        "http_server_config:\n  headers:\n    X-XSS-Protection: 1\n    Strict-Transport-Security: 0x10\n"
        "    Content-Security-Policy: yes\n",
        encoding="utf-8",
    )
    written = (("X-XSS-Protection", "1"), ("Strict-Transport-Security", "0x10"), ("Content-Security-Policy", "yes"))
    assert load(path).headers == written
    served = serve({"http_server_config": {"headers": {"X-XSS-Protection": 1}}})
    assert request(served, "GET", "/healthz")[1]["X-XSS-Protection"] == "1"


def test_a_rate_limit_interval_of_0_means_no_rate_limit_as_in_the_toolkits_tests(serve):
    served = serve({"rate_limit": {"interval": 0, "burst": 0}})
    assert served.server.web.current().rate_limit is None
    assert [request(served, "GET", "/healthz")[0] for _ in range(3)] == [200, 200, 200]


def test_http2_is_accepted_and_http11_is_served_to_a_client_offering_h2(serve, pki):
    served = serve({**tls_config(pki), "http_server_config": {"http2": True}})
    context = client_context(pki)
    context.set_alpn_protocols(["h2", "http/1.1"])
    assert request(served, "GET", "/healthz", context=context)[0] == 200


def test_rate_limit_answers_429_beyond_the_burst(serve):
    served = serve({"rate_limit": {"burst": 2, "interval": "1h"}})
    assert [request(served, "GET", "/healthz")[0] for _ in range(3)] == [200, 200, 429]


def test_empty_sections_are_plain_http_without_auth_as_in_the_toolkit(serve):
    served = serve({"tls_server_config": {}, "basic_auth_users": {}, "http_server_config": None})
    assert request(served, "GET", "/metrics")[0] == 200


# ---- rotation: files re-read when they change, without a restart


def served_subject(port: int) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return str(x509.load_der_x509_certificate(der).subject.rfc4514_string())


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    eventually(condition, what=what, timeout=seconds)


def test_a_renewed_certificate_written_over_the_files_is_served_without_a_restart(serve, pki, tmp_path):
    cert, key = pki.issue("live", "server-1", directory=tmp_path)
    served = serve({"tls_server_config": {"cert_file": str(cert), "key_file": str(key)}})
    assert served_subject(served.port) == "CN=server-1"
    pki.issue("live", "server-2", directory=tmp_path)
    wait_until(lambda: served_subject(served.port) == "CN=server-2", "the renewed certificate served")
    assert served.server.web.successful


def test_a_half_written_rotation_keeps_the_old_certificate_until_the_pair_matches(serve, pki, tmp_path):
    cert, key = pki.issue("live", "server-1", directory=tmp_path)
    served = serve({"tls_server_config": {"cert_file": str(cert), "key_file": str(key)}})
    new_cert, new_key = pki.issue("next", "server-2", directory=tmp_path)
    cert.write_bytes(new_cert.read_bytes())  # the certificate first, its key not yet
    # Files are looked at as connections come in.
    wait_until(
        lambda: served_subject(served.port) == "CN=server-1" and not served.server.web.successful,
        "the mismatched pair refused and the old certificate served",
    )
    key.write_bytes(new_key.read_bytes())
    wait_until(lambda: served_subject(served.port) == "CN=server-2", "the complete pair served")
    assert served.server.web.successful


def test_a_new_client_ca_is_used_for_new_connections(serve, pki, tmp_path):
    ca = tmp_path / "clients-ca.crt"
    ca.write_bytes(pki.rogue_cert.read_bytes())  # trusts nobody who matters yet
    served = serve(tls_config(pki, client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(ca)))
    context = client_context(pki, (pki.client_cert, pki.client_key))
    assert not answers(served, context)
    ca.write_bytes(pki.ca.read_bytes())
    wait_until(lambda: answers(served, context), "the client admitted under the new CA")


def test_users_changed_in_the_web_config_apply_without_a_restart(serve, password_hash, tmp_path):
    served = serve({"basic_auth_users": {"alice": password_hash}})
    assert request(served, "GET", "/metrics", {"Authorization": basic("bob", PASSWORD)})[0] == 401
    (tmp_path / "web-0.yml").write_text(yaml.safe_dump({"basic_auth_users": {"bob": password_hash}}))
    wait_until(
        lambda: request(served, "GET", "/metrics", {"Authorization": basic("bob", PASSWORD)})[0] == 200,
        "bob admitted",
    )
    assert request(served, "GET", "/metrics", {"Authorization": basic("alice", PASSWORD)})[0] == 401


def test_a_broken_web_config_on_disk_keeps_the_old_one_serving(serve, password_hash, tmp_path):
    served = serve({"basic_auth_users": {"alice": password_hash}})
    (tmp_path / "web-0.yml").write_text("basic_auth_users: {alice: not-a-hash}\n")
    wait_until(
        lambda: (
            request(served, "GET", "/metrics", {"Authorization": basic("alice", PASSWORD)})[0] == 200
            and not served.server.web.successful
        ),
        "the broken web config refused and the old one serving",
    )
    assert not served.server.reload_web_config()


# ---- the real process: start-up errors, and SIGHUP and /-/reload re-reading the web config


@pytest.mark.parametrize(
    ("tls", "problem"),
    [
        ({"cert_file": "", "key_file": "server.key"}, "tls_server_config.cert_file: must not be empty"),
        ({"cert_file": "server.crt", "key_file": ""}, "tls_server_config.key_file: must not be empty"),
    ],
)
def test_an_empty_file_name_stops_the_process_with_one_line_and_exit_2(tmp_path, pki, tls, problem):
    (tmp_path / "server.crt").write_bytes(pki.server_cert.read_bytes())
    (tmp_path / "server.key").write_bytes(pki.server_key.read_bytes())
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"tls_server_config": tls}))
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--demo", "--web.config.file", str(web)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"auditmanager-exporter: web config {web}: {problem}"]


def test_the_config_check_reports_every_problem_of_the_web_config_at_once(tmp_path, pki):
    web = tmp_path / "web.yml"
    web.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {
                    "cert_file": "missing.crt",
                    "key_file": str(pki.server_key),
                    "max_version": "TLS9",
                },
                "http_server_config": {"http2": "sometimes"},
                "basic_auth_users": {"alice": "hunter2"},
                "rate_limit": {"burst": -1, "interval": "soon"},
                "tls_config": {},
            }
        )
    )
    config = write_config(
        tmp_path / "config.yml", {"targets": [{"region": "us-east-1", "assessments": [{"id": uuid(1)}]}]}
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "--config.file",
            str(config),
            "--web.config.file",
            str(web),
            "--config.check",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=aws_env(tmp_path),
    )
    assert result.returncode == 2
    assert result.stdout == ""
    problems = [
        "tls_config: unknown key",
        "tls_server_config.max_version: 'TLS9' is not one of TLS10, TLS11, TLS12, TLS13",
        "tls_server_config.cert_file: cannot read",
        "http_server_config.http2: must be true or false",
        "basic_auth_users.alice: not a bcrypt hash",
        "rate_limit.burst: must be a whole number from 0 to 1000000",
        "rate_limit.interval: not a duration: 'soon'",
    ]
    lines = result.stderr.splitlines()
    assert len(lines) == len(problems), result.stderr
    for problem in problems:
        assert any(line.startswith(f"auditmanager-exporter: web config {web}: {problem}") for line in lines), problem
    assert "hunter2" not in result.stderr


def web_reload_metric(exporter: ExporterProcess, context: ssl.SSLContext, authorization: dict[str, str]) -> float:
    served = Served(exporter.url.replace("http:", "https:"), int(exporter.url.rsplit(":", 1)[1]), None, [])  # type: ignore[arg-type]
    status, _, body = request(served, "GET", "/metrics", authorization, context)
    assert status == 200
    value = sample(parse_metrics(body.decode()), "auditmanager_exporter_web_config_last_reload_successful")
    assert value is not None
    return value


@pytest.mark.parametrize("trigger", ["SIGHUP", "POST /-/reload"])
def test_sighup_and_reload_re_read_the_web_config_and_a_broken_one_keeps_the_old(
    simulator, run_exporter, pki, password_hash, tmp_path, trigger
):
    simulator.add_assessment("us-east-1", uuid(1), "A1", insights=insights())
    web = tmp_path / "web.yml"
    good = {**tls_config(pki), "basic_auth_users": {"alice": password_hash}}
    web.write_text(yaml.safe_dump(good))
    config = {
        "poll_interval": "1h",
        "targets": [{"region": "us-east-1", "endpoint_url": simulator.url, "assessments": [{"id": uuid(1)}]}],
    }
    exporter = run_exporter(config, "--web.config.file", str(web), wait="none")
    context, alice = client_context(pki), {"Authorization": basic("alice", PASSWORD)}
    wait_until(lambda: _answers_quietly(exporter, context, alice), "the exporter serving TLS")
    served = Served(exporter.url.replace("http:", "https:"), int(exporter.url.rsplit(":", 1)[1]), None, [])  # type: ignore[arg-type]

    def reload() -> None:
        if trigger == "SIGHUP":
            exporter.process.send_signal(signal.SIGHUP)
        else:
            request(served, "POST", "/-/reload", alice, context)

    web.write_text(yaml.safe_dump({**good, "basic_auth_users": {"alice": "plaintext"}}))
    reload()
    wait_until(lambda: web_reload_metric(exporter, context, alice) == 0.0, "the broken web config refused")
    assert "basic_auth_users.alice: not a bcrypt hash" in exporter.logs()
    web.write_text(yaml.safe_dump({**good, "basic_auth_users": {"bob": password_hash}}))
    reload()
    bob = {"Authorization": basic("bob", PASSWORD)}
    wait_until(lambda: _answers_quietly(exporter, context, bob), "the new users in force")
    assert web_reload_metric(exporter, context, bob) == 1.0
    assert request(served, "GET", "/metrics", alice, context)[0] == 401
    # New connections also notice changed files; the explicit reloads are logged as such.
    assert exporter.logs().count('reason="reload requested"') >= 2, exporter.logs()


def _answers_quietly(exporter: ExporterProcess, context: ssl.SSLContext, authorization: dict[str, str]) -> bool:
    assert exporter.process.poll() is None, exporter.logs()
    served = Served(exporter.url.replace("http:", "https:"), int(exporter.url.rsplit(":", 1)[1]), None, [])  # type: ignore[arg-type]
    try:
        return request(served, "GET", "/healthz", authorization, context)[0] == 200
    except OSError:
        return False


def started_over_tls(run_exporter, web: Path, context: ssl.SSLContext, headers: dict[str, str]) -> Served:
    """The real process with `web`, once it answers /healthz to this client."""
    exporter = run_exporter(None, "--demo", "--web.config.file", str(web), wait="none")
    served = Served(exporter.url.replace("http:", "https:"), int(exporter.url.rsplit(":", 1)[1]), None, [])  # type: ignore[arg-type]
    wait_until(lambda: _answers_quietly(exporter, context, headers), f"the exporter serving:\n{exporter.logs()}", 60)
    return served


@pytest.mark.parametrize("auth_type", [t for t in ACCEPTED if t != "RequireClientCert"])
def test_the_process_admits_client_certificates_by_each_client_auth_type(run_exporter, pki, tmp_path, auth_type):
    settings = {"client_auth_type": auth_type} | (
        {} if auth_type == "NoClientCert" else {"client_ca_file": str(pki.ca)}
    )
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump(tls_config(pki, **settings)))
    served = started_over_tls(run_exporter, web, client_context(pki, (pki.client_cert, pki.client_key)), {})
    for client in ("none", "from the CA", "from another CA"):
        assert answers(served, client_context(pki, client_cert(pki, client))) is (client in ACCEPTED[auth_type]), client


def test_the_process_serves_a_web_config_using_every_key(run_exporter, pki, tmp_path, password_hash):
    headers = {
        "Content-Security-Policy": "default-src 'none'",
        "X-Frame-Options": "sameorigin",
        "X-Content-Type-Options": "nosniff",
        "X-XSS-Protection": "0",
        "Strict-Transport-Security": "max-age=31536000",
    }
    every_key = {
        "tls_server_config": {
            "cert_file": pki.server_cert.name,
            "key_file": pki.server_key.name,
            "client_auth_type": "RequireAndVerifyClientCert",
            "client_ca_file": pki.ca.name,
            "client_allowed_sans": ["prometheus.example"],
            "cipher_suites": ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256"],
            "curve_preferences": ["X25519", "CurveP256"],
            "min_version": "TLS12",
            "max_version": "TLS12",
            "prefer_server_cipher_suites": True,
        },
        "http_server_config": {"http2": True, "headers": headers},
        "basic_auth_users": {"alice": password_hash},
        "rate_limit": {"interval": "1ms", "burst": 1000},
    }
    # Relative names are relative to the web config's own directory.
    web = pki.directory / f"every-key-{tmp_path.name}.yml"
    web.write_text(yaml.safe_dump(every_key))
    context, alice = client_context(pki, (pki.client_cert, pki.client_key)), {"Authorization": basic("alice", PASSWORD)}
    served = started_over_tls(run_exporter, web, context, alice)
    status, sent, body = request(served, "GET", "/metrics", alice, context)
    assert status == 200 and b"auditmanager_exporter_web_config_last_reload_successful 1.0" in body
    assert {name: sent.get(name) for name in headers} == headers
    assert negotiated(served, context) == ("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384")
    assert request(served, "GET", "/metrics", {"Authorization": basic("alice", "wrong")}, context)[0] == 401
    assert not answers(served, client_context(pki))
    assert not answers(served, client_context(pki, (pki.rogue_cert, pki.rogue_key)))
