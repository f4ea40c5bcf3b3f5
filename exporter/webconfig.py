"""The `--web.config.file` of Prometheus's exporter-toolkit, every key with the toolkit's meaning.

`load(path)` reads a web config and the files it names and returns a `WebConfig`, or raises `WebConfigError` with
one line per problem. `WebConfigSource` holds the one in force and re-reads it when any of those files change.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from OpenSSL._util import lib as _openssl
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from exporter.config import parse_duration, yaml_problem

log = logging.getLogger(__name__)

TLS_VERSIONS = {
    "TLS10": SSL.TLS1_VERSION,
    "TLS11": SSL.TLS1_1_VERSION,
    "TLS12": SSL.TLS1_2_VERSION,
    "TLS13": SSL.TLS1_3_VERSION,
}
# Go's crypto/tls names (tls.CipherSuites(), the ones the toolkit accepts) and OpenSSL's names for them. Go does
# not let TLS 1.3 suites be configured: the toolkit accepts their names and TLS 1.3 keeps all three, as here.
TLS12_CIPHER_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
}
TLS13_CIPHER_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
CURVES = {"CurveP256": "P-256", "CurveP384": "P-384", "CurveP521": "P-521", "X25519": "X25519"}
CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
# The toolkit still accepts the old name of RequireAnyClientCert.
_CLIENT_AUTH_ALIASES = {"": "NoClientCert", "RequireClientCert": "RequireAnyClientCert"}
# The response headers the toolkit lets a web config set, and the values it allows where they are an enumeration.
HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}
_KEYS = {
    "": ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"),
    "tls_server_config": (
        "cert",
        "key",
        "client_ca",
        "cert_file",
        "key_file",
        "client_auth_type",
        "client_ca_file",
        "cipher_suites",
        "curve_preferences",
        "min_version",
        "max_version",
        "prefer_server_cipher_suites",
        "client_allowed_sans",
    ),
    "http_server_config": ("http2", "headers"),
    "rate_limit": ("burst", "interval"),
}
# The keys whose presence turns TLS on, as the toolkit's TLSConfig.IsEnabled.
_TLS_ENABLING = ("cert", "key", "client_ca", "cert_file", "key_file", "client_ca_file", "client_auth_type")
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")
CACHE_SIZE = 1024
# bcrypt's own range of costs (log2 of the rounds); outside it bcrypt refuses the hash.
MIN_BCRYPT_COST, MAX_BCRYPT_COST = 4, 31
# How often the files of the web config are looked at for changes (a stat each, on new connections only).
CHECK_INTERVAL_SECONDS = 1.0
_SESSION_ID = b"auditmanager-exporter"


class WebConfigError(Exception):
    """The web config could not be loaded; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class BasicAuth:
    """Checks `Authorization: Basic` headers against bcrypt hashes.

    bcrypt is slow on purpose, so successful checks are remembered, keyed by an HMAC under a per-process random key
    (a plain hash of the password would be a fast hash an attacker with a memory dump could brute-force).
    """

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        self._key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()
        # An unknown user still costs one bcrypt check (against a configured user's hash, whatever the password,
        # the answer stays no), so response times do not reveal which users exist.
        self._decoy = next(iter(self._users.values()))

    def check(self, header: str | None) -> bool:
        """Whether `header` (the Authorization header's value, if any) names a user with the right password."""
        credentials = _credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        hashed = None
        for name, user_hash in self._users.items():
            if hmac.compare_digest(name.encode(), user.encode()):
                hashed = user_hash
        if hashed is None:
            _bcrypt_matches(password, self._decoy)
            return False
        key = hmac.new(self._key, b"\0".join((user.encode(), password, hashed)), hashlib.sha256).digest()
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return True
        if not _bcrypt_matches(password, hashed):
            return False
        with self._lock:
            self._cache[key] = None
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return True


class RateLimiter:
    """The toolkit's `rate_limit`: a token bucket of `burst` requests, refilled by one every `interval`."""

    def __init__(self, interval: float, burst: int) -> None:
        self._interval = interval
        self._burst = burst
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self._burst), self._tokens + (now - self._last) / self._interval)
            self._last = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


@dataclass(frozen=True)
class WebConfig:
    """What the HTTP server needs: a TLS context (None: plain HTTP), basic auth and rate limit (None: off), and
    the response headers to add."""

    tls: SSL.Context | None = field(default=None, repr=False)
    auth: BasicAuth | None = field(default=None, repr=False)
    headers: tuple[tuple[str, str], ...] = ()
    http2: bool = True
    rate_limit: RateLimiter | None = field(default=None, repr=False)
    client_auth_type: str = "NoClientCert"
    # The TLS files (cert, key, CA) this config was built from, for the health check and rotation.
    cert_file: Path | None = None
    key_file: Path | None = None
    files: tuple[Path, ...] = ()


def load(path: str | Path) -> WebConfig:
    """Read and validate the web config at `path` and the files it names; relative names are relative to its
    directory."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise WebConfigError([f"cannot read: {exc.strerror if isinstance(exc, OSError) else exc}"]) from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise WebConfigError([yaml_problem(exc)]) from None
    if raw is None:
        return WebConfig(files=(path,))
    if not isinstance(raw, dict):
        raise WebConfigError(["the top level must be a mapping"])
    problems = list(_unknown_keys(raw, ""))
    tls = _Tls(_section(raw, "tls_server_config", problems), path.parent, problems)
    http = _section(raw, "http_server_config", problems)
    problems.extend(_unknown_keys(http, "http_server_config"))
    http2 = _boolean(http, "http_server_config", "http2", True, problems)
    headers = _headers(http.get("headers"), problems)
    auth = _basic_auth(raw.get("basic_auth_users"), problems)
    limiter = _rate_limit(_section(raw, "rate_limit", problems), problems)
    context = _tls_context(tls, problems) if not problems and tls.enabled else None
    if problems:
        raise WebConfigError(problems)
    return WebConfig(
        tls=context,
        auth=auth,
        headers=headers,
        http2=http2,
        rate_limit=limiter,
        client_auth_type=tls.client_auth_type,
        cert_file=tls.paths.get("cert_file"),
        key_file=tls.paths.get("key_file"),
        files=(path, *tls.paths.values()),
    )


def _section(raw: dict[Any, Any], key: str, problems: list[str]) -> dict[Any, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{key}: must be a mapping")
        return {}
    return value


def _unknown_keys(raw: dict[Any, Any], where: str) -> Iterator[str]:
    for key in raw:
        if key not in _KEYS[where]:
            yield f"{where}.{key}: unknown key" if where else f"{key}: unknown key"


def _boolean(raw: dict[Any, Any], where: str, key: str, default: bool, problems: list[str]) -> bool:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        problems.append(f"{where}.{key}: must be true or false")
        return default
    return value


def _string_list(raw: dict[Any, Any], where: str, key: str, problems: list[str]) -> list[str]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        problems.append(f"{where}.{key}: must be a list of strings")
        return []
    return value


class _Tls:
    """The checked `tls_server_config`; `_tls_context` reads its files and builds the OpenSSL context."""

    where = "tls_server_config"

    def __init__(self, raw: dict[Any, Any], base: Path, problems: list[str]) -> None:
        where = self.where
        problems.extend(_unknown_keys(raw, where))
        strings: dict[str, str] = {}
        for key in (*_TLS_ENABLING, "min_version", "max_version"):
            value = raw.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                problems.append(f"{where}.{key}: must be a string")
            elif not value and key in ("cert_file", "key_file", "client_ca_file"):
                # The toolkit would quietly serve plain HTTP here; an empty file name is a mistake, so say so.
                problems.append(f"{where}.{key}: must not be empty")
            elif value:
                strings[key] = value
        self.enabled = any(key in strings for key in _TLS_ENABLING) or any(
            raw.get(key) == "" for key in ("cert_file", "key_file", "client_ca_file")
        )
        self.paths: dict[str, Path] = {
            key: base / strings[key] for key in ("cert_file", "key_file", "client_ca_file") if key in strings
        }
        self.inline = {key: strings[key] for key in ("cert", "key", "client_ca") if key in strings}
        if self.enabled:
            for key in ("cert", "key"):
                if raw.get(f"{key}_file") is None and key not in strings:
                    problems.append(f"{where}: missing one of {key} or {key}_file")
        auth_type = strings.get("client_auth_type", "")
        auth_type = _CLIENT_AUTH_ALIASES.get(auth_type, auth_type)
        if auth_type not in CLIENT_AUTH_TYPES:
            problems.append(f"{where}.client_auth_type: {auth_type!r} is not one of {', '.join(CLIENT_AUTH_TYPES)}")
        elif auth_type == "NoClientCert" and ("client_ca_file" in strings or "client_ca" in strings):
            problems.append(f"{where}.client_ca_file: set, but client_auth_type does not ask for client certificates")
        self.client_auth_type = auth_type
        self.versions = {}
        for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
            name = strings.get(key, default)
            if name not in TLS_VERSIONS:
                problems.append(f"{where}.{key}: {name!r} is not one of {', '.join(TLS_VERSIONS)}")
            else:
                self.versions[key] = TLS_VERSIONS[name]
        if len(self.versions) == 2 and self.versions["min_version"] > self.versions["max_version"]:
            problems.append(f"{where}: min_version is above max_version")
        ciphers = _string_list(raw, where, "cipher_suites", problems)
        for name in ciphers:
            if name not in TLS12_CIPHER_SUITES and name not in TLS13_CIPHER_SUITES:
                problems.append(f"{where}.cipher_suites: unknown cipher {name!r}")
        chosen = [TLS12_CIPHER_SUITES[name] for name in ciphers if name in TLS12_CIPHER_SUITES]
        self.cipher_list = ":".join(chosen or TLS12_CIPHER_SUITES.values())
        curves = _string_list(raw, where, "curve_preferences", problems)
        for name in curves:
            if name not in CURVES:
                problems.append(f"{where}.curve_preferences: unknown curve {name!r} (one of {', '.join(CURVES)})")
        self.curves = ":".join(CURVES[name] for name in curves if name in CURVES)
        self.prefer_server = _boolean(raw, where, "prefer_server_cipher_suites", True, problems)
        sans = _string_list(raw, where, "client_allowed_sans", problems)
        self.allowed_sans = frozenset(sans) if raw.get("client_allowed_sans") else None


def _read_pem(tls: _Tls, key: str, problems: list[str]) -> bytes | None:
    path = tls.paths.get(f"{key}_file")
    if path is None:
        return tls.inline[key].encode() if key in tls.inline else None
    try:
        return path.read_bytes()
    except OSError as exc:
        problems.append(f"{tls.where}.{key}_file: cannot read {str(path)!r}: {exc.strerror}")
        return None


def _tls_context(tls: _Tls, problems: list[str]) -> SSL.Context | None:
    """Read the certificate, key and CA and build the context; None (with problems) if they cannot be used."""
    where = tls.where
    before = len(problems)
    cert_pem, key_pem = _read_pem(tls, "cert", problems), _read_pem(tls, "key", problems)
    ca_pem = _read_pem(tls, "client_ca", problems)
    if len(problems) > before or cert_pem is None or key_pem is None:
        return None
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        problems.append(f"{where}.cert_file: no PEM certificate in it")
        return None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        problems.append(f"{where}.key_file: the key is encrypted; give an unencrypted key")
        return None
    except (ValueError, binascii.Error):
        problems.append(f"{where}.key_file: no PEM private key in it")
        return None
    cas: list[x509.Certificate] = []
    if ca_pem is not None:
        try:
            cas = x509.load_pem_x509_certificates(ca_pem)
        except ValueError:
            problems.append(f"{where}.client_ca_file: no PEM certificate in it")
            return None
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(tls.versions["min_version"])
    context.set_max_proto_version(tls.versions["max_version"])
    context.set_options(SSL.OP_NO_COMPRESSION | (SSL.OP_CIPHER_SERVER_PREFERENCE if tls.prefer_server else 0))
    cipher_list = tls.cipher_list
    if tls.versions["min_version"] < SSL.TLS1_2_VERSION:
        # OpenSSL's default security level refuses TLS 1.0 and 1.1 outright; Go serves them when asked to.
        cipher_list += ":@SECLEVEL=0"
    context.set_cipher_list(cipher_list.encode())
    # pyOpenSSL has no public call for a list of key-exchange groups; its own OpenSSL binding does.
    if tls.curves and not _openssl.SSL_CTX_set1_curves_list(context._context, tls.curves.encode()):
        problems.append(f"{where}.curve_preferences: not supported by this OpenSSL")
        return None
    try:
        context.use_certificate(chain[0])
        for extra in chain[1:]:
            context.add_extra_chain_cert(extra)
        context.use_privatekey(key)  # type: ignore[arg-type]
        context.check_privatekey()
    except (SSL.Error, TypeError, ValueError):
        problems.append(f"{where}: cert_file and key_file do not belong together (or the key type is unusable)")
        return None
    for ca in cas:
        context.get_cert_store().add_cert(crypto.X509.from_cryptography(ca))  # type: ignore[union-attr]
        context.add_client_ca(ca)
    if not cas and tls.client_auth_type in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert"):
        # Go verifies against the system's roots when no client CA is given.
        context.set_default_verify_paths()
    _set_verify(tls, context)
    # Session resumption with client certificates needs a session id context.
    context.set_session_id(_SESSION_ID)
    return context


def _set_verify(tls: _Tls, context: SSL.Context) -> None:
    auth_type = tls.client_auth_type
    if auth_type == "NoClientCert":
        context.set_verify(SSL.VERIFY_NONE)
        return
    mode = SSL.VERIFY_PEER
    if auth_type in ("RequireAnyClientCert", "RequireAndVerifyClientCert"):
        mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
    verifying = auth_type in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
    allowed = tls.allowed_sans

    def verify(_connection: SSL.Connection, certificate: Any, _error: int, depth: int, ok: int) -> bool:
        # Python's ssl module cannot do this part: accept a certificate that does not verify.
        if verifying and not ok:
            return False
        if depth == 0 and allowed is not None:
            return bool(_sans(certificate.to_cryptography()) & allowed)
        return True

    context.set_verify(mode, verify)


def _sans(certificate: x509.Certificate) -> set[str]:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    values: set[str] = set()
    for kind in (x509.DNSName, x509.RFC822Name, x509.UniformResourceIdentifier):
        values.update(names.get_values_for_type(kind))
    values.update(str(ip) for ip in names.get_values_for_type(x509.IPAddress))
    return values


def _headers(raw: object, problems: list[str]) -> tuple[tuple[str, str], ...]:
    where = "http_server_config.headers"
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping of header names to values")
        return ()
    headers = []
    for name, value in raw.items():
        if name not in HEADERS:
            problems.append(f"{where}: HTTP header {name!r} can not be configured (one of {', '.join(HEADERS)})")
        elif not isinstance(value, str) or "\r" in value or "\n" in value:
            problems.append(f"{where}.{name}: must be a single-line string")
        elif HEADERS[name] and value not in HEADERS[name]:
            problems.append(f"{where}.{name}: invalid value {value!r}, expected one of {', '.join(HEADERS[name])}")
        else:
            headers.append((name, value))
    return tuple(headers)


def _basic_auth(raw: object, problems: list[str]) -> BasicAuth | None:
    where = "basic_auth_users"
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping of user names to bcrypt hashes")
        return None
    users: dict[str, bytes] = {}
    for user, hashed in raw.items():
        if not isinstance(user, str) or not user or ":" in user:
            problems.append(f"{where}: user names must be non-empty strings without ':'")
        elif not isinstance(hashed, str) or not _BCRYPT_HASH.match(hashed):
            # The value is a secret of sorts, so the message never quotes it.
            problems.append(f"{where}.{user}: not a bcrypt hash (like $2y$10$ followed by 53 characters)")
        elif not MIN_BCRYPT_COST <= int(hashed.split("$")[2]) <= MAX_BCRYPT_COST:
            problems.append(f"{where}.{user}: bcrypt cost must be {MIN_BCRYPT_COST} to {MAX_BCRYPT_COST}")
        else:
            users[user] = hashed.encode()
    # As in the toolkit, no users means no basic auth.
    return BasicAuth(users) if users and len(users) == len(raw) else None


def _rate_limit(raw: dict[Any, Any], problems: list[str]) -> RateLimiter | None:
    where = "rate_limit"
    problems.extend(_unknown_keys(raw, where))
    burst = raw.get("burst", 0)
    if burst is None:
        burst = 0
    if not isinstance(burst, int) or isinstance(burst, bool) or not 0 <= burst <= 1_000_000:
        problems.append(f"{where}.burst: must be a whole number from 0 to 1000000")
        return None
    interval = raw.get("interval")
    if interval is None:
        return None
    try:
        seconds = parse_duration(interval)
    except ValueError as error:
        problems.append(f"{where}.interval: {error}")
        return None
    return RateLimiter(seconds, burst) if seconds > 0 else None


def _bcrypt_matches(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:
        # bcrypt refuses passwords over 72 bytes rather than truncating them; no stored password is that long.
        return False


def _credentials(header: str | None) -> tuple[str, bytes] | None:
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    try:
        return user.decode(), password
    except UnicodeDecodeError:
        return None


def _stamps(paths: tuple[Path, ...]) -> tuple[tuple[int, int, int, int] | None, ...]:
    stamps: list[tuple[int, int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            stamps.append(None)
        else:
            stamps.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(stamps)


class WebConfigSource:
    """The web config in force. Re-read when its file or the files it names change (checked at most once a
    second, as new connections come in), or on `reload()`; a config that fails to load leaves the old one serving."""

    def __init__(self, path: str | Path | None = None, config: WebConfig | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._config = config if config is not None else (load(self.path) if self.path else WebConfig())
        self._stamps = _stamps(self._config.files)
        self._checked = time.monotonic()
        self._lock = threading.Lock()
        self.successful = True

    def current(self) -> WebConfig:
        """The config for a new connection, re-read first if its files changed."""
        if self.path is not None and time.monotonic() - self._checked >= CHECK_INTERVAL_SECONDS:
            with self._lock:
                if time.monotonic() - self._checked >= CHECK_INTERVAL_SECONDS:
                    self._checked = time.monotonic()
                    if _stamps(self._config.files) != self._stamps:
                        self._reload("files changed")
        return self._config

    def reload(self) -> bool:
        """Re-read the web config now (SIGHUP, POST /-/reload); False, keeping the old one, if it fails."""
        if self.path is None:
            return True
        with self._lock:
            return self._reload("reload requested")

    def _reload(self, reason: str) -> bool:
        assert self.path is not None
        stamps = _stamps(self._config.files)
        try:
            config = load(self.path)
        except WebConfigError as error:
            # Remember what was tried, so the same broken files are not re-read on every connection.
            self._stamps = stamps
            self.successful = False
            log.error(
                "web config reload failed; keeping the previous one",
                extra={"reason": reason, "problems": error.problems},
            )
            return False
        self._config, self._stamps, self.successful = config, _stamps(config.files), True
        log.info("web config reloaded", extra={"reason": reason, "tls": config.tls is not None})
        return True


class WebConfigCollector(Collector):
    """The outcome of the latest web config reload."""

    def __init__(self, source: WebConfigSource) -> None:
        self._source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "auditmanager_exporter_web_config_last_reload_successful",
            "1 if the latest reload of the web config (on a change of its files, SIGHUP or /-/reload) succeeded.",
            value=1.0 if self._source.successful else 0.0,
        )
