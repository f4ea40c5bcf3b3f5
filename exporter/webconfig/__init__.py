"""The `--web.config.file` of Prometheus's exporter-toolkit, every key with the toolkit's meaning.

`load(path)` reads a web config and the files it names and returns a `WebConfig`, or raises `WebConfigError` with
one line per problem. `WebConfigSource` holds the one in force and re-reads it when any of those files change.
The parts: `schema` (reading and checking the file), `tls` (the OpenSSL context), `auth` (basic auth and the
request rate limit) and `source` (reloading, and its metric).
"""

from exporter.webconfig.auth import BasicAuth, RequestBucket
from exporter.webconfig.schema import WebConfig, WebConfigError, load
from exporter.webconfig.source import WebConfigCollector, WebConfigSource

__all__ = [
    "BasicAuth",
    "RequestBucket",
    "WebConfig",
    "WebConfigCollector",
    "WebConfigError",
    "WebConfigSource",
    "load",
]
