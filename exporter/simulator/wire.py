"""AWS's wire conventions shared by the simulated operations: answers, errors, paging and JSON encoding."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

# HTTP status of each error code, as botocore's service model declares it (checked by the tests).
ERROR_STATUS = {
    "ValidationException": 400,
    "ServiceQuotaExceededException": 402,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ThrottlingException": 429,
    "InternalServerException": 500,
}
_TOKEN_PREFIX = "offset:"
_MAX_RESULTS = 1000
_T = TypeVar("_T")


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes | dict[str, Any]
    error_code: str | None = None
    reset: bool = False


class ApiError(Exception):
    def __init__(self, code: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.answer = error_answer(code, message, **fields)


def error_answer(code: str, message: str, *, status: int | None = None, **fields: Any) -> Answer:
    return Answer(ERROR_STATUS[code] if status is None else status, {"message": message, **fields}, code)


def field_problem(name: str, message: str) -> dict[str, Any]:
    return {"reason": "fieldValidationFailed", "fields": [{"name": name, "message": message}]}


def page_of(items: Sequence[_T], query: dict[str, str], default_size: int) -> tuple[Sequence[_T], str | None]:
    size = default_size
    if "maxResults" in query:
        try:
            size = int(query["maxResults"])
        except ValueError:
            size = 0
        if not 1 <= size <= _MAX_RESULTS:
            raise ApiError(
                "ValidationException", "maxResults must be between 1 and 1000", **field_problem("maxResults", "invalid")
            )
    start = 0
    if "nextToken" in query:
        try:
            start = int(base64.b32decode(query["nextToken"]).decode().removeprefix(_TOKEN_PREFIX))
        except ValueError:
            start = -1
        if not 0 <= start <= len(items):
            raise ApiError("ValidationException", "invalid nextToken", **field_problem("nextToken", "invalid"))
    end = start + size
    # Base32 keeps the token within the model's pattern and free of "+", which query parsing turns into a space.
    token = base64.b32encode(f"{_TOKEN_PREFIX}{end}".encode()).decode() if end < len(items) else None
    return items[start:end], token


def with_token(payload: dict[str, Any], token: str | None) -> dict[str, Any]:
    return payload if token is None else payload | {"nextToken": token}


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
