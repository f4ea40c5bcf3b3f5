"""The web config: TLS, mutual TLS and basic auth on every endpoint, bad web configs, and hostile clients.

Certificates are made at test time; the server is the real MetricsServer over real sockets.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from exporter.exposition import Exposition
from exporter.server import App, MetricsServer
from exporter.snapshot import ApiCounters, Snapshot, SnapshotStore
from exporter.webconfig import WebConfigError, load
from tests.conftest import insights, uuid

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


def _make_pki(directory: Path) -> Pki:

    now = dt.datetime.now(dt.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def certificate(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None
    ) -> x509.Certificate:
        issuer_name, issuer_key = issuer or (name(subject), key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )
        if issuer is None:
            builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        elif subject == "server":
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        else:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
        cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_path, key_path

    ca_key, rogue_ca_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("test CA", ca_key, None)
    rogue_ca = certificate("rogue CA", rogue_ca_key, None)
    ca_path, _ = write("ca", ca, ca_key)
    server_key, client_key, rogue_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    server = write("server", certificate("server", server_key, (ca.subject, ca_key)), server_key)
    client = write("client", certificate("client", client_key, (ca.subject, ca_key)), client_key)
    rogue = write("rogue", certificate("client", rogue_key, (rogue_ca.subject, rogue_ca_key)), rogue_key)
    return Pki(directory, ca_path, *server, *client, *rogue)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _make_pki(tmp_path_factory.mktemp("pki"))


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
        app = App(Exposition(store, ApiCounters()), store, "/metrics", lambda: reloads.append(True) or True)
        server = MetricsServer(("127.0.0.1", 0), app, load(path))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        scheme = "https" if server.web.tls else "http"
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


def tls_config(pki: Pki, **settings: str) -> dict[str, object]:
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


BAD_WEB_CONFIGS = [
    ("malformed YAML", "tls_server_config: [", "malformed YAML"),
    ("not a mapping", "- a\n- b\n", "the top level must be a mapping"),
    ("unknown key", "basic_auth_user: {}\n", "basic_auth_user: unknown key"),
    ("unsupported toolkit key", "rate_limit: {interval: 1s}\n", "rate_limit: not supported by this exporter"),
    ("unknown TLS key", "tls_server_config: {cert_file: @S@, key_file: @K@, ciphers: x}", "ciphers: unknown key"),
    ("missing cert_file", "tls_server_config: {key_file: @K@}", "tls_server_config.cert_file: required"),
    ("cert_file not there", "tls_server_config: {cert_file: nope.crt, key_file: @K@}", "cert_file: cannot read"),
    (
        "bad min_version",
        "tls_server_config: {cert_file: @S@, key_file: @K@, min_version: TLS14}",
        "is not one of TLS10",
    ),
    (
        "min above max",
        "tls_server_config: {cert_file: @S@, key_file: @K@, min_version: TLS13, max_version: TLS12}",
        "min_version is above max_version",
    ),
    (
        "bad client_auth_type",
        "tls_server_config: {cert_file: @S@, key_file: @K@, client_auth_type: Always}",
        "client_auth_type: 'Always' is not one of",
    ),
    (
        "unverified client_auth_type",
        "tls_server_config: {cert_file: @S@, key_file: @K@, client_auth_type: RequireAnyClientCert}",
        "RequireAnyClientCert is not supported",
    ),
    (
        "verification without a CA",
        "tls_server_config: {cert_file: @S@, key_file: @K@, client_auth_type: RequireAndVerifyClientCert}",
        "client_ca_file: required with client_auth_type RequireAndVerifyClientCert",
    ),
    (
        "a CA without verification",
        "tls_server_config: {cert_file: @S@, key_file: @K@, client_ca_file: @C@}",
        "client_ca_file: set, but client_auth_type does not ask for client certificates",
    ),
    ("key does not match", "tls_server_config: {cert_file: @S@, key_file: @R@}", "cannot use cert_file and key_file"),
    ("cert is not PEM", "tls_server_config: {cert_file: @W@, key_file: @K@}", "cannot use cert_file and key_file"),
    ("not a bcrypt hash", "basic_auth_users: {alice: plaintext-password}", "basic_auth_users.alice: not a bcrypt hash"),
    ("no users", "basic_auth_users: {}", "basic_auth_users: must be a non-empty mapping"),
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
    files = {"S": pki.server_cert, "K": pki.server_key, "C": pki.ca, "R": pki.rogue_key, "W": pki.directory / "web"}
    (pki.directory / "web").write_text("not a certificate\n")
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
    deadline = time.monotonic() + 30
    while True:
        assert exporter.process.poll() is None, exporter.logs()
        try:
            if request(served, "GET", "/readyz", authorization, context)[0] == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, exporter.logs()
        time.sleep(0.1)
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
