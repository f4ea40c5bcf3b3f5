"""What every AWS service's client shares (`ServiceClient`): one rate limit and one concurrency limit per target and
service, every attempt counted, every answer checked against the service model, every failure an `AwsError`."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from exporter.answers import AnswerRules, check_answers
from exporter.aws.errors import MALFORMED, AnswerError, AwsError, as_aws_error
from exporter.aws.ratelimit import RequestRateLimiter
from exporter.aws.session import SessionFactory, default_session
from exporter.aws.sessions import ClientSettings, SessionCache
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
        """A client from `session_factory`'s session of the target, or, with `clients`, one lent by that cache (its
        session shared with every target of the same credentials) until `close`."""
        self.region = target.region
        self._counters = counters
        self._limiter = RequestRateLimiter(target.max_requests_per_second)
        self._slots = threading.BoundedSemaphore(target.max_concurrency)
        # Calls in progress, so that closing idle connections never closes a pool a call is about to use.
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._set_up(target)
        settings = ClientSettings.of(target, config)
        self._lease = contextlib.ExitStack()
        if clients is None:
            self._client = session_factory(target).client(
                self.SERVICE,
                region_name=target.region,
                endpoint_url=target.endpoint_url,
                config=settings.botocore_config(),
            )
            check_answers(self._client, self.ANSWERS)
            self._client.meta.events.register(f"before-send.{self.SERVICE}", self._before_send)
        else:
            lease = self._lease.enter_context(clients.lease(target, self.SERVICE, settings, self.ANSWERS))
            self._client = lease.client
            lease.register(f"before-send.{self.SERVICE}", self._before_send)

    def _set_up(self, target: Target) -> None:
        """A subclass's own state for the target, made before any request can start; none here."""

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
        """Close the client's pooled connections (a reload that replaced the client, or the exporter stopping); a
        client lent by a SessionCache goes back to it."""
        self._client.close()
        self._lease.close()

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
