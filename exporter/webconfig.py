"""The `--web.config.file` of Prometheus's exporter-toolkit: TLS (optionally mutual) and bcrypt basic auth.

`load(path)` returns a `WebConfig` or raises `WebConfigError` listing every problem, one line each.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import ssl
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from exporter.config import yaml_problem

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Python's ssl module verifies every client certificate it asks for, so these two have no equivalent.
_UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
_TLS_KEYS = ("cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version")
_UNSUPPORTED = {
    "": ("http_server_config", "rate_limit"),
    "tls_server_config": (
        "cert",
        "key",
        "client_ca",
        "client_allowed_sans",
        "cipher_suites",
        "curve_preferences",
        "prefer_server_cipher_suites",
    ),
}
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")
CACHE_SIZE = 1024
# bcrypt's own range of costs (log2 of the rounds); outside it bcrypt refuses the hash.
MIN_BCRYPT_COST, MAX_BCRYPT_COST = 4, 31


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


@dataclass(frozen=True)
class WebConfig:
    """What the HTTP server needs: a TLS context (None: plain HTTP) and the basic auth check (None: open)."""

    tls: ssl.SSLContext | None = None
    auth: BasicAuth | None = field(default=None, repr=False)


def load(path: str | Path) -> WebConfig:
    """Read and validate the web config at `path`; relative file names are relative to its directory."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise WebConfigError([f"cannot read: {exc.strerror if isinstance(exc, OSError) else exc}"]) from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise WebConfigError([yaml_problem(exc)]) from None
    if raw is None:
        return WebConfig()
    if not isinstance(raw, dict):
        raise WebConfigError(["the top level must be a mapping"])
    problems = _unknown_keys(raw, "", ("tls_server_config", "basic_auth_users"))
    tls = _tls(raw.get("tls_server_config"), path.parent, problems) if "tls_server_config" in raw else None
    auth = _basic_auth(raw.get("basic_auth_users"), problems) if "basic_auth_users" in raw else None
    if problems:
        raise WebConfigError(problems)
    return WebConfig(tls, auth)


def _unknown_keys(raw: dict[Any, Any], where: str, known: tuple[str, ...]) -> list[str]:
    problems = []
    for key in raw:
        path = f"{where}.{key}" if where else str(key)
        if key in _UNSUPPORTED.get(where, ()):
            problems.append(f"{path}: not supported by this exporter")
        elif key not in known:
            problems.append(f"{path}: unknown key")
    return problems


def _tls(raw: object, base: Path, problems: list[str]) -> ssl.SSLContext | None:
    where = "tls_server_config"
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping")
        return None
    problems.extend(_unknown_keys(raw, where, _TLS_KEYS))
    values: dict[str, str] = {}
    for key in _TLS_KEYS:
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            problems.append(f"{where}.{key}: must be a non-empty string")
        else:
            values[key] = value
    before = len(problems)
    files = {key: _file(base, values[key], f"{where}.{key}", problems) for key in _TLS_KEYS[:3] if key in values}
    for key in ("cert_file", "key_file"):
        if key not in values and key not in raw:
            problems.append(f"{where}.{key}: required")
    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", None)):
        name = values.get(key, default)
        if name is not None and name not in TLS_VERSIONS:
            problems.append(f"{where}.{key}: {name!r} is not one of {', '.join(TLS_VERSIONS)}")
        elif name is not None:
            versions[key] = TLS_VERSIONS[name]
    if len(versions) == 2 and versions["min_version"] > versions["max_version"]:
        problems.append(f"{where}: min_version is above max_version")
    auth_type = values.get("client_auth_type", "NoClientCert")
    if auth_type in _UNVERIFIED_CLIENT_AUTH:
        problems.append(
            f"{where}.client_auth_type: {auth_type} is not supported (Python verifies every client certificate it "
            "asks for); use VerifyClientCertIfGiven or RequireAndVerifyClientCert"
        )
    elif auth_type not in CLIENT_AUTH_TYPES:
        problems.append(f"{where}.client_auth_type: {auth_type!r} is not one of {', '.join(CLIENT_AUTH_TYPES)}")
    elif auth_type == "NoClientCert" and "client_ca_file" in values:
        problems.append(f"{where}.client_ca_file: set, but client_auth_type does not ask for client certificates")
    elif auth_type != "NoClientCert" and "client_ca_file" not in values and "client_ca_file" not in raw:
        problems.append(f"{where}.client_ca_file: required with client_auth_type {auth_type}")
    if len(problems) > before:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = versions["min_version"]
    if "max_version" in versions:
        context.maximum_version = versions["max_version"]
    try:
        context.load_cert_chain(files["cert_file"], files["key_file"], password=_no_password)
    except (ssl.SSLError, OSError, ValueError) as exc:
        problems.append(f"{where}: cannot use cert_file and key_file: {_ssl_reason(exc)}")
        return None
    context.verify_mode = CLIENT_AUTH_TYPES[auth_type]
    if "client_ca_file" in files:
        try:
            context.load_verify_locations(cafile=files["client_ca_file"])
        except (ssl.SSLError, OSError) as exc:
            problems.append(f"{where}.client_ca_file: cannot use it: {_ssl_reason(exc)}")
            return None
    return context


def _file(base: Path, name: str, where: str, problems: list[str]) -> str:
    path = base / name
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        problems.append(f"{where}: cannot read {str(path)!r}: {exc.strerror}")
    return str(path)


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key's passphrase.
    raise ValueError("key_file is encrypted; give an unencrypted key")


def _ssl_reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _basic_auth(raw: object, problems: list[str]) -> BasicAuth | None:
    where = "basic_auth_users"
    if not isinstance(raw, dict) or not raw:
        problems.append(f"{where}: must be a non-empty mapping of user names to bcrypt hashes")
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
    return BasicAuth(users) if len(users) == len(raw) else None


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
