"""Reading the `--web.config.file` of Prometheus's exporter-toolkit: every key checked with the toolkit's meaning,
and every problem of a file reported at once, one line each."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from OpenSSL import SSL

from exporter.config import yaml_problem
from exporter.webconfig.auth import BasicAuth, RequestBucket, basic_auth, request_bucket
from exporter.webconfig.fields import boolean, section, unknown_keys
from exporter.webconfig.tls import TlsSettings, tls_context

# The response headers the toolkit lets a web config set, and the values it allows where they are an enumeration.
HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}
TOP_LEVEL_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")
HTTP_KEYS = ("http2", "headers")


class WebConfigError(Exception):
    """The web config could not be loaded; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, kw_only=True)
class WebConfig:
    """What the HTTP server needs: a TLS context (None: plain HTTP), basic auth and rate limit (None: off), and
    the response headers to add."""

    tls: SSL.Context | None = field(default=None, repr=False)
    auth: BasicAuth | None = field(default=None, repr=False)
    headers: tuple[tuple[str, str], ...] = ()
    http2: bool = True
    rate_limit: RequestBucket | None = field(default=None, repr=False)
    client_auth_type: str = "NoClientCert"
    # The TLS files (cert, key, CA) this config was built from, for the health check and rotation.
    cert_file: Path | None = None
    key_file: Path | None = None
    files: tuple[Path, ...] = ()


def load(path: str | Path) -> WebConfig:
    """Read and validate the web config at `path` and the files it names; relative names are relative to its
    directory. Raises `WebConfigError` listing every problem found."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise WebConfigError([f"cannot read: {exc.strerror if isinstance(exc, OSError) else exc}"]) from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise WebConfigError([yaml_problem(exc)]) from None
    if raw is None:
        return WebConfig(files=(path,))
    if not isinstance(raw, dict):
        raise WebConfigError(["the top level must be a mapping"])
    problems = list(unknown_keys(raw, "", TOP_LEVEL_KEYS))
    tls = TlsSettings(section(raw, "tls_server_config", problems), path.parent, problems)
    http = section(raw, "http_server_config", problems)
    problems.extend(unknown_keys(http, "http_server_config", HTTP_KEYS))
    http2 = boolean(http, "http_server_config", "http2", True, problems)
    headers = _headers(http.get("headers"), text, problems)
    auth = basic_auth(raw.get("basic_auth_users"), problems)
    bucket = request_bucket(section(raw, "rate_limit", problems), problems)
    context = tls_context(tls, problems) if tls.enabled else None
    if problems:
        raise WebConfigError(problems)
    return WebConfig(
        tls=context,
        auth=auth,
        headers=headers,
        http2=http2,
        rate_limit=bucket,
        client_auth_type=tls.client_auth_type,
        cert_file=tls.paths.get("cert_file"),
        key_file=tls.paths.get("key_file"),
        files=(path, *tls.paths.values()),
    )


def _headers(raw: object, text: str, problems: list[str]) -> tuple[tuple[str, str], ...]:
    where = "http_server_config.headers"
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping of header names to values")
        return ()
    # The toolkit reads headers into a map[string]string: a value YAML reads as a number or a boolean is the text
    # written (`X-XSS-Protection: 1` is "1").
    written = _written_headers(text) if any(isinstance(v, (bool, int, float)) for v in raw.values()) else {}
    headers = []
    for name, read in raw.items():
        value = written.get(name, str(read)) if isinstance(read, (bool, int, float)) else read
        if name not in HEADERS:
            problems.append(f"{where}: HTTP header {name!r} can not be configured (one of {', '.join(HEADERS)})")
        elif not isinstance(value, str) or "\r" in value or "\n" in value:
            problems.append(f"{where}.{name}: must be a single-line string")
        elif HEADERS[name] and value not in HEADERS[name]:
            problems.append(f"{where}.{name}: invalid value {value!r}, expected one of {', '.join(HEADERS[name])}")
        else:
            headers.append((name, value))
    return tuple(headers)


def _written_headers(text: str) -> dict[str, str]:
    """The scalar values under http_server_config.headers as written in the file, before YAML typed them."""
    node: yaml.Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
    for key in ("http_server_config", "headers"):
        if not isinstance(node, yaml.MappingNode):
            return {}
        node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {
        k.value: v.value for k, v in node.value if isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode)
    }
