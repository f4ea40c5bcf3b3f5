"""How a failed AWS call reaches the exporter: `AwsError` with the AWS error code or a transport class as `code`,
whatever the service; an unusable answer is `MalformedResponse`."""

from __future__ import annotations

import botocore.exceptions
import botocore.parsers

from exporter.answers import MalformedAnswer

MALFORMED = "MalformedResponse"

_TRANSPORT_CODES: tuple[tuple[type[Exception], str], ...] = (
    (botocore.exceptions.ReadTimeoutError, "ReadTimeout"),
    (botocore.exceptions.ConnectTimeoutError, "ConnectTimeout"),
    (botocore.exceptions.EndpointConnectionError, "EndpointConnectionError"),
    (botocore.exceptions.ConnectionClosedError, "ConnectionClosedError"),
    (botocore.parsers.ResponseParserError, MALFORMED),
    (botocore.exceptions.NoCredentialsError, "NoCredentialsError"),
)


class AwsError(Exception):
    """A failed call to any AWS service the exporter reads, not only Audit Manager. `code` is what
    `auditmanager_api_errors_total` (the one error counter of every service, despite its prefix) counts it under."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class AnswerError(ValueError):
    """An answer that botocore's model allows but the exporter cannot use: a field it needs is missing, a name
    repeats, a value is outside what it means. Counted as `MalformedResponse`; any other exception raised while an
    answer is read is the exporter's own (`ExporterError`)."""


def as_aws_error(exc: BaseException) -> AwsError | None:
    """`exc` as the AwsError it means: an AWS error answer, a transport failure or an answer that breaks the model;
    None for any other exception, which is the exporter's own."""
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
