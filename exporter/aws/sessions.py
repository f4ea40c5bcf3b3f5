"""Sessions and clients shared between targets (issue 23): one boto3 session per credential source, and botocore
clients lent out one holder at a time and kept for the next, so that building them is paid once, and counted."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.config
from prometheus_client.core import CounterMetricFamily, Metric

from exporter import __version__
from exporter.answers import AnswerRules, check_answers
from exporter.aws.session import default_session
from exporter.config import Config, Target


@dataclass(frozen=True)
class CredentialSource:
    """Where a target's credentials come from: targets that agree on all of it share one session."""

    profile: str | None
    role_arn: str | None
    external_id: str | None
    session_name: str

    @classmethod
    def of(cls, target: Target) -> CredentialSource:
        return cls(target.profile, target.role_arn, target.external_id, target.session_name)


@dataclass(frozen=True)
class ClientSettings:
    """The botocore client settings a target's limits and the config give."""

    connect_timeout: float
    read_timeout: float
    max_attempts: int
    max_pool_connections: int

    @classmethod
    def of(cls, target: Target, config: Config) -> ClientSettings:
        return cls(config.connect_timeout, config.read_timeout, config.max_attempts, target.max_concurrency)

    def botocore_config(self) -> botocore.config.Config:
        return botocore.config.Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
            max_pool_connections=self.max_pool_connections,
            user_agent_extra=f"auditmanager-exporter/{__version__}",
        )


@dataclass(frozen=True)
class _ClientKey:
    source: CredentialSource
    service: str
    region: str
    endpoint_url: str | None
    settings: ClientSettings
    answers: AnswerRules


class ClientLease:
    """A client lent to one holder: the handlers it registers through `register` leave with it, so the next holder
    of the same client finds none of them."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._handlers: list[tuple[str, Callable[..., Any]]] = []

    def register(self, event_name: str, handler: Callable[..., Any]) -> None:
        """Register `handler` on the client's events for as long as the lease lasts."""
        self.client.meta.events.register(event_name, handler)
        self._handlers.append((event_name, handler))

    def _end(self) -> None:
        for event_name, handler in self._handlers:
            self.client.meta.events.unregister(event_name, handler)
        self._handlers.clear()


class _Source:
    """One credential source's session, built on first use; its lock also serialises the clients built from it, as
    a boto3 session is not safe to build clients from in several threads at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.session: boto3.Session | None = None


class SessionCache:
    """One boto3 session per credential source, shared by every target and service; botocore clients lent out per
    (credential source, service, region, endpoint, settings), each to one holder at a time, and kept when returned.

    A role is assumed through STS in the region of the first target that asks for its session. Clients are built by
    `lease`, never before; `builds()` counts them and the seconds they took, by service.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sources: dict[CredentialSource, _Source] = {}
        self._idle: dict[_ClientKey, list[Any]] = {}
        self._builds: dict[str, tuple[int, float]] = {}

    def session(self, target: Target) -> boto3.Session:
        """The session of the target's credential source (the standard chain, a profile, or an assumed role)."""
        source = self._source(CredentialSource.of(target))
        with source.lock:
            return self._session_of(source, target)

    @contextlib.contextmanager
    def lease(
        self, target: Target, service: str, settings: ClientSettings, answers: AnswerRules
    ) -> Iterator[ClientLease]:
        """A client of `service` for the target's region and endpoint, whose answers are checked against `answers`:
        an idle one if there is one, else a new one. It is the holder's alone until the block ends."""
        key = _ClientKey(CredentialSource.of(target), service, target.region, target.endpoint_url, settings, answers)
        with self._lock:
            idle = self._idle.get(key)
            client = idle.pop() if idle else None
        if client is None:
            client = self._build(key, target)
        lease = ClientLease(client)
        try:
            yield lease
        finally:
            lease._end()
            with self._lock:
                self._idle.setdefault(key, []).append(client)

    def close_idle(self) -> None:
        """Close and forget every client not lent out (their connections and memory); sessions, and with them
        credentials still valid, are kept."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for clients in idle.values():
            for client in clients:
                client.close()

    def builds(self) -> dict[str, tuple[int, float]]:
        """Clients built so far and the seconds building them took, by service."""
        with self._lock:
            return dict(self._builds)

    def _source(self, key: CredentialSource) -> _Source:
        with self._lock:
            return self._sources.setdefault(key, _Source())

    @staticmethod
    def _session_of(source: _Source, target: Target) -> boto3.Session:
        if source.session is None:
            source.session = default_session(target)
        return source.session

    def _build(self, key: _ClientKey, target: Target) -> Any:
        source = self._source(key.source)
        with source.lock:
            started = self._clock()
            client = self._session_of(source, target).client(
                key.service,
                region_name=key.region,
                endpoint_url=key.endpoint_url,
                config=key.settings.botocore_config(),
            )
            check_answers(client, key.answers)
            seconds = self._clock() - started
        with self._lock:
            count, total = self._builds.get(key.service, (0, 0.0))
            self._builds[key.service] = (count + 1, total + seconds)
        return client


def build_families(cache: SessionCache) -> Iterator[Metric]:
    """The cache's counts as the exporter's own counters: clients built, and the seconds building them took."""
    builds = CounterMetricFamily(
        "auditmanager_exporter_aws_client_builds",
        "botocore clients the exporter built, by AWS service.",
        labels=["service"],
    )
    seconds = CounterMetricFamily(
        "auditmanager_exporter_aws_client_build_seconds",
        "Seconds spent building botocore clients, by AWS service.",
        labels=["service"],
    )
    for service, (count, total) in sorted(cache.builds().items()):
        builds.add_metric([service], count)
        seconds.add_metric([service], total)
    yield from (builds, seconds)
