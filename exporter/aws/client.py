"""What every AWS service's client shares (`ServiceClient`): one rate limit and one concurrency limit per target and
service, every attempt counted, every answer checked against the service model, every failure an `AwsError`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from exporter.answers import AnswerRules
from exporter.aws.errors import MALFORMED, AnswerError, AwsError, as_aws_error
from exporter.aws.ratelimit import RequestRateLimiter
from exporter.aws.session import SessionFactory, default_session
from exporter.aws.sessions import Caller, ClientSettings, SessionCache, calling_as
from exporter.config import Config, Target
from exporter.snapshot import ApiCounters

_T = TypeVar("_T")
_A = TypeVar("_A")


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
        *,
        clients: SessionCache | None = None,
    ) -> None:
        """The target's calls, through the botocore client its service, Region and endpoint share with every target
        of `clients` (or `session_factory`, if that is a SessionCache), the cache shared with every target; otherwise
        through a cache of its own over `session_factory`. The client is held while the target's work runs and let
        go when it is done (`close_idle_connections`); the limits and counts are this object's, and every call is
        signed with the target's own credentials."""
        self.region = target.region
        self._counters = counters
        self._limiter = RequestRateLimiter(target.max_requests_per_second)
        self._slots = threading.BoundedSemaphore(target.max_concurrency)
        # Calls in progress, so that letting go of the client never takes it from a call about to use it.
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._set_up(target)
        self._target = target
        self._settings = ClientSettings.of(config)
        if clients is None:
            clients = session_factory if isinstance(session_factory, SessionCache) else SessionCache(session_factory)
        self._sessions = clients
        self._shared = clients.client(target, self.SERVICE, self._settings, self.ANSWERS)
        self._caller = Caller(credentials=self._credentials, before_send=self._before_send)
        self._hold_lock = threading.Lock()
        self._held: Any = None

    def _set_up(self, target: Target) -> None:
        """A subclass's own state for the target, made before any request can start; none here."""

    def _before_send(self, event_name: str, **_: Any) -> None:
        self._limiter.acquire()
        self._counters.count_request(event_name.rsplit(".", 1)[-1], self.region)

    def _credentials(self) -> Any:
        return self._sessions.credentials(self._target)

    def _build(self) -> Any:
        return self._sessions.build(self._target, self.SERVICE, self._settings, self.ANSWERS)

    def account(self, learn: Callable[[], str]) -> str:
        """The account of the target's credentials, learned by `learn` unless a target of the same credential source
        learned it already (`SessionCache.account`)."""
        return self._sessions.account(self._target, learn)

    @property
    def requests_started(self) -> int:
        """How many HTTP requests (retries included) this client has started."""
        return self._limiter.acquired

    def take_peak_rate(self) -> float:
        """The highest request rate this client reached since the last call, in requests per second."""
        return self._limiter.take_peak_rate()

    @property
    def _client(self) -> Any:
        """The shared botocore client, held from first use until the target's work is done."""
        with self._hold_lock:
            if self._held is None:
                self._held = self._shared.hold(self._build)
            return self._held

    def _give_back(self) -> None:
        with self._hold_lock:
            held, self._held = self._held, None
        if held is not None:
            self._shared.release()

    def close(self) -> None:
        """Let go of the client (a reload that replaced this target, or the exporter stopping)."""
        self._give_back()

    def close_idle_connections(self) -> None:
        """Let go of the client unless a call is in progress: the target's work is done for now. The last target
        to let go of a client closes its connections, so that idle targets hold no sockets; its next call holds it
        again. Its limits stay."""
        with self._in_flight_lock:
            if not self._in_flight:
                self._give_back()

    def _call(self, operation: str, request: Callable[[], _A], parse: Callable[[_A], _T]) -> _T:
        """Run one logical call in one of the target's concurrency slots and parse its answer; count and re-raise
        a failure of AWS (an error answer, a transport error, an answer that fails `parse`'s checks) as an
        AwsError. Any other exception is the exporter's own and propagates as it is."""
        with self._in_flight_lock:
            self._in_flight += 1
        try:
            with self._slots, calling_as(self._caller):
                answer = request()
        except Exception as exc:
            error = as_aws_error(exc)
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
