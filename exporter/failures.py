"""How a failure is reported, for the pipeline and every source alike: an AWS failure as a warning, an exception of
the exporter's own code as an error with its traceback, counted as `error_code="ExporterError"`; both become a
Failure, the data that a poll status and /status show."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from exporter.aws import AwsError
from exporter.snapshot import ApiCounters

log = logging.getLogger("exporter.polling")

EXPORTER_ERROR = "ExporterError"
"""The error code of an exception of the exporter's own code (the log has its traceback)."""


@dataclass(frozen=True, kw_only=True)
class Failure:
    """Why something failed: the AWS error code and message (or EXPORTER_ERROR and the exception)."""

    code: str
    message: str


def log_aws_failure(message: str, error: AwsError, **fields: str) -> None:
    log.warning(
        message,
        extra={**fields, "error_code": error.code, "error": error.message},
        exc_info=log.isEnabledFor(logging.DEBUG),
    )


def report_unexpected(
    counters: ApiCounters, operation: str, error: Exception, message: str = "unexpected error", **fields: str
) -> None:
    """Log, once and with its traceback, an exception of the exporter's own code met while doing `operation`, and
    count it under `ExporterError`; what it was doing fails, nothing else does."""
    log.error(message, extra={**fields, "operation": operation, "error": repr(error)}, exc_info=error)
    counters.count_error(operation, fields.get("region", ""), EXPORTER_ERROR)


def failure_of(error: Exception, counters: ApiCounters, operation: str, message: str, **fields: str) -> Failure:
    """Report `error` met while doing `operation` once (an AwsError as a warning with `message`; anything else, a bug
    of the exporter, with its traceback) and return it as a Failure."""
    if isinstance(error, AwsError):
        log_aws_failure(message, error, **fields)
        return Failure(code=error.code, message=error.message)
    report_unexpected(counters, operation, error, **fields)
    return Failure(code=EXPORTER_ERROR, message=f"{type(error).__name__}: {error}")
