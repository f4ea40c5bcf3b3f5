"""Sessions and clients shared between targets (issue 23): one boto3 session per credential source, kept with its
credentials for the life of the process, and botocore clients built for one holder's work and closed when it gives
them back, so that an idle target holds none; every build counted."""

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
from exporter.aws.session import SessionFactory, default_session
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
    """A client lent to one holder, who registers its own handlers on it (`register`)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def register(self, event_name: str, handler: Callable[..., Any]) -> None:
        """Register `handler` on the client's events for as long as the lease lasts."""
        self.client.meta.events.register(event_name, handler)


class _Source:
    """One credential source's session, built on first use; its lock also serialises the clients built from it, as
    a boto3 session is not safe to build clients from in several threads at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.session: boto3.Session | None = None


class SessionCache:
    """One boto3 session per credential source (from `session_factory`, the standard chain by default), shared by
    every target and service and kept, with its credentials, until the process ends; botocore clients built per
    (credential source, service, region, endpoint, settings) for one holder and closed when the holder gives them
    back.

    A client costs about 230 KiB and a few milliseconds to build; a cycle serves its targets about one after the
    other, so a client given back is closed rather than kept idle, and a thousand targets hold a handful of clients
    at once instead of a thousand. A role is assumed through STS in the region of the first target that asks for its
    session. `builds()` counts the clients built and the seconds they took, by service.
    """

    def __init__(
        self, session_factory: SessionFactory = default_session, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._session_factory = session_factory
        self._clock = clock
        self._lock = threading.Lock()
        self._sources: dict[CredentialSource, _Source] = {}
        self._builds: dict[str, tuple[int, float]] = {}

    def session(self, target: Target) -> boto3.Session:
        """The session of the target's credential source (the standard chain, a profile, or an assumed role)."""
        source = self._source(CredentialSource.of(target))
        with source.lock:
            return self._session_of(source, target)

    def __call__(self, target: Target) -> boto3.Session:
        """The cache as a SessionFactory: the session of the target's credential source. A client given the cache as
        its session factory also borrows its botocore clients from it (`ServiceClient`)."""
        return self.session(target)

    @contextlib.contextmanager
    def lease(
        self, target: Target, service: str, settings: ClientSettings, answers: AnswerRules
    ) -> Iterator[ClientLease]:
        """A new client of `service` for the target's region and endpoint, whose answers are checked against
        `answers`, from the session of its credential source; it is the holder's alone, and closed when the block
        ends."""
        key = _ClientKey(CredentialSource.of(target), service, target.region, target.endpoint_url, settings, answers)
        client = self._build(key, target)
        try:
            yield ClientLease(client)
        finally:
            client.close()

    def builds(self) -> dict[str, tuple[int, float]]:
        """Clients built so far and the seconds building them took, by service."""
        with self._lock:
            return dict(self._builds)

    def collect(self) -> Iterator[Metric]:
        """The builds as the exporter's own counters (a prometheus_client collector; see `build_families`)."""
        return build_families(self)

    def _source(self, key: CredentialSource) -> _Source:
        with self._lock:
            return self._sources.setdefault(key, _Source())

    def _session_of(self, source: _Source, target: Target) -> boto3.Session:
        if source.session is None:
            source.session = self._session_factory(target)
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
