"""The web config in force: re-read when its files change, on SIGHUP or on `/-/reload`, keeping the previous one
when the new one fails, and the metric that tells how the latest reload went."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from exporter.webconfig.schema import WebConfig, WebConfigError, load

# The name it had before the package was split, so log lines keep their `logger=`.
log = logging.getLogger("exporter.webconfig")

# How often the files of the web config are looked at for changes (a stat each, on new connections only).
CHECK_INTERVAL_SECONDS = 1.0


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
            # Logged before the gauge changes, so whoever sees the gauge finds the reason in the log.
            log.error(
                "web config reload failed; keeping the previous one",
                extra={"reason": reason, "problems": error.problems},
            )
            # Remember what was tried, so the same broken files are not re-read on every connection.
            self._stamps = stamps
            self.successful = False
            return False
        self._config, self._stamps = config, _stamps(config.files)
        log.info("web config reloaded", extra={"reason": reason, "tls": config.tls is not None})
        self.successful = True
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
