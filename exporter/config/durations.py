"""Prometheus-style durations (`90s`, `15m`, `1h30m`, `500ms`) and the ranges the config allows for them."""

from __future__ import annotations

import re

_DURATION_PATTERN = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
_UNIT_SECONDS = (3600, 60, 1, 0.001)
MAX_INTERVAL_SECONDS = 30 * 86400
MAX_TIMEOUT_SECONDS = 3600


def parse_duration(value: object) -> float:
    """Parse a Prometheus-style duration (`90s`, `15m`, `1h30m`, `500ms`) into seconds."""
    if not isinstance(value, str):
        raise ValueError("must be a duration with a unit, like 90s, 15m or 1h")
    match = _DURATION_PATTERN.match(value.strip())
    if not value.strip() or match is None:
        raise ValueError(f"not a duration: {value!r} (use a unit, like 90s, 15m or 1h)")
    return sum(int(part) * unit for part, unit in zip(match.groups(), _UNIT_SECONDS, strict=True) if part)


def interval(seconds: float) -> float:
    """An interval between polls or listings: from 1s to 720h."""
    if seconds < 1:
        raise ValueError("must be at least 1s")
    if seconds > MAX_INTERVAL_SECONDS:
        raise ValueError("must be at most 720h (30 days)")
    return seconds


def timeout(seconds: float) -> float:
    """A timeout: more than 0, at most 1h."""
    if seconds <= 0:
        raise ValueError("must be greater than 0")
    if seconds > MAX_TIMEOUT_SECONDS:
        raise ValueError("must be at most 1h")
    return seconds
