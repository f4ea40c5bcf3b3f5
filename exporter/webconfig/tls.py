"""The web config's `tls_server_config`: its settings checked with the toolkit's meaning, and the OpenSSL context
built from them and the certificate, key and client CA they name."""

from __future__ import annotations

import binascii
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from OpenSSL._util import lib as _openssl

from exporter.webconfig.fields import boolean, string_list, unknown_keys

TLS_VERSIONS = {
    "TLS10": SSL.TLS1_VERSION,
    "TLS11": SSL.TLS1_1_VERSION,
    "TLS12": SSL.TLS1_2_VERSION,
    "TLS13": SSL.TLS1_3_VERSION,
}
# Go's crypto/tls names of the TLS 1.2 suites that tls.CipherSuites() lists (the ones the toolkit accepts), and
# OpenSSL's names for them. Go does not let TLS 1.3 suites be configured: the toolkit accepts their names and TLS 1.3
# keeps all three, as here.
TLS12_CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
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
# Without cipher_suites, the TLS 1.2 suites of Mozilla's "intermediate" profile, all ECDHE with AEAD. The ECDHE
# CBC-SHA suites only when cipher_suites names them or min_version admits TLS 1.0 or 1.1, which have no others;
# RSA key exchange (no forward secrecy) only when cipher_suites names it.
DEFAULT_TLS12_CIPHER_SUITES = tuple(n for n in TLS12_CIPHER_SUITES if n.startswith("TLS_ECDHE_") and "_CBC_" not in n)
OLD_TLS_CIPHER_SUITES = tuple(n for n in TLS12_CIPHER_SUITES if n.startswith("TLS_ECDHE_") and "_CBC_" in n)
CURVES = {"CurveP256": "P-256", "CurveP384": "P-384", "CurveP521": "P-521", "X25519": "X25519"}
# Without curve_preferences, the key-exchange groups of Mozilla's "intermediate" profile. P-521 only when
# curve_preferences names it; OpenSSL's other defaults (X448, the finite-field groups), which the toolkit cannot name,
# never.
DEFAULT_CURVES = ("X25519", "CurveP256", "CurveP384")
CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
# The toolkit still accepts the old name of RequireAnyClientCert.
_CLIENT_AUTH_ALIASES = {"": "NoClientCert", "RequireClientCert": "RequireAnyClientCert"}
TLS_KEYS = (
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
)
# The keys whose presence turns TLS on, as the toolkit's TLSConfig.IsEnabled.
_TLS_ENABLING = ("cert", "key", "client_ca", "cert_file", "key_file", "client_ca_file", "client_auth_type")
_FILE_KEYS = ("cert_file", "key_file", "client_ca_file")
_SESSION_ID = b"auditmanager-exporter"


class TlsSettings:
    """The checked `tls_server_config`; `tls_context` reads the files it names and builds the OpenSSL context."""

    where = "tls_server_config"

    def __init__(self, raw: dict[Any, Any], base: Path, problems: list[str]) -> None:
        where = self.where
        before = len(problems)
        problems.extend(unknown_keys(raw, where, TLS_KEYS))
        strings: dict[str, str] = {}
        for key in (*_TLS_ENABLING, "min_version", "max_version"):
            value = raw.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                problems.append(f"{where}.{key}: must be a string")
            elif not value and key in _FILE_KEYS:
                # The toolkit would quietly serve plain HTTP here; an empty file name is a mistake, so say so.
                problems.append(f"{where}.{key}: must not be empty")
            elif value:
                strings[key] = value
        self.enabled = any(key in strings for key in _TLS_ENABLING) or any(raw.get(key) == "" for key in _FILE_KEYS)
        self.paths: dict[str, Path] = {key: base / strings[key] for key in _FILE_KEYS if key in strings}
        self.inline = {key: strings[key] for key in ("cert", "key", "client_ca") if key in strings}
        if self.enabled:
            for key in ("cert", "key"):
                if raw.get(f"{key}_file") is None and key not in strings:
                    problems.append(f"{where}: missing one of {key} or {key}_file")
        self.client_auth_type = self._client_auth_type(strings, problems)
        self.versions = {}
        for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
            name = strings.get(key, default)
            if name not in TLS_VERSIONS:
                problems.append(f"{where}.{key}: {name!r} is not one of {', '.join(TLS_VERSIONS)}")
            else:
                self.versions[key] = TLS_VERSIONS[name]
        if len(self.versions) == 2 and self.versions["min_version"] > self.versions["max_version"]:
            problems.append(f"{where}: min_version is above max_version")
        self.cipher_list = self._cipher_list(raw, problems)
        curves = string_list(raw, where, "curve_preferences", problems)
        for name in curves:
            if name not in CURVES:
                problems.append(f"{where}.curve_preferences: unknown curve {name!r} (one of {', '.join(CURVES)})")
        self.curves = ":".join(CURVES[name] for name in (curves or DEFAULT_CURVES) if name in CURVES)
        self.prefer_server = boolean(raw, where, "prefer_server_cipher_suites", True, problems)
        sans = string_list(raw, where, "client_allowed_sans", problems)
        self.allowed_sans = frozenset(sans) if raw.get("client_allowed_sans") else None
        # Whether the settings themselves can make a context; the files are checked either way.
        self.sound = len(problems) == before

    def _client_auth_type(self, strings: dict[str, str], problems: list[str]) -> str:
        where = self.where
        auth_type = strings.get("client_auth_type", "")
        auth_type = _CLIENT_AUTH_ALIASES.get(auth_type, auth_type)
        if auth_type not in CLIENT_AUTH_TYPES:
            problems.append(f"{where}.client_auth_type: {auth_type!r} is not one of {', '.join(CLIENT_AUTH_TYPES)}")
        elif auth_type == "NoClientCert" and ("client_ca_file" in strings or "client_ca" in strings):
            problems.append(f"{where}.client_ca_file: set, but client_auth_type does not ask for client certificates")
        return auth_type

    def _cipher_list(self, raw: dict[Any, Any], problems: list[str]) -> str:
        """OpenSSL's cipher list for TLS 1.2 and below: the suites asked for, or the defaults."""
        ciphers = string_list(raw, self.where, "cipher_suites", problems)
        for name in ciphers:
            if name not in TLS12_CIPHER_SUITES and name not in TLS13_CIPHER_SUITES:
                problems.append(f"{self.where}.cipher_suites: unknown cipher {name!r}")
        chosen = [name for name in ciphers if name in TLS12_CIPHER_SUITES]
        if not chosen:
            chosen = list(DEFAULT_TLS12_CIPHER_SUITES)
            if self.versions.get("min_version", SSL.TLS1_2_VERSION) < SSL.TLS1_2_VERSION:
                chosen += OLD_TLS_CIPHER_SUITES
        return ":".join(TLS12_CIPHER_SUITES[name] for name in chosen)


def tls_context(tls: TlsSettings, problems: list[str]) -> SSL.Context | None:
    """Read and check the certificate, key and CA, and build the context; None (with problems) if any of them, or the
    settings, cannot be used. The files are checked even when the settings have problems, so all are told at once."""
    where = tls.where
    before = len(problems)
    cert_pem, key_pem = _read_pem(tls, "cert", problems), _read_pem(tls, "key", problems)
    ca_pem = _read_pem(tls, "client_ca", problems)
    chain = _certificates(cert_pem, f"{where}.cert_file", problems) if cert_pem is not None else []
    key = _private_key(key_pem, problems) if key_pem is not None else None
    cas = _certificates(ca_pem, f"{where}.client_ca_file", problems) if ca_pem is not None else []
    if len(problems) > before or not chain or key is None:
        return None
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    try:
        context.use_certificate(chain[0])
        for extra in chain[1:]:
            context.add_extra_chain_cert(extra)
        context.use_privatekey(key)  # type: ignore[arg-type]
        context.check_privatekey()
    except (SSL.Error, TypeError, ValueError):
        problems.append(f"{where}: cert_file and key_file do not belong together (or the key type is unusable)")
        return None
    if not tls.sound or not _configure(tls, context, problems):
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


def _configure(tls: TlsSettings, context: SSL.Context, problems: list[str]) -> bool:
    """Versions, cipher suites and key-exchange groups; False (with a problem) if this OpenSSL cannot do them."""
    context.set_min_proto_version(tls.versions["min_version"])
    context.set_max_proto_version(tls.versions["max_version"])
    context.set_options(SSL.OP_NO_COMPRESSION | (SSL.OP_CIPHER_SERVER_PREFERENCE if tls.prefer_server else 0))
    cipher_list = tls.cipher_list
    if tls.versions["min_version"] < SSL.TLS1_2_VERSION:
        # OpenSSL's default security level refuses TLS 1.0 and 1.1 outright; Go serves them when asked to.
        cipher_list += ":@SECLEVEL=0"
    context.set_cipher_list(cipher_list.encode())
    # pyOpenSSL has no public call for a list of key-exchange groups; its own OpenSSL binding does.
    if not _openssl.SSL_CTX_set1_curves_list(context._context, tls.curves.encode()):
        problems.append(f"{tls.where}.curve_preferences: not supported by this OpenSSL")
        return False
    return True


def _read_pem(tls: TlsSettings, key: str, problems: list[str]) -> bytes | None:
    path = tls.paths.get(f"{key}_file")
    if path is None:
        return tls.inline[key].encode() if key in tls.inline else None
    try:
        return path.read_bytes()
    except OSError as exc:
        problems.append(f"{tls.where}.{key}_file: cannot read {str(path)!r}: {exc.strerror}")
    except ValueError:
        problems.append(f"{tls.where}.{key}_file: cannot read {str(path)!r}: not a file name")
    return None


def _certificates(pem: bytes, where: str, problems: list[str]) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        problems.append(f"{where}: no PEM certificate in it")
        return []


def _private_key(pem: bytes, problems: list[str]) -> Any:
    where = f"{TlsSettings.where}.key_file"
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        problems.append(f"{where}: the key is encrypted; give an unencrypted key")
    except (ValueError, binascii.Error):
        problems.append(f"{where}: no PEM private key in it")
    return None


def _set_verify(tls: TlsSettings, context: SSL.Context) -> None:
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
