"""`--healthcheck`: probe this instance's /healthz through its own web config (TLS, client certificate, basic auth).

The web config holds only password hashes, so basic auth credentials come from the environment
(AUDITMANAGER_EXPORTER_HEALTHCHECK_USERNAME and _PASSWORD). The client certificate is the one named by
AUDITMANAGER_EXPORTER_HEALTHCHECK_CERT_FILE and _KEY_FILE, or else, when the web config asks for client
certificates, the server's own certificate and key.
"""

from __future__ import annotations

import base64
import http.client
import ssl
from collections.abc import Mapping
from pathlib import Path

from exporter.server import parse_listen_address
from exporter.webconfig import WebConfig, load

ENV_PREFIX = "AUDITMANAGER_EXPORTER_HEALTHCHECK_"
TIMEOUT_SECONDS = 5.0
_ANY_HOST = ("", "0.0.0.0", "::")


def probe(listen_address: str, web_config_file: str | None, environ: Mapping[str, str]) -> str | None:
    """None if the instance at `listen_address` answers /healthz with 200, else what went wrong, in one line."""
    host, port = parse_listen_address(listen_address)
    if host in _ANY_HOST:
        host = "127.0.0.1" if host != "::" else "::1"
    web = load(web_config_file) if web_config_file else WebConfig()
    headers = {}
    user, password = environ.get(ENV_PREFIX + "USERNAME"), environ.get(ENV_PREFIX + "PASSWORD", "")
    if user:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    connection: http.client.HTTPConnection
    if web.tls is None:
        connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_SECONDS)
    else:
        context = _client_context(web, environ)
        connection = http.client.HTTPSConnection(host, port, timeout=TIMEOUT_SECONDS, context=context)
    try:
        connection.request("GET", "/healthz", headers=headers)
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as error:
        return f"cannot reach {listen_address}: {error}"
    finally:
        connection.close()
    return None if status == 200 else f"/healthz answered {status}"


def _client_context(web: WebConfig, environ: Mapping[str, str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The probe talks to this very process over loopback: which certificate it serves is not in question, and the
    # web config names no CA for it.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    cert, key = environ.get(ENV_PREFIX + "CERT_FILE"), environ.get(ENV_PREFIX + "KEY_FILE")
    if cert:
        context.load_cert_chain(cert, key or None)
    elif web.client_auth_type != "NoClientCert" and web.cert_file and web.key_file:
        context.load_cert_chain(Path(web.cert_file), Path(web.key_file))
    return context
