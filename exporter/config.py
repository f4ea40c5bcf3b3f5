"""The exporter's configuration: a typed, frozen model loaded from YAML.

`load(path)` returns a `Config` or raises `ConfigError` listing every problem at once, one line each, each
naming the key path (`targets[0].assessments[1].id: not a UUID`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

UUID_PATTERN = re.compile(r"^[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$")
REGION_PATTERN = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
ROLE_ARN_PATTERN = re.compile(r"^arn:aws[-a-z]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
_SESSION_NAME_PATTERN = re.compile(r"^[\w+=,.@-]{2,64}$")
_EXTERNAL_ID_PATTERN = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
DEFAULT_SESSION_NAME = "auditmanager-exporter"
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


def _role_arn(value: str) -> str:
    if not ROLE_ARN_PATTERN.match(value):
        raise ValueError(f"not an IAM role ARN (like arn:aws:iam::123456789012:role/name): {value!r}")
    return value


def _session_name(value: str) -> str:
    if not _SESSION_NAME_PATTERN.match(value):
        raise ValueError("must be 2 to 64 letters, digits or +=,.@_- characters")
    return value


def _external_id(value: str) -> str:
    if not _EXTERNAL_ID_PATTERN.match(value):
        raise ValueError("must be 2 to 1224 letters, digits or +=,.@:/_- characters")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return value


Interval = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_at_least_one_second)]
Timeout = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive_duration)]
AssessmentId = Annotated[str, AfterValidator(_uuid)]
Region = Annotated[str, AfterValidator(_region)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
RoleArn = Annotated[str, AfterValidator(_role_arn)]
SessionName = Annotated[str, AfterValidator(_session_name)]
ExternalId = Annotated[str, AfterValidator(_external_id)]
Regex = Annotated[str, AfterValidator(_regex)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class AssessmentConfig(_Model):
    id: AssessmentId
    name: Annotated[str, Field(min_length=1, max_length=300)] | None = None


class TargetConfig(_Model):
    """A target as configured; `regions` makes it one target per region (see `Config.expanded_targets`).

    Rules between keys (region xor regions, assessments or discover, ...) are checked by `_target_problems`.
    """

    region: Region | None = None
    regions: Annotated[tuple[Region, ...], Field(min_length=1, strict=False)] | None = None
    endpoint_url: HttpUrl | None = None
    profile: Annotated[str, Field(min_length=1)] | None = None
    role_arn: RoleArn | None = None
    external_id: ExternalId | None = None
    session_name: SessionName | None = None
    assessments: Annotated[tuple[AssessmentConfig, ...], Field(strict=False)] = ()
    discover: bool = False
    include: Regex | None = None
    exclude: Regex | None = None
    control_domains: bool = False
    max_concurrency: Annotated[int, Field(gt=0)] | None = None
    max_requests_per_second: Annotated[float, Field(gt=0)] | None = None


@dataclass(frozen=True)
class Target:
    """One account and region to poll: a configured target for one of its regions, with its limits resolved."""

    region: str
    assessments: tuple[AssessmentConfig, ...]
    max_concurrency: int
    max_requests_per_second: float
    endpoint_url: str | None = None
    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    session_name: str = DEFAULT_SESSION_NAME
    discover: bool = False
    include: re.Pattern[str] | None = None
    exclude: re.Pattern[str] | None = None
    control_domains: bool = False

    @property
    def role_account_id(self) -> str | None:
        """The account of `role_arn`, which is the account the target polls."""
        match = ROLE_ARN_PATTERN.match(self.role_arn) if self.role_arn else None
        return match.group(1) if match else None

    def wants(self, name: str) -> bool:
        """Whether a discovered assessment of this name passes `include` and `exclude`."""
        return (self.include is None or self.include.search(name) is not None) and (
            self.exclude is None or self.exclude.search(name) is None
        )


class Config(_Model):
    poll_interval: Interval = 900.0
    discovery_interval: Interval = 3600.0
    max_concurrency: Annotated[int, Field(gt=0)] = 4
    max_requests_per_second: Annotated[float, Field(gt=0)] = 5.0
    connect_timeout: Timeout = 5.0
    read_timeout: Timeout = 30.0
    max_attempts: Annotated[int, Field(gt=0, le=10)] = 3
    max_control_domain_series: Annotated[int, Field(ge=0)] = 10000
    targets: Annotated[tuple[TargetConfig, ...], Field(min_length=1, strict=False)]

    def expanded_targets(self) -> tuple[Target, ...]:
        """Every configured target once per region, in config order."""
        return tuple(
            Target(
                region=region,
                assessments=target.assessments,
                max_concurrency=target.max_concurrency or self.max_concurrency,
                max_requests_per_second=target.max_requests_per_second or self.max_requests_per_second,
                endpoint_url=target.endpoint_url,
                profile=target.profile,
                role_arn=target.role_arn,
                external_id=target.external_id,
                session_name=target.session_name or DEFAULT_SESSION_NAME,
                discover=target.discover,
                include=re.compile(target.include) if target.include else None,
                exclude=re.compile(target.exclude) if target.exclude else None,
                control_domains=target.control_domains,
            )
            for target in self.targets
            for region in (target.regions or (target.region or "",))
        )


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
    problems = [*_target_problems(raw), *_duplicate_ids(raw)]
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors() if not _follows_from_others(error)] + problems
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def _raw_targets(raw: dict[str, Any]) -> Iterable[tuple[int, dict[str, Any]]]:
    targets = raw.get("targets")
    for t, target in enumerate(targets if isinstance(targets, list) else []):
        if isinstance(target, dict):
            yield t, target


def _target_problems(raw: dict[str, Any]) -> Iterable[str]:
    """Rules between the keys of a target, checked on the raw data so they are reported alongside every other
    problem."""
    for t, target in _raw_targets(raw):
        path = f"targets[{t}]"
        has = {key for key, value in target.items() if value is not None}
        if {"region", "regions"} <= has:
            yield f"{path}.regions: give either region or regions, not both"
        elif not {"region", "regions"} & has:
            yield f"{path}.region: required (or regions, a list of regions)"
        if not target.get("assessments") and target.get("discover") is not True:
            problem = "must not be empty" if "assessments" in has else "required"
            yield f"{path}.assessments: {problem} unless discover is true"
        for key in ("external_id", "session_name"):
            if key in has and "role_arn" not in has:
                yield f"{path}.{key}: needs role_arn"
        for key in ("include", "exclude"):
            if key in has and target.get("discover") is not True:
                yield f"{path}.{key}: needs discover: true (it filters discovered assessments)"
        regions = target.get("regions")
        for r, region in enumerate(regions if isinstance(regions, list) else []):
            if isinstance(region, str) and region in regions[:r]:
                yield f"{path}.regions[{r}]: duplicate of regions[{regions.index(region)}] ({region})"


def _duplicate_ids(raw: dict[str, Any]) -> Iterable[str]:
    """An assessment id listed twice for the same region and credentials, checked on the raw data so it is
    reported alongside every other problem. The same id under other credentials or regions is another target's."""
    seen: dict[tuple[object, ...], str] = {}
    for t, target in _raw_targets(raw):
        regions = target.get("regions") if target.get("regions") is not None else [target.get("region")]
        if not isinstance(regions, list):
            continue
        credentials = tuple(str(target.get(key)) for key in ("endpoint_url", "profile", "role_arn"))
        assessments = target.get("assessments")
        for a, assessment in enumerate(assessments if isinstance(assessments, list) else []):
            assessment_id = assessment.get("id") if isinstance(assessment, dict) else None
            if not isinstance(assessment_id, str):
                continue
            path = f"targets[{t}].assessments[{a}].id"
            for region in sorted({str(region) for region in regions}):
                key = (*credentials, region, assessment_id)
                if key in seen:
                    yield f"{path}: duplicate of {seen[key]} ({assessment_id})"
                    break
                seen[key] = path


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
