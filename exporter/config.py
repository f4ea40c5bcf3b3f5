"""The exporter's configuration: a typed, frozen model loaded from YAML.

`load(path)` returns a `Config` or raises `ConfigError` listing every problem at once, one line each, each
naming the key path (`targets[0].assessments[1].id: not a UUID`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

UUID_PATTERN = re.compile(r"^[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$")
REGION_PATTERN = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_DURATION_PATTERN = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
_UNIT_SECONDS = (3600, 60, 1, 0.001)


class ConfigError(Exception):
    """The config could not be loaded; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_duration(value: object) -> float:
    """Parse a Prometheus-style duration (`90s`, `15m`, `1h30m`, `500ms`) into seconds."""
    if not isinstance(value, str):
        raise ValueError("must be a duration with a unit, like 90s, 15m or 1h")
    match = _DURATION_PATTERN.match(value.strip())
    if not value.strip() or match is None:
        raise ValueError(f"not a duration: {value!r} (use a unit, like 90s, 15m or 1h)")
    return sum(int(part) * unit for part, unit in zip(match.groups(), _UNIT_SECONDS, strict=True) if part)


def _at_least_one_second(seconds: float) -> float:
    if seconds < 1:
        raise ValueError("must be at least 1s")
    return seconds


def _positive_duration(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("must be greater than 0")
    return seconds


def _uuid(value: str) -> str:
    if not UUID_PATTERN.match(value):
        raise ValueError("not a UUID (lowercase, like 0a1b2c3d-0000-4000-8000-000000000000)")
    return value


def _region(value: str) -> str:
    if not REGION_PATTERN.match(value):
        raise ValueError(f"not an AWS region name: {value!r}")
    return value


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value


Interval = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_at_least_one_second)]
Timeout = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive_duration)]
AssessmentId = Annotated[str, AfterValidator(_uuid)]
Region = Annotated[str, AfterValidator(_region)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class AssessmentConfig(_Model):
    id: AssessmentId
    name: Annotated[str, Field(min_length=1, max_length=300)] | None = None


class TargetConfig(_Model):
    region: Region
    endpoint_url: HttpUrl | None = None
    profile: Annotated[str, Field(min_length=1)] | None = None
    assessments: Annotated[tuple[AssessmentConfig, ...], Field(min_length=1, strict=False)]


class Config(_Model):
    poll_interval: Interval = 900.0
    max_concurrency: Annotated[int, Field(gt=0)] = 4
    max_requests_per_second: Annotated[float, Field(gt=0)] = 5.0
    connect_timeout: Timeout = 5.0
    read_timeout: Timeout = 30.0
    max_attempts: Annotated[int, Field(gt=0, le=10)] = 3
    targets: Annotated[tuple[TargetConfig, ...], Field(min_length=1, strict=False)]


def load(path: str | Path) -> Config:
    """Read and validate the YAML config at `path`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read: {exc}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"malformed YAML: {_one_line(str(exc))}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(["the top level must be a mapping of config keys"])
    return parse(raw)


def parse(raw: dict[str, Any]) -> Config:
    """Validate an already-decoded config mapping."""
    problems = list(_duplicate_ids(raw))
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors() if not _follows_from_others(error)] + problems
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def _duplicate_ids(raw: dict[str, Any]) -> Iterable[str]:
    """Duplicate assessment ids across all targets, checked on the raw data so they are reported alongside
    every other problem."""
    seen: dict[str, str] = {}
    targets = raw.get("targets")
    for t, target in enumerate(targets if isinstance(targets, list) else []):
        assessments = target.get("assessments") if isinstance(target, dict) else None
        for a, assessment in enumerate(assessments if isinstance(assessments, list) else []):
            assessment_id = assessment.get("id") if isinstance(assessment, dict) else None
            if not isinstance(assessment_id, str):
                continue
            path = f"targets[{t}].assessments[{a}].id"
            if assessment_id in seen:
                yield f"{path}: duplicate of {seen[assessment_id]} ({assessment_id})"
            else:
                seen[assessment_id] = path


def _follows_from_others(error: Any) -> bool:
    """A list reported too short only because its items failed; those failures are reported already."""
    return error["type"] == "too_short" and bool(error["input"])


_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown key",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "model_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}


def _describe(error: Any) -> str:
    path = _path(error["loc"])
    kind = error["type"]
    if kind in _MESSAGES:
        message = _MESSAGES[kind]
    elif kind == "value_error":
        message = str(error["ctx"]["error"])
    elif kind in ("greater_than", "greater_than_equal", "less_than_equal"):
        message = error["msg"].replace("Input should be", "must be")
    elif kind in ("too_short", "string_too_short"):
        message = "must not be empty"
    elif kind == "string_too_long":
        message = f"longer than {error['ctx']['max_length']} characters"
    else:
        message = error["msg"]
    return f"{path}: {message}" if path else message


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _one_line(text: str) -> str:
    return " ".join(text.split())
