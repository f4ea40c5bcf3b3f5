"""Content negotiation for /metrics: which prepared body a scrape gets, from its Accept and Accept-Encoding headers.

OpenMetrics versions follow prometheus_client's `choose_encoder`: `application/openmetrics-text` without a version
or with version 1.0.0 or later asks for OpenMetrics; an earlier version (0.0.1) does not. Unlike prometheus_client,
weights count (RFC 9110): `q=0` refuses a format, and OpenMetrics wins only when weighted at least as high as the
text format.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

OPENMETRICS = "application/openmetrics-text"
# The media ranges the Prometheus text format (0.0.4, what every scraper can read) answers.
TEXT_RANGES = ("text/plain", "text/*", "*/*")
OPENMETRICS_SINCE = (1, 0, 0)


@dataclass(frozen=True)
class Representation:
    """Which prepared body to send: OpenMetrics or the text format, gzipped or not."""

    openmetrics: bool
    gzipped: bool


def negotiate(accept: str, accept_encoding: str) -> Representation:
    """The representation a scrape with these Accept and Accept-Encoding values (empty when absent) gets."""
    return Representation(openmetrics=accepts_openmetrics(accept), gzipped=accepts_gzip(accept_encoding))


def accepts_openmetrics(accept: str) -> bool:
    """Whether an Accept value prefers OpenMetrics to the text format, as Prometheus's defaults do.

    OpenMetrics counts when listed without a version or with version 1.0.0 or later and a weight above 0, at least
    as high as the best of `text/plain`, `text/*` and `*/*`; without an Accept header, the answer is the text format.
    """
    openmetrics = text = 0.0
    for media_type, params in _elements(accept):
        weight = _weight(params)
        if media_type == OPENMETRICS and _openmetrics_version(params.get("version", "")):
            openmetrics = max(openmetrics, weight)
        elif media_type in TEXT_RANGES:
            text = max(text, weight)
    return openmetrics > 0 and openmetrics >= text


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding value allows gzip: listed (or covered by `*`) with a weight above 0."""
    weights = {coding: _weight(params) for coding, params in _elements(accept_encoding)}
    return weights.get("gzip", weights.get("*", 0.0)) > 0


def _openmetrics_version(version: str) -> bool:
    """prometheus_client's rule: no version, or 1.0.0 and later (`1` and `1.0` read as 1.0.0)."""
    if not version:
        return True
    try:
        numbers = tuple(int(part) for part in version.split("."))
    except ValueError:
        return False
    return numbers + (0,) * (len(OPENMETRICS_SINCE) - len(numbers)) >= OPENMETRICS_SINCE


def _elements(header: str) -> Iterator[tuple[str, dict[str, str]]]:
    """The comma-separated elements of an Accept or Accept-Encoding value: the lower-cased name and its parameters."""
    for element in header.split(","):
        name, *params = (item.strip() for item in element.split(";"))
        if not name:
            continue
        parsed: dict[str, str] = {}
        for param in params:
            key, _, value = param.partition("=")
            parsed[key.strip().lower()] = value.strip().strip('"')
        yield name.lower(), parsed


def _weight(params: dict[str, str]) -> float:
    """The `q` parameter (1 when absent); one that is not a number refuses, as a weight of 0."""
    try:
        return float(params.get("q", "1"))
    except ValueError:
        return 0.0
