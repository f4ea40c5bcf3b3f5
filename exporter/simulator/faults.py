"""Injected misbehaviour: AWS errors, throttling above a rate, latency, resets and malformed answers."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from exporter.simulator.wire import (
    CONFIG_ERROR_STATUS,
    ERROR_STATUS,
    SECURITYHUB_ERROR_STATUS,
    Answer,
    encode,
    error_answer,
)

FAULT_KINDS = frozenset(
    {"error", "throttle_above_rate", "latency", "reset", "malformed_json", "empty_body", "no_insights", "body"}
)

_ERROR_CODES = ERROR_STATUS.keys() | CONFIG_ERROR_STATUS.keys() | SECURITYHUB_ERROR_STATUS.keys()


@dataclass(frozen=True)
class Fault:
    """An injected misbehaviour; see `Simulator.add_fault` and `AwsConfig.add_fault`."""

    kind: str
    code: str = ""
    assessment_id: str | None = None
    operation: str | None = None
    rate: float = 0.0
    seconds: float = 0.0
    message: str = "injected fault"
    conformance_pack: str | None = None
    body: bytes = b""
    standard: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.kind == "error" and self.code not in _ERROR_CODES:
            raise ValueError(f"unknown error code {self.code!r}")

    def matches(self, operation: str, assessment_id: str | None, conformance_pack: str | None = None) -> bool:
        """Whether a request for `operation` naming `assessment_id` (or `conformance_pack`) is subject to this
        fault."""
        return (
            (self.operation is None or self.operation == operation)
            and (self.assessment_id is None or self.assessment_id == assessment_id)
            and (self.conformance_pack is None or self.conformance_pack == conformance_pack)
        )


class InjectedFaults:
    """The faults injected into one service's requests, with each throttling fault's window of the requests it let
    through, per region. Not locked: its simulator calls it under its own lock."""

    def __init__(self) -> None:
        self._faults: list[tuple[Fault, dict[str, deque[float]]]] = []

    def add(self, fault: Fault) -> None:
        self._faults.append((fault, {}))

    def clear(self) -> None:
        self._faults.clear()

    def decide(
        self,
        applies: Callable[[Fault], bool],
        region: str,
        answer_of: Callable[[Fault, deque[float]], Answer | None],
    ) -> tuple[Answer | None, float]:
        """The answer of the first fault that `applies` and fires (`answer_of` given its window in `region`), or
        None, and the sum of the delays of the latency faults that apply."""
        answer, delay = None, 0.0
        for fault, windows in self._faults:
            if not applies(fault):
                continue
            if fault.kind == "latency":
                delay += fault.seconds
            elif answer is None:
                answer = answer_of(fault, windows.setdefault(region, deque()))
        return answer, delay


def admits(rate: float, window: deque[float], arrived: float) -> bool:
    """Whether a request arriving at `arrived` stays within `rate` per second of those `window` let through in
    the previous second; if so it is let through too."""
    while window and window[0] <= arrived - 1.0:
        window.popleft()
    if len(window) < rate:
        window.append(arrived)
        return True
    return False


def fault_answer(fault: Fault, window: deque[float], arrived: float, assessment_id: str | None) -> Answer | None:
    """The answer `fault` replaces the normal one with, or None if it does not fire for this request."""
    if fault.kind == "throttle_above_rate":
        return None if admits(fault.rate, window, arrived) else error_answer("ThrottlingException", "Rate exceeded")
    if fault.kind == "error":
        if fault.code == "ResourceNotFoundException":
            return error_answer(fault.code, fault.message, resourceId=assessment_id or "", resourceType="ASSESSMENT")
        return error_answer(fault.code, fault.message)
    if fault.kind == "reset":
        return Answer(
            200, encode({"insights": {"noncompliantEvidenceCount": 0, "compliantEvidenceCount": 0}}), reset=True
        )
    if fault.kind == "body":
        return Answer(200, fault.body)
    return Answer(200, {"malformed_json": b'{"insights": {', "empty_body": b"", "no_insights": b"{}"}[fault.kind])
