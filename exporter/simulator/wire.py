"""AWS's wire conventions shared by the simulated operations: answers, errors, paging and JSON encoding."""

from __future__ import annotations

import base64
import json
import re
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
# The same for AWS Config's JSON 1.1 protocol: its modelled errors and throttling answer 400, as AWS Config does.
CONFIG_ERROR_STATUS = {
    "AccessDeniedException": 400,
    "InvalidLimitException": 400,
    "InvalidNextTokenException": 400,
    "InvalidParameterValueException": 400,
    "NoSuchConfigRuleInConformancePackException": 400,
    "NoSuchConfigurationAggregatorException": 400,
    "NoSuchConformancePackException": 400,
    "ThrottlingException": 400,
    "ValidationException": 400,
    "SerializationException": 400,
    "UnknownOperationException": 400,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
}
# The same for Security Hub's REST-JSON errors (botocore's `securityhub` model).
SECURITYHUB_ERROR_STATUS = {
    "AccessDeniedException": 403,
    "InternalException": 500,
    "InvalidAccessException": 401,
    "InvalidInputException": 400,
    "LimitExceededException": 429,
    "ResourceNotFoundException": 404,
}
JSON_1_1 = "application/x-amz-json-1.1"
_CREDENTIAL_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/")
_TOKEN_PREFIX = "offset:"
_MAX_RESULTS = 1000
_T = TypeVar("_T")


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes | dict[str, Any]
    error_code: str | None = None
    reset: bool = False
    content_type: str = "application/json"


class ApiError(Exception):
    def __init__(self, code: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.answer = error_answer(code, message, **fields)


def error_answer(code: str, message: str, *, status: int | None = None, **fields: Any) -> Answer:
    return Answer(ERROR_STATUS[code] if status is None else status, {"message": message, **fields}, code)


def config_error_answer(code: str, message: str) -> Answer:
    """An AWS Config (JSON 1.1) error: the code in the body's `__type`, as AWS Config sends it."""
    return Answer(CONFIG_ERROR_STATUS[code], {"__type": code, "message": message}, code, content_type=JSON_1_1)


def credential_scope(authorization: str, default_region: str) -> tuple[str, str]:
    """The access key id and region a SigV4 `Authorization` header was signed for ("" and `default_region` if
    unsigned)."""
    match = _CREDENTIAL_SCOPE.search(authorization)
    return (match.group(1), match.group(2)) if match else ("", default_region)


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
    start = 0 if "nextToken" not in query else token_offset(query["nextToken"])
    if not 0 <= start <= len(items):
        raise ApiError("ValidationException", "invalid nextToken", **field_problem("nextToken", "invalid"))
    end = start + size
    return items[start:end], offset_token(end) if end < len(items) else None


def offset_token(offset: int) -> str:
    """A page token pointing at `offset`."""
    # Base32 keeps the token within the model's pattern and free of "+", which query parsing turns into a space.
    return base64.b32encode(f"{_TOKEN_PREFIX}{offset}".encode()).decode()


def token_offset(token: str) -> int:
    """The offset a page token points at; -1 for a token this simulator did not issue."""
    try:
        return int(base64.b32decode(token).decode().removeprefix(_TOKEN_PREFIX))
    except ValueError:
        return -1


def with_token(payload: dict[str, Any], token: str | None) -> dict[str, Any]:
    return payload if token is None else payload | {"nextToken": token}


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
