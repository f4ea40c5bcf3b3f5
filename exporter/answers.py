"""AWS answers checked against botocore's service model before botocore parses them, so no ill-typed value passes.

botocore's JSON parser coerces what it reads (`1.5`, `"7"` and `true` all become integers), so the check reads the
raw body: every field the operation's output shape declares must have the JSON type its shape names and lie in
the shape's range. The rules come from the model, so a field the model gains is checked without a change here.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape

# The model rarely bounds a number; then these hold. AWS never sends a negative count.
_DEFAULT_RANGES = {"integer": (0, 2**31 - 1), "long": (0, 2**63 - 1)}
_DAY = 86_400.0


class MalformedAnswer(ValueError):
    """An answer that breaks its operation's output shape; `field` is the path of the first bad field."""

    def __init__(self, operation: str, field: str, problem: str) -> None:
        super().__init__(f"{operation} answer: {field}: {problem}")
        self.operation = operation
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class AnswerRules:
    """What the model cannot say: timestamps lie between the service's launch and `horizon` seconds after now."""

    launched: datetime
    horizon: float = _DAY
    clock: Callable[[], float] = field(default=time.time, compare=False)


def check_answer(operation: OperationModel, body: bytes, rules: AnswerRules) -> Any:
    """The decoded JSON of a successful answer to `operation`; raises `MalformedAnswer` if it breaks the model.

    Keys the model does not know are ignored, as botocore ignores them: AWS may add fields before the model does.
    A JSON null field counts as absent.
    """
    try:
        answer = json.loads(body or b"{}", parse_constant=_not_json)
    except (ValueError, RecursionError) as error:
        raise MalformedAnswer(operation.name, "body", f"not JSON ({type(error).__name__})") from None
    if not isinstance(answer, dict):
        # A null field counts as absent, but a whole answer of null (or any non-object) is no answer at all.
        raise MalformedAnswer(operation.name, "body", f"{type(answer).__name__} is not an object")
    checker = _Checker(operation.name, rules.launched.timestamp(), rules.clock() + rules.horizon)
    checker.check(operation.output_shape, answer, "")
    return answer


def check_answers(client: Any, rules: AnswerRules) -> None:
    """Make every call of a boto3 `client` check its successful answer before botocore parses it.

    A call whose answer breaks the model raises `MalformedAnswer` (a ValueError) and is not retried.
    """
    service = client.meta.service_model.service_id.hyphenize()

    def before_parse(operation_model: OperationModel, response_dict: dict[str, Any], **_: Any) -> None:
        # botocore parses statuses up to 300 as answers, the rest as errors.
        if response_dict["status_code"] <= 300:
            check_answer(operation_model, response_dict["body"], rules)

    client.meta.events.register(f"before-parse.{service}", before_parse)


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


@dataclass(frozen=True)
class _Checker:
    operation: str
    earliest: float
    latest: float

    def check(self, shape: Shape | None, value: object, path: str) -> None:
        if shape is None or value is None:
            return
        check = getattr(self, f"_{shape.type_name}", None)
        if check is None:
            raise MalformedAnswer(self.operation, path or "body", f"shape type {shape.type_name} is not supported")
        check(shape, value, path)

    def _fail(self, path: str, value: object, problem: str) -> MalformedAnswer:
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:40] + "…"
        return MalformedAnswer(self.operation, path or "body", f"{shown} is {problem}")

    def _structure(self, shape: StructureShape, value: object, path: str) -> None:
        if not isinstance(value, dict):
            raise self._fail(path, value, "not an object")
        if shape.is_document_type:
            return
        for name in shape.required_members:
            if value.get(shape.members[name].serialization.get("name", name)) is None:
                raise MalformedAnswer(self.operation, _join(path, name), "required but missing")
        for name, member in shape.members.items():
            if member.serialization.get("location"):
                continue
            self.check(member, value.get(member.serialization.get("name", name)), _join(path, name))

    def _list(self, shape: ListShape, value: object, path: str) -> None:
        if not isinstance(value, list):
            raise self._fail(path, value, "not a list")
        self._length(shape, value, len(value), path)
        for index, item in enumerate(value):
            self._item(shape, item, f"{path}[{index}]")
            self.check(shape.member, item, f"{path}[{index}]")

    def _map(self, shape: MapShape, value: object, path: str) -> None:
        if not isinstance(value, dict):
            raise self._fail(path, value, "not an object")
        self._length(shape, value, len(value), path)
        for key, item in value.items():
            self.check(shape.key, key, f"{path} key {key!r}")
            self._item(shape, item, f"{path}[{key!r}]")
            self.check(shape.value, item, f"{path}[{key!r}]")

    def _item(self, shape: Shape, item: object, path: str) -> None:
        # A null field is an absent one, but a null inside a list or map is a hole only sparse shapes allow.
        if item is None and not shape.metadata.get("sparse"):
            raise MalformedAnswer(self.operation, path, "null in a list or map that is not sparse")

    def _string(self, shape: Shape, value: object, path: str) -> None:
        # Patterns and enums are left out: they describe requests, and an enum that grows is a newer API, not a
        # broken answer.
        if not isinstance(value, str):
            raise self._fail(path, value, "not a string")
        self._length(shape, value, len(value), path)

    _blob = _string

    def _boolean(self, shape: Shape, value: object, path: str) -> None:
        if not isinstance(value, bool):
            raise self._fail(path, value, "not a boolean")

    def _integer(self, shape: Shape, value: object, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(path, value, "not an integer")
        low, high = _DEFAULT_RANGES[shape.type_name]
        low, high = shape.metadata.get("min", low), shape.metadata.get("max", high)
        if not low <= value <= high:
            raise self._fail(path, value, f"outside {low}..{high}")

    _long = _integer

    def _double(self, shape: Shape, value: object, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self._fail(path, value, "not a finite number")
        low, high = shape.metadata.get("min", -math.inf), shape.metadata.get("max", math.inf)
        if not low <= value <= high:
            raise self._fail(path, value, f"outside {low}..{high}")

    _float = _double

    def _timestamp(self, shape: Shape, value: object, path: str) -> None:
        # The JSON protocols send timestamps as epoch seconds unless the shape's timestampFormat says otherwise.
        if shape.serialization.get("timestampFormat") == "iso8601":
            seconds = _iso8601_seconds(value)
            if seconds is None:
                raise self._fail(path, value, "not an ISO 8601 timestamp")
            value = seconds
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self._fail(path, value, "not a timestamp in epoch seconds")
        if not self.earliest <= value <= self.latest:
            raise self._fail(path, value, f"outside {_iso(self.earliest)}..{_iso(self.latest)}")

    def _length(self, shape: Shape, value: object, length: int, path: str) -> None:
        low, high = shape.metadata.get("min", 0), shape.metadata.get("max", math.inf)
        if not low <= length <= high:
            raise self._fail(path, value, f"of length {length}, outside {low}..{high}")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _iso8601_seconds(value: object) -> float | None:
    """The epoch seconds of an ISO 8601 string (UTC unless it names an offset), or None if it is not one."""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return None if moment is None else moment.replace(tzinfo=moment.tzinfo or UTC).timestamp()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
