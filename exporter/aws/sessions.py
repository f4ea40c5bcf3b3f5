"""Sessions and clients shared between targets (issue 23): one boto3 session per credential source, kept with its
credentials (and, once learned, its account) for the life of the process, and one botocore client per service,
Region, endpoint and settings, shared by every target that calls it, whatever its credentials: each call is signed
with its own target's credentials and paced by its own target's limits (`Caller`). Every client build is counted."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.config
import botocore.credentials
import botocore.exceptions
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
    """The botocore client settings the config gives: the same for every target, so that targets share clients.
    A client's connection pool holds `max_workers` connections, as many as the exporter has calls in flight."""

    connect_timeout: float
    read_timeout: float
    max_attempts: int
    max_pool_connections: int

    @classmethod
    def of(cls, config: Config) -> ClientSettings:
        return cls(config.connect_timeout, config.read_timeout, config.max_attempts, config.max_workers)

    def botocore_config(self) -> botocore.config.Config:
        return botocore.config.Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
            max_pool_connections=self.max_pool_connections,
            user_agent_extra=f"auditmanager-exporter/{__version__}",
        )


@dataclass(frozen=True)
class Caller:
    """The target whose call is in progress on a shared client: `credentials()` signs each of its requests and
    `before_send` runs before each attempt goes out (its rate limit and counts)."""

    credentials: Callable[[], botocore.credentials.Credentials]
    before_send: Callable[..., None]


# The caller of the call in progress in this thread; botocore runs a call, its retries included, in the thread
# that made it.
_CALLER: ContextVar[Caller | None] = ContextVar("exporter_aws_caller", default=None)


@contextlib.contextmanager
def calling_as(caller: Caller) -> Iterator[None]:
    """Make the calls of this thread, for the duration, `caller`'s: signed with its credentials, paced by it."""
    token = _CALLER.set(caller)
    try:
        yield
    finally:
        _CALLER.reset(token)


def _caller() -> Caller:
    caller = _CALLER.get()
    if caller is None:
        # Never sign with whichever target's credentials the shared client was built with.
        raise RuntimeError("a shared AWS client was called outside calling_as(): whose credentials to sign with?")
    return caller


def _sign_as_caller(context: dict[str, Any], **_: Any) -> None:
    context.setdefault("signing", {})["request_credentials"] = _caller().credentials()


def _before_send(**kwargs: Any) -> None:
    _caller().before_send(**kwargs)


@dataclass(frozen=True)
class _ClientKey:
    service: str
    region: str
    endpoint_url: str | None
    settings: ClientSettings
    answers: AnswerRules


class SharedClient:
    """The one botocore client of a `_ClientKey`, built by the first target that holds it, kept for the life of the
    process, and holding connections only while some target holds it: the last to let go closes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: Any = None
        self._holders = 0

    def hold(self, build: Callable[[], Any]) -> Any:
        """The client, built with `build` if it is not yet, held until `release`."""
        with self._lock:
            if self._client is None:
                self._client = build()
            self._holders += 1
            return self._client

    def release(self) -> None:
        """Let go of the client; the last holder to let go closes its connections (it opens new ones when next
        held)."""
        with self._lock:
            self._holders -= 1
            if not self._holders:
                self._client.close()


class _Source:
    """One credential source's session, built on first use; its lock also serialises the clients built from it, as
    a boto3 session is not safe to build clients from in several threads at once. Its account, once a target of it
    learned it, and a lock of its own so that one target learns it while the others wait."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.session: boto3.Session | None = None
        self.account_lock = threading.Lock()
        self.account: str | None = None


class SessionCache:
    """One boto3 session per credential source (from `session_factory`, the standard chain by default), shared by
    every target and service and kept, with its credentials, until the process ends; one botocore client per
    service, Region, endpoint and settings, shared by every target that calls it and kept as long.

    A client costs about 200 KiB and a few milliseconds of CPU to build, as much as a few calls: an organisation of
    100 accounts in 10 Regions builds 10 clients per service, once, not 1,000 each cycle. A shared client is built
    from the session of the first target that needs it, but signs every call with the caller's credentials
    (`calling_as`), never its own. A role is assumed through STS in the Region of the first target that asks for its
    session. `builds()` counts the clients built and the seconds they took, by service.
    """

    def __init__(
        self, session_factory: SessionFactory = default_session, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._session_factory = session_factory
        self._clock = clock
        self._lock = threading.Lock()
        self._sources: dict[CredentialSource, _Source] = {}
        self._clients: dict[_ClientKey, SharedClient] = {}
        self._builds: dict[str, tuple[int, float]] = {}

    def session(self, target: Target) -> boto3.Session:
        """The session of the target's credential source (the standard chain, a profile, or an assumed role)."""
        source = self._source(CredentialSource.of(target))
        with source.lock:
            return self._session_of(source, target)

    def __call__(self, target: Target) -> boto3.Session:
        """The cache as a SessionFactory: the session of the target's credential source. A client given the cache as
        its session factory also shares its botocore clients (`ServiceClient`)."""
        return self.session(target)

    def credentials(self, target: Target) -> botocore.credentials.Credentials:
        """The credentials of the target's credential source, which refresh themselves (an assumed role's, an
        instance role's); NoCredentialsError if its chain finds none."""
        source = self._source(CredentialSource.of(target))
        with source.lock:
            credentials = self._session_of(source, target).get_credentials()
        if credentials is None:
            raise botocore.exceptions.NoCredentialsError()
        return credentials

    def account(self, target: Target, learn: Callable[[], str]) -> str:
        """The account of the target's credential source: credentials belong to one account, whatever the Region,
        so the first of its targets to ask learns it (`learn`, one call to AWS) while the others wait, and every
        later one is told. A `learn` that fails raises to its caller and leaves the learning to the next."""
        source = self._source(CredentialSource.of(target))
        with source.account_lock:
            if source.account is None:
                source.account = learn()
            return source.account

    def client(self, target: Target, service: str, settings: ClientSettings, answers: AnswerRules) -> SharedClient:
        """The shared client of `service` for the target's Region and endpoint, whose answers are checked against
        `answers`; it is built when first held."""
        key = _ClientKey(service, target.region, target.endpoint_url, settings, answers)
        with self._lock:
            return self._clients.setdefault(key, SharedClient())

    def build(self, target: Target, service: str, settings: ClientSettings, answers: AnswerRules) -> Any:
        """A new client of `service` for the target's Region and endpoint, from the session of its credential
        source, its answers checked against `answers` and its calls signed and paced by their caller; counted."""
        source = self._source(CredentialSource.of(target))
        with source.lock:
            started = self._clock()
            client = self._session_of(source, target).client(
                service, region_name=target.region, endpoint_url=target.endpoint_url, config=settings.botocore_config()
            )
            check_answers(client, answers)
            client.meta.events.register(f"before-parameter-build.{service}", _sign_as_caller)
            client.meta.events.register(f"before-send.{service}", _before_send)
            seconds = self._clock() - started
        with self._lock:
            count, total = self._builds.get(service, (0, 0.0))
            self._builds[service] = (count + 1, total + seconds)
        return client

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
