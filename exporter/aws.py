"""The Audit Manager client of one target: rate-limited, counted, and turning AWS answers and errors into plain data;
and what it shares with the other services' clients (`ServiceClient`).

Every HTTP attempt (retries included) passes the target's rate limiter and is counted; every answer is checked
against the service model before botocore parses it (exporter.answers); every failed call ends as an `AwsError`
whose `code` is the AWS error code or a transport class, never as a raw botocore exception.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

import boto3
import botocore.config
import botocore.credentials
import botocore.exceptions
import botocore.parsers
import botocore.session

from exporter import __version__
from exporter.answers import AnswerRules, MalformedAnswer, check_answers
from exporter.config import Config, Target
from exporter.snapshot import AccountInsights, ApiCounters, ControlDomainInsights, Insights

MALFORMED = "MalformedResponse"
# Audit Manager became generally available on 8 December 2020: no timestamp in its answers is older.
AUDIT_MANAGER_ANSWERS = AnswerRules(launched=datetime(2020, 12, 8, tzinfo=UTC))
PAGE_SIZE = 1000
# The share of a target's request rate that the framework look-ups (GetAssessment between cycles) may use on top of
# waiting for the target's own limiter: a cycle running alongside them loses at most this much of its budget.
BACKGROUND_SHARE = 0.1
# A GetAssessment answer carries the assessment's whole framework: about 800 KB of JSON for 1,000 controls, several
# MB once parsed. At most this many are read at once in the whole process, whatever the targets and their
# concurrency, so that they bound peak memory.
ASSESSMENT_ANSWERS_AT_ONCE = 2
_ASSESSMENT_ANSWERS = threading.BoundedSemaphore(ASSESSMENT_ANSWERS_AT_ONCE)
_T = TypeVar("_T")
_A = TypeVar("_A")

_TRANSPORT_CODES: tuple[tuple[type[Exception], str], ...] = (
    (botocore.exceptions.ReadTimeoutError, "ReadTimeout"),
    (botocore.exceptions.ConnectTimeoutError, "ConnectTimeout"),
    (botocore.exceptions.EndpointConnectionError, "EndpointConnectionError"),
    (botocore.exceptions.ConnectionClosedError, "ConnectionClosedError"),
    (botocore.parsers.ResponseParserError, MALFORMED),
    (botocore.exceptions.NoCredentialsError, "NoCredentialsError"),
)

_EVIDENCE_FIELDS = {
    "noncompliant_evidence": "noncompliantEvidenceCount",
    "compliant_evidence": "compliantEvidenceCount",
    "inconclusive_evidence": "inconclusiveEvidenceCount",
}
_INSIGHT_FIELDS = {
    **_EVIDENCE_FIELDS,
    "noncompliant_controls": "assessmentControlsCountByNoncompliantEvidence",
    "total_controls": "totalAssessmentControlsCount",
}
_ACCOUNT_FIELDS = {"active_assessments": "activeAssessmentsCount", **_INSIGHT_FIELDS}
_DOMAIN_CONTROL_FIELDS = {
    "noncompliant_controls": "controlsCountByNoncompliantEvidence",
    "total_controls": "totalControlsCount",
}


class AwsError(Exception):
    """A failed Audit Manager call. `code` is what `auditmanager_api_errors_total` counts it under."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class AnswerError(ValueError):
    """An answer that botocore's model allows but the exporter cannot use: a field it needs is missing, a name
    repeats, a value is outside what it means. Counted as `MalformedResponse`; any other exception raised while an
    answer is read is the exporter's own (`ExporterError`)."""


@dataclass(frozen=True)
class AssessmentMeta:
    """An assessment as ListAssessments lists it."""

    assessment_id: str
    name: str
    status: str


@dataclass(frozen=True)
class DescribedAssessment:
    """What the exporter keeps of a GetAssessment answer. The rest, the framework's every control set and control,
    is dropped as soon as the answer is read."""

    assessment_id: str
    name: str
    status: str
    account_id: str
    arn: str
    framework_id: str
    framework_name: str
    tags: Mapping[str, str]


class RateLimiter:
    """Lets at most `limit` requests start in any window of `window` seconds (a sliding-window log).

    Fractional rates below one request per second widen the window instead: 0.5/s is one request per 2 s.
    A small margin on the window keeps network jitter from pushing the rate AWS sees over the limit.
    """

    MARGIN = 0.02

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = max(1, int(per_second))
        self._window = (1.0 if per_second >= 1 else 1.0 / per_second) + self.MARGIN
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()
        self._clock = clock
        self._seconds_per_window = 1.0 if per_second >= 1 else 1.0 / per_second
        self._peak = 0
        self.acquired = 0

    def acquire(self) -> None:
        """Block until a request may start, and record that it does (`acquired` counts them)."""
        while True:
            with self._lock:
                now = self._clock()
                while self._starts and now - self._starts[0] >= self._window:
                    self._starts.popleft()
                if len(self._starts) < self._limit:
                    self._starts.append(now)
                    self.acquired += 1
                    self._peak = max(self._peak, len(self._starts))
                    return
                wait = self._window - (now - self._starts[0])
            time.sleep(wait)

    def take_peak_rate(self) -> float:
        """The most requests per second that started within one window since the last call; starts afresh."""
        with self._lock:
            peak, self._peak = self._peak, 0
        return peak / self._seconds_per_window


SessionFactory = Callable[[Target], boto3.Session]

# The service models and endpoint rules botocore parses from its JSON files, read once and shared by every
# session: each session would otherwise parse and keep its own copy, about 9 MB per target.
_SHARED_LOADER = botocore.session.get_session().get_component("data_loader")


def _botocore_session() -> botocore.session.Session:
    core = botocore.session.Session()
    core.register_component("data_loader", _SHARED_LOADER)
    return core


def new_session(**kwargs: Any) -> boto3.Session:
    """A boto3 Session (same arguments) whose botocore session shares the process's parsed service data."""
    return boto3.Session(botocore_session=_botocore_session(), **kwargs)


def default_session(target: Target) -> boto3.Session:
    """A session from boto3's standard credential chain (environment, profile, web identity, instance role),
    or, with `role_arn`, one whose credentials come from assuming that role with the chain's credentials."""
    source = new_session(profile_name=target.profile, region_name=target.region)
    if target.role_arn is None:
        return source
    return assumed_role_session(source, target)


class _AssumeRoleProvider(botocore.credentials.CredentialProvider):
    """Credentials of an assumed role, fetched on first use and refreshed by botocore before they expire."""

    METHOD = "assume-role"

    def __init__(self, source: boto3.Session, target: Target) -> None:
        self._source = source
        self._role_arn = target.role_arn
        self._extra_args = {"RoleSessionName": target.session_name}
        if target.external_id is not None:
            self._extra_args["ExternalId"] = target.external_id

    def load(self) -> botocore.credentials.DeferredRefreshableCredentials:
        return botocore.credentials.DeferredRefreshableCredentials(self._fetch, self.METHOD)

    def _fetch(self) -> dict[str, Any]:
        # Asked for at every refresh, so source credentials that refresh themselves (IRSA, instance role) stay valid.
        credentials = self._source.get_credentials()
        if credentials is None:
            raise botocore.exceptions.NoCredentialsError()
        fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
            client_creator=self._source.client,
            source_credentials=credentials,
            role_arn=self._role_arn,
            extra_args=self._extra_args,
        )
        return fetcher.fetch_credentials()


def assumed_role_session(source: boto3.Session, target: Target) -> boto3.Session:
    """A session acting as `target.role_arn`, assumed through STS with `source`'s credentials."""
    core = _botocore_session()
    core.register_component(
        "credential_provider", botocore.credentials.CredentialResolver([_AssumeRoleProvider(source, target)])
    )
    return boto3.Session(botocore_session=core, region_name=target.region)


class ServiceClient:
    """One AWS service's calls for one target (one account and region): every caller shares one rate limit and one
    concurrency limit, every attempt is counted, and every answer is checked against the service's model
    (`ANSWERS`). Each service gets limits of its own, as AWS throttles each service on its own."""

    SERVICE: ClassVar[str]
    ANSWERS: ClassVar[AnswerRules]

    def __init__(
        self,
        target: Target,
        config: Config,
        counters: ApiCounters,
        session_factory: SessionFactory = default_session,
    ) -> None:
        self.region = target.region
        self._counters = counters
        self._limiter = RateLimiter(target.max_requests_per_second)
        self._slots = threading.BoundedSemaphore(target.max_concurrency)
        # Calls in progress, so that closing idle connections never closes a pool a call is about to use.
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        client_config = botocore.config.Config(
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            retries={"mode": "standard", "total_max_attempts": config.max_attempts},
            max_pool_connections=target.max_concurrency,
            user_agent_extra=f"auditmanager-exporter/{__version__}",
        )
        self._client = session_factory(target).client(
            self.SERVICE, region_name=target.region, endpoint_url=target.endpoint_url, config=client_config
        )
        self._client.meta.events.register(f"before-send.{self.SERVICE}", self._before_send)
        check_answers(self._client, self.ANSWERS)

    def _before_send(self, event_name: str, **_: Any) -> None:
        self._limiter.acquire()
        self._counters.count_request(event_name.rsplit(".", 1)[-1], self.region)

    @property
    def requests_started(self) -> int:
        """How many HTTP requests (retries included) this client has started."""
        return self._limiter.acquired

    def take_peak_rate(self) -> float:
        """The highest request rate this client reached since the last call, in requests per second."""
        return self._limiter.take_peak_rate()

    def close(self) -> None:
        """Close the client's pooled connections (a reload that replaced the client, or the exporter stopping)."""
        self._client.close()

    def close_idle_connections(self) -> None:
        """Close the pooled connections unless a call is in progress; the next call opens new ones. Between poll
        cycles minutes apart, a kept-alive connection gains nothing and holds a socket."""
        with self._in_flight_lock:
            if not self._in_flight:
                self._client.close()

    def _call(self, operation: str, request: Callable[[], _A], parse: Callable[[_A], _T]) -> _T:
        """Run one logical call in one of the target's concurrency slots and parse its answer; count and re-raise
        a failure of AWS (an error answer, a transport error, an answer that fails `parse`'s checks) as an
        AwsError. Any other exception is the exporter's own and propagates as it is."""
        with self._in_flight_lock:
            self._in_flight += 1
        try:
            with self._slots:
                answer = request()
        except Exception as exc:
            error = _as_aws_error(exc)
            if error is None:
                raise
            self._counters.count_error(operation, self.region, error.code)
            raise error from exc
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1
        try:
            return parse(answer)
        except AwsError as error:
            self._counters.count_error(operation, self.region, error.code)
            raise
        except AnswerError as exc:
            self._counters.count_error(operation, self.region, MALFORMED)
            raise AwsError(MALFORMED, f"unexpected answer: {exc}") from exc


class AuditManagerClient(ServiceClient):
    """Audit Manager calls for one target, shared by the poll cycle and the assessment details refresh."""

    SERVICE = "auditmanager"
    ANSWERS = AUDIT_MANAGER_ANSWERS

    def __init__(
        self,
        target: Target,
        config: Config,
        counters: ApiCounters,
        session_factory: SessionFactory = default_session,
    ) -> None:
        super().__init__(target, config, counters, session_factory)
        self._background_limiter = RateLimiter(target.max_requests_per_second * BACKGROUND_SHARE)
        self._background = threading.local()

    def _before_send(self, event_name: str, **kwargs: Any) -> None:
        if getattr(self._background, "active", False):
            self._background_limiter.acquire()
        super()._before_send(event_name, **kwargs)

    def assessment_insights(self, assessment_id: str) -> Insights:
        """GetInsightsByAssessment, validated: a missing or ill-typed answer raises `AwsError(MalformedResponse)`."""
        return self._call(
            "GetInsightsByAssessment",
            lambda: self._client.get_insights_by_assessment(assessmentId=assessment_id),
            _insights,
        )

    def account_insights(self) -> AccountInsights:
        """GetInsights: the counts over every ACTIVE assessment of the account in this region."""

        def request() -> dict[str, Any]:
            return self._client.get_insights()

        return self._call("GetInsights", request, _account_insights)

    def control_domain_insights(self, assessment_id: str) -> tuple[ControlDomainInsights, ...]:
        """ListControlDomainInsightsByAssessment, every page."""

        def every_page() -> list[dict[str, Any]]:
            return pages(
                lambda **paging: self._client.list_control_domain_insights_by_assessment(
                    assessmentId=assessment_id, maxResults=PAGE_SIZE, **paging
                )
            )

        return self._call(
            "ListControlDomainInsightsByAssessment",
            every_page,
            lambda answer: _domains(_items(answer, "controlDomainInsights")),
        )

    def describe_assessment(self, assessment_id: str, *, background: bool = False) -> DescribedAssessment:
        """GetAssessment, keeping only the assessment's name, status, account, ARN, framework name and id, and tags.

        The answer holds one of the process's ASSESSMENT_ANSWERS_AT_ONCE slots from the request until it is parsed.
        `background` calls (the look-ups between cycles) also wait for their own small slice of the target's rate
        (BACKGROUND_SHARE), so they never take more than that from a poll cycle running meanwhile.
        """
        if background:
            # Waited for before taking a slot, so that no slot is held through the slice's long waits; a retry then
            # only waits for the target's own limit.
            self._background_limiter.acquire()
        with _ASSESSMENT_ANSWERS:
            return self._call(
                "GetAssessment", lambda: self._client.get_assessment(assessmentId=assessment_id), _described
            )

    def list_tags(self, resource_arn: str, *, background: bool = False) -> Mapping[str, str]:
        """ListTagsForResource: the resource's tags, key to value; `background` as for `describe_assessment`."""
        with self._in_background(background):
            return self._call(
                "ListTagsForResource", lambda: self._client.list_tags_for_resource(resourceArn=resource_arn), _tags
            )

    def list_assessments(self, status: str | None = None) -> list[AssessmentMeta]:
        """ListAssessments, every page."""
        filters = {"status": status} if status else {}
        return self._call(
            "ListAssessments",
            lambda: pages(lambda **paging: self._client.list_assessments(maxResults=PAGE_SIZE, **filters, **paging)),
            _assessment_list,
        )

    @contextlib.contextmanager
    def _in_background(self, background: bool) -> Iterator[None]:
        """Mark this thread's requests as background ones (or not) for `_before_send`, for the duration."""
        self._background.active = background
        try:
            yield
        finally:
            self._background.active = False


def _as_aws_error(exc: BaseException) -> AwsError | None:
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, MalformedAnswer):
        return AwsError(MALFORMED, str(exc))
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        return AwsError(error.get("Code") or "Unknown", error.get("Message") or str(exc))
    for kind, code in _TRANSPORT_CODES:
        if isinstance(exc, kind):
            return AwsError(code, str(exc))
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return AwsError(type(exc).__name__, str(exc))
    return None


def pages(request: Callable[..., dict[str, Any]], token_key: str = "nextToken") -> list[dict[str, Any]]:
    """Every page of a paged operation: `request()` first, then `request(nextToken=...)` with each page's token
    (`token_key` names it: AWS Config's is NextToken), until a page comes without one. A token that repeats is a
    malformed answer, not a reason to loop forever."""
    seen: set[str] = set()
    paging: dict[str, str] = {}
    answers = []
    while True:
        page = request(**paging)
        answers.append(page)
        token = page.get(token_key)
        if not token:
            return answers
        if not isinstance(token, str) or token in seen:
            raise AwsError(MALFORMED, f"{token_key} {token!r} repeats or is not a string")
        seen.add(token)
        paging = {token_key: token}


# The parsers below read answers that check_answers has already held to the model: counts are ints within
# range or None, timestamps datetimes within range or None. They check only what the model leaves optional but the
# exporter needs.


def _timestamp(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _counts(source: dict[str, Any], fields: dict[str, str]) -> dict[str, int | None]:
    return {name: source.get(key) for name, key in fields.items()}


def _insights(response: dict[str, Any]) -> Insights:
    insights = response.get("insights")
    if not isinstance(insights, dict):
        raise AnswerError("no insights")
    return Insights(**_counts(insights, _INSIGHT_FIELDS), last_updated=_timestamp(insights.get("lastUpdated")))


def _account_insights(response: dict[str, Any]) -> AccountInsights:
    insights = response.get("insights")
    if not isinstance(insights, dict):
        raise AnswerError("no insights")
    return AccountInsights(**_counts(insights, _ACCOUNT_FIELDS), last_updated=_timestamp(insights.get("lastUpdated")))


def _domains(items: Iterable[dict[str, Any]]) -> tuple[ControlDomainInsights, ...]:
    domains = tuple(_domain(item) for item in items)
    seen: set[str] = set()
    for index, domain in enumerate(domains):
        # The name is the series' only control-domain label: a repeat would publish one series twice.
        if domain.name in seen:
            raise AnswerError(f"controlDomainInsights item {index}: name {domain.name!r} repeats")
        seen.add(domain.name)
    return domains


def _domain(item: dict[str, Any]) -> ControlDomainInsights:
    evidence = item.get("evidenceInsights") or {}
    return ControlDomainInsights(
        name=_text(_field(item, "name")),
        **_counts(evidence, _EVIDENCE_FIELDS),
        **_counts(item, _DOMAIN_CONTROL_FIELDS),
        last_updated=_timestamp(item.get("lastUpdated")),
    )


def _described(response: dict[str, Any]) -> DescribedAssessment:
    assessment = _field(response, "assessment")
    metadata = _field(assessment, "metadata")
    framework = _field(assessment, "framework")
    account_id = _text(_field(_field(assessment, "awsAccount"), "id"))
    if not account_id:
        raise AnswerError("awsAccount.id is empty")
    return DescribedAssessment(
        assessment_id=_text(_field(metadata, "id")),
        name=_text(_field(metadata, "name")),
        status=_shared(_field(metadata, "status")),
        account_id=_shared(account_id),
        arn=_text(_field(assessment, "arn")),
        framework_id=_shared(_field(framework, "id")),
        framework_name=_shared(_field(_field(framework, "metadata"), "name")),
        tags=_tags(assessment),
    )


def _tags(source: dict[str, Any]) -> Mapping[str, str]:
    """The `tags` map of an answer (none when absent), as a read-only mapping of strings."""
    tags = source.get("tags") or {}
    if not isinstance(tags, dict):
        raise AnswerError("tags is not a mapping")
    return MappingProxyType({_shared(key): _shared(value) for key, value in tags.items()})


def _assessment_list(pages: Iterable[dict[str, Any]]) -> list[AssessmentMeta]:
    return [
        AssessmentMeta(
            assessment_id=_text(_field(item, "id")),
            name=_text(_field(item, "name")),
            status=_shared(_field(item, "status")),
        )
        for item in _items(pages, "assessmentMetadata")
    ]


def _items(pages: Iterable[dict[str, Any]], key: str) -> Iterator[dict[str, Any]]:
    for page in pages:
        items = _field(page, key)
        if not isinstance(items, list):
            raise AnswerError(f"{key} is not a list")
        yield from items


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise AnswerError(f"{value!r} is not a string")
    return value


def _shared(value: object) -> str:
    """A string that many assessments repeat (a status, a framework, an account), kept once however many answers
    carried it, instead of once per answer for as long as the exporter keeps it."""
    return sys.intern(_text(value))


def _field(source: object, key: str) -> Any:
    """`source[key]`, or AnswerError when the answer lacks it: botocore's models mark few output fields required, so
    the model check lets an answer without them through."""
    if not isinstance(source, dict) or source.get(key) is None:
        raise AnswerError(f"{key} is missing")
    return source[key]
