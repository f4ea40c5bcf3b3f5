"""How the poll service reports a failure: an AWS failure as a warning, an exception of the exporter's own code
as an error with its traceback, counted as `error_code="ExporterError"`."""

from __future__ import annotations

import logging

from exporter.aws import AwsError
from exporter.snapshot import ApiCounters

log = logging.getLogger("exporter.polling")

EXPORTER_ERROR = "ExporterError"


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
