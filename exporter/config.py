"""The exporter's configuration: typed, frozen dataclasses checked by hand from YAML.

`load(path)` returns a `Config` or raises `ConfigError` listing every problem at once, one line each, each
naming the key path (`targets[0].assessments[1].id: not a UUID`). A target polls the `sources` it names: Audit
Manager (its assessments), AWS Config (its `conformance_packs`) and Security Hub CSPM (its `standards`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar, cast

import yaml

from exporter.tags import label_name

UUID_PATTERN = re.compile(r"^[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$")
REGION_PATTERN = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
ROLE_ARN_PATTERN = re.compile(r"^arn:aws[-a-z]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
_SESSION_NAME_PATTERN = re.compile(r"^[\w+=,.@-]{2,64}$")
_EXTERNAL_ID_PATTERN = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
DEFAULT_SESSION_NAME = "auditmanager-exporter"
_DURATION_PATTERN = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
_UNIT_SECONDS = (3600, 60, 1, 0.001)
MAX_INTERVAL_SECONDS = 30 * 86400
MAX_TIMEOUT_SECONDS = 3600
# Far beyond what AWS's 20 requests/s can use; botocore preallocates a connection slot for each.
MAX_CONCURRENCY = 1000
AUDIT_MANAGER = "auditmanager"
AWS_CONFIG = "config"
SECURITY_HUB = "securityhub"
SOURCES = (AUDIT_MANAGER, AWS_CONFIG, SECURITY_HUB)
CONFORMANCE_PACK_PATTERN = re.compile(r"^[a-zA-Z][-a-zA-Z0-9]{0,255}$")
AGGREGATOR_PATTERN = re.compile(r"[\w\-]{1,256}", re.ASCII)
# Security Hub: a standard's id as findings name it, and the requests per second of each operation the source calls
# ("default": any other), AWS's quotas per account and region (each allows bursts of twice its rate).
STANDARD_ID_PATTERN = re.compile(r"(standards|ruleset)/[a-z0-9][a-z0-9-]*/v/\d+(\.\d+)*")
SECURITYHUB_RATE_LIMITS = MappingProxyType({"GetFindings": 3.0, "default": 10.0})
SECURITYHUB_OPERATIONS = (
    "DescribeHub",
    "GetEnabledStandards",
    "DescribeStandards",
    "DescribeStandardsControls",
    "ListSecurityControlDefinitions",
    "BatchGetStandardsControlAssociations",
    "GetFindings",
)


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
    if seconds > MAX_INTERVAL_SECONDS:
        raise ValueError("must be at most 720h (30 days)")
    return seconds


def _positive_duration(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("must be greater than 0")
    if seconds > MAX_TIMEOUT_SECONDS:
        raise ValueError("must be at most 1h")
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


@dataclass(frozen=True)
class AssessmentConfig:
    id: str
    name: str | None = None


@dataclass(frozen=True)
class ConformancePacksConfig:
    """The AWS Config conformance packs a target polls: `names`, and with `discover` every pack of the account and
    region whose name passes `include` and `exclude`."""

    names: tuple[str, ...] = ()
    discover: bool = False
    include: re.Pattern[str] | None = None
    exclude: re.Pattern[str] | None = None

    def wants(self, name: str) -> bool:
        """Whether a discovered pack of this name passes `include` and `exclude`."""
        return (self.include is None or self.include.search(name) is not None) and (
            self.exclude is None or self.exclude.search(name) is None
        )


@dataclass(frozen=True)
class StandardsConfig:
    """The Security Hub standards a target polls: `names` (standard ids), and with `discover` every enabled standard
    whose id passes `include` and `exclude`. A target polling Security Hub without `standards` discovers them all."""

    names: tuple[str, ...] = ()
    discover: bool = False
    include: re.Pattern[str] | None = None
    exclude: re.Pattern[str] | None = None

    def wants(self, standard_id: str) -> bool:
        """Whether a discovered standard of this id passes `include` and `exclude`."""
        return (self.include is None or self.include.search(standard_id) is not None) and (
            self.exclude is None or self.exclude.search(standard_id) is None
        )


EVERY_ENABLED_STANDARD = StandardsConfig(discover=True)


@dataclass(frozen=True)
class TargetConfig:
    """A target as configured; `regions` makes it one target per region (see `Config.expanded_targets`)."""

    region: str | None = None
    regions: tuple[str, ...] | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    session_name: str | None = None
    assessments: tuple[AssessmentConfig, ...] = ()
    discover: bool = False
    include: str | None = None
    exclude: str | None = None
    control_domains: bool = False
    max_concurrency: int | None = None
    max_requests_per_second: float | None = None
    sources: tuple[str, ...] = (AUDIT_MANAGER,)
    conformance_packs: ConformancePacksConfig | None = None
    aggregator: str | None = None
    standards: StandardsConfig = EVERY_ENABLED_STANDARD


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
    sources: tuple[str, ...] = (AUDIT_MANAGER,)
    conformance_packs: ConformancePacksConfig | None = None
    aggregator: str | None = None
    standards: StandardsConfig = EVERY_ENABLED_STANDARD

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


@dataclass(frozen=True)
class Config:
    targets: tuple[TargetConfig, ...]
    poll_interval: float = 900.0
    discovery_interval: float = 3600.0
    max_concurrency: int = 4
    max_requests_per_second: float = 5.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 3
    max_control_domain_series: int = 10000
    max_conformance_pack_rule_series: int = 10000
    max_securityhub_control_series: int = 10000
    securityhub_rate_limits: Mapping[str, float] = field(default_factory=lambda: SECURITYHUB_RATE_LIMITS)
    max_workers: int = 32
    # Tag keys published as labels of auditmanager_assessment_tags, in config order; none: no such metric.
    tag_labels: tuple[str, ...] = ()

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
                sources=target.sources,
                conformance_packs=target.conformance_packs,
                aggregator=target.aggregator,
                standards=target.standards,
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
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError([yaml_problem(exc)]) from None
    if raw is None:
        raise ConfigError(["the file is empty (comments only count as empty); start from config.example.yaml"])
    if not isinstance(raw, dict):
        raise ConfigError(["the top level must be a mapping of config keys"])
    return parse(raw)


def parse(raw: dict[str, Any]) -> Config:
    """Validate an already-decoded config mapping."""
    reader = _Reader()
    fields = reader.mapping(raw, "", _CONFIG_FIELDS)
    raw_targets = reader.items(fields.pop("targets"), "targets", required=True) if "targets" in fields else []
    targets = tuple(
        reader.build(TargetConfig, target, f"targets[{t}]", _TARGET_FIELDS) for t, target in enumerate(raw_targets)
    )
    reader.problems += [*_target_problems(raw), *_duplicate_ids(raw)]
    if reader.problems:
        raise ConfigError(reader.problems)
    return Config(targets=targets, **fields)


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
        yield from _source_problems(path, target, has)
        if {"region", "regions"} <= has:
            yield f"{path}.regions: give either region or regions, not both"
        elif not {"region", "regions"} & has:
            yield f"{path}.region: required (or regions, a list of regions)"
        polls_assessments = AUDIT_MANAGER in _raw_sources(target)
        if polls_assessments and not target.get("assessments") and target.get("discover") is not True:
            problem = "must not be empty" if "assessments" in has else "required"
            yield f"{path}.assessments: {problem} unless discover is true"
        for key in ("external_id", "session_name"):
            if key in has and "role_arn" not in has:
                yield f"{path}.{key}: needs role_arn"
        for key in ("include", "exclude"):
            if polls_assessments and key in has and target.get("discover") is not True:
                yield f"{path}.{key}: needs discover: true (it filters discovered assessments)"
        regions = target.get("regions")
        if isinstance(regions, list):
            for r, region in enumerate(regions):
                if isinstance(region, str) and region in regions[:r]:
                    yield f"{path}.regions[{r}]: duplicate of regions[{regions.index(region)}] ({region})"


def _raw_sources(target: dict[str, Any]) -> list[object]:
    sources = target.get("sources")
    return sources if isinstance(sources, list) else [AUDIT_MANAGER]


_AUDIT_MANAGER_KEYS = ("assessments", "discover", "include", "exclude", "control_domains")


def _source_problems(path: str, target: dict[str, Any], has: set[str]) -> Iterable[str]:
    """Keys of a source the target does not poll, and the conformance packs the AWS Config source needs."""
    sources = _raw_sources(target)
    if AUDIT_MANAGER not in sources:
        for key in _AUDIT_MANAGER_KEYS:
            if key in has:
                yield f"{path}.{key}: needs {AUDIT_MANAGER} in sources"
    if AWS_CONFIG in sources and "conformance_packs" not in has:
        yield f"{path}.conformance_packs: required when sources include {AWS_CONFIG}"
    for key in ("conformance_packs", "aggregator"):
        if AWS_CONFIG not in sources and key in has:
            yield f"{path}.{key}: needs {AWS_CONFIG} in sources"
    if SECURITY_HUB not in sources and "standards" in has:
        yield f"{path}.standards: needs {SECURITY_HUB} in sources"


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


def yaml_problem(exc: yaml.YAMLError | RecursionError) -> str:
    """One line saying where the YAML is malformed and why, without quoting the file (which may hold secrets)."""
    if isinstance(exc, RecursionError):
        return "malformed YAML: nested too deeply"
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "not valid YAML"
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"malformed YAML{where}: {problem}"


# A field: its check (the value, and the path to name in a problem) and its default (_REQUIRED if none).
_Check = Callable[["_Reader", object, str], object]
_REQUIRED = object()
_T = TypeVar("_T")


class _Reader:
    """Checks raw YAML values against the fields below, collecting every problem instead of stopping at one."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def mapping(self, value: object, path: str, fields: dict[str, tuple[_Check, object]]) -> dict[str, Any]:
        """The checked fields of a mapping; unknown keys, missing ones and bad values become problems."""
        if not isinstance(value, dict):
            self.fail(path, "must be a mapping")
            return {}
        prefix = f"{path}." if path else ""
        checked: dict[str, Any] = {}
        for key, item in value.items():
            if key not in fields:
                self.fail(f"{prefix}{key}", "unknown key")
                continue
            check, default = fields[key]
            if item is None and default is None:
                continue
            before = len(self.problems)
            result = check(self, item, f"{prefix}{key}")
            if len(self.problems) == before:
                checked[key] = result
        for key, (_, default) in fields.items():
            if default is _REQUIRED and key not in value:
                self.fail(f"{prefix}{key}", "required")
        return checked

    def build(self, kind: Callable[..., _T], value: object, path: str, fields: dict[str, tuple[_Check, object]]) -> _T:
        """`kind` made of the checked fields; only meaningful when no problem was found (else `parse` raises)."""
        before = len(self.problems)
        checked = self.mapping(value, path, fields)
        return kind(**checked) if len(self.problems) == before else cast(_T, None)

    def items(self, value: object, path: str, *, required: bool = False) -> list[Any]:
        if value is None and not required:
            return []
        if not isinstance(value, list):
            self.fail(path, "must be a list")
            return []
        if required and not value:
            self.fail(path, "must not be empty")
        return value


def _string(*, pattern: Callable[[str], str] | None = None, max_length: int | None = None) -> _Check:
    def check(reader: _Reader, value: object, path: str) -> object:
        if not isinstance(value, str):
            reader.fail(path, "must be a string")
            return None
        if not value:
            reader.fail(path, "must not be empty")
            return None
        if max_length is not None and len(value) > max_length:
            reader.fail(path, f"longer than {max_length} characters")
            return None
        try:
            return pattern(value) if pattern else value
        except ValueError as error:
            reader.fail(path, str(error))
            return None

    return check


def _number(kind: type, *, minimum: float = 0, inclusive: bool = False, maximum: float | None = None) -> _Check:
    def check(reader: _Reader, value: object, path: str) -> object:
        allowed = (int,) if kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, allowed):
            reader.fail(path, "must be an integer" if kind is int else "must be a number")
            return None
        if not math.isfinite(value):
            reader.fail(path, "must be a finite number")
            return None
        if value < minimum or (value == minimum and not inclusive):
            relation = "greater than or equal to" if inclusive else "greater than"
            reader.fail(path, f"must be {relation} {minimum}")
            return None
        if maximum is not None and value > maximum:
            reader.fail(path, f"must be less than or equal to {maximum}")
            return None
        return kind(value)

    return check


def _duration(minimum: Callable[[float], float]) -> _Check:
    def check(reader: _Reader, value: object, path: str) -> object:
        try:
            return minimum(parse_duration(value))
        except ValueError as error:
            reader.fail(path, str(error))
            return None

    return check


def _boolean(reader: _Reader, value: object, path: str) -> object:
    if not isinstance(value, bool):
        reader.fail(path, "must be true or false")
    return value


def _regions(reader: _Reader, value: object, path: str) -> object:
    regions = reader.items(value, path, required=True)
    return tuple(_string(pattern=_region)(reader, region, f"{path}[{r}]") for r, region in enumerate(regions))


def _assessments(reader: _Reader, value: object, path: str) -> object:
    return tuple(
        reader.build(AssessmentConfig, item, f"{path}[{a}]", _ASSESSMENT_FIELDS)
        for a, item in enumerate(reader.items(value, path))
    )


def _tag_labels(reader: _Reader, value: object, path: str) -> object:
    """Tag keys as AWS allows them (1 to 128 characters), no two of which become the same label."""
    keys = tuple(
        _string(max_length=128)(reader, key, f"{path}[{k}]") for k, key in enumerate(reader.items(value, path))
    )
    labels: dict[str, int] = {}
    for k, key in enumerate(keys):
        if not isinstance(key, str):
            continue
        first = labels.setdefault(label_name(key), k)
        if first != k:
            reader.fail(
                f"{path}[{k}]",
                f"{key!r} and tag_labels[{first}] {keys[first]!r} both become the label {label_name(key)}",
            )
    return keys


def _sources(reader: _Reader, value: object, path: str) -> object:
    sources = reader.items(value, path, required=True)
    for s, source in enumerate(sources):
        if source not in SOURCES:
            reader.fail(f"{path}[{s}]", f"unknown source {source!r} (known: {', '.join(SOURCES)})")
        elif source in sources[:s]:
            reader.fail(f"{path}[{s}]", f"duplicate of {path}[{sources.index(source)}] ({source})")
    return tuple(sources)


def _pack_name(value: str) -> str:
    if not CONFORMANCE_PACK_PATTERN.match(value):
        raise ValueError(f"not a conformance pack name (a letter, then letters, digits or -): {value!r}")
    return value


def _aggregator(value: str) -> str:
    if not AGGREGATOR_PATTERN.fullmatch(value):
        raise ValueError(f"not a configuration aggregator name (1 to 256 letters, digits, _ or -): {value!r}")
    return value


def _names(pattern: Callable[[str], str]) -> _Check:
    """A list of names that each pass `pattern`, none twice."""

    def check(reader: _Reader, value: object, path: str) -> object:
        names = reader.items(value, path)
        checked = tuple(_string(pattern=pattern)(reader, name, f"{path}[{n}]") for n, name in enumerate(names))
        for n, name in enumerate(names):
            if name in names[:n]:
                reader.fail(f"{path}[{n}]", f"duplicate of {path}[{names.index(name)}] ({name})")
        return checked

    return check


def _pattern(reader: _Reader, value: object, path: str) -> object:
    checked = _string(pattern=_regex)(reader, value, path)
    return re.compile(checked) if isinstance(checked, str) else None


def _conformance_packs(reader: _Reader, value: object, path: str) -> object:
    """A list of pack names, or a mapping of names, discover, include and exclude."""
    if isinstance(value, list):
        value = {"names": value}
    fields = _selection(reader, value, path, _CONFORMANCE_PACK_FIELDS, "conformance pack")
    return None if fields is None else ConformancePacksConfig(**fields)


def _selection(
    reader: _Reader, value: object, path: str, fields: dict[str, tuple[_Check, object]], what: str
) -> dict[str, Any] | None:
    """The checked `names`, `discover`, `include` and `exclude` of a selection of `what`s; None if any is bad."""
    before = len(reader.problems)
    checked = reader.mapping(value, path, fields)
    if len(reader.problems) > before:
        return None
    if not checked.get("names") and not checked.get("discover"):
        reader.fail(path, f"name at least one {what}, or set discover: true")
    for key in ("include", "exclude"):
        if key in checked and not checked.get("discover"):
            reader.fail(f"{path}.{key}", f"needs discover: true (it filters discovered {what}s)")
    return checked


def _standard_id(value: str) -> str:
    if not STANDARD_ID_PATTERN.fullmatch(value):
        raise ValueError(f"not a Security Hub standard id (like standards/pci-dss/v/3.2.1): {value!r}")
    return value


def _standards(reader: _Reader, value: object, path: str) -> object:
    """A list of standard ids, or a mapping of names, discover, include and exclude."""
    if isinstance(value, list):
        names = _names(_standard_id)(reader, value, path)
        return StandardsConfig(names=cast(tuple[str, ...], names)) if value else _standards(reader, {"names": []}, path)
    fields = _selection(reader, value, path, _STANDARDS_FIELDS, "standard")
    return None if fields is None else StandardsConfig(**fields)


def _rate_limits(reader: _Reader, value: object, path: str) -> object:
    """Requests per second by Security Hub operation (or "default"), over SECURITYHUB_RATE_LIMITS."""
    fields = reader.mapping(value, path, dict.fromkeys((*SECURITYHUB_OPERATIONS, "default"), (_number(float), None)))
    return MappingProxyType({**SECURITYHUB_RATE_LIMITS, **fields})


_STANDARDS_FIELDS: dict[str, tuple[_Check, object]] = {
    "names": (_names(_standard_id), ()),
    "discover": (_boolean, False),
    "include": (_pattern, None),
    "exclude": (_pattern, None),
}
_CONFORMANCE_PACK_FIELDS: dict[str, tuple[_Check, object]] = {
    "names": (_names(_pack_name), ()),
    "discover": (_boolean, False),
    "include": (_pattern, None),
    "exclude": (_pattern, None),
}
_ASSESSMENT_FIELDS: dict[str, tuple[_Check, object]] = {
    "id": (_string(pattern=_uuid), _REQUIRED),
    "name": (_string(max_length=300), None),
}
_TARGET_FIELDS: dict[str, tuple[_Check, object]] = {
    "region": (_string(pattern=_region), None),
    "regions": (_regions, None),
    "endpoint_url": (_string(pattern=_http_url), None),
    "profile": (_string(), None),
    "role_arn": (_string(pattern=_role_arn), None),
    "external_id": (_string(pattern=_external_id), None),
    "session_name": (_string(pattern=_session_name), None),
    "assessments": (_assessments, ()),
    "discover": (_boolean, False),
    "include": (_string(pattern=_regex), None),
    "exclude": (_string(pattern=_regex), None),
    "control_domains": (_boolean, False),
    "max_concurrency": (_number(int, maximum=MAX_CONCURRENCY), None),
    "max_requests_per_second": (_number(float), None),
    "sources": (_sources, None),
    "conformance_packs": (_conformance_packs, None),
    "aggregator": (_string(pattern=_aggregator), None),
    "standards": (_standards, None),
}
_CONFIG_FIELDS: dict[str, tuple[_Check, object]] = {
    "poll_interval": (_duration(_at_least_one_second), 900.0),
    "discovery_interval": (_duration(_at_least_one_second), 3600.0),
    "max_concurrency": (_number(int, maximum=MAX_CONCURRENCY), 4),
    "max_requests_per_second": (_number(float), 5.0),
    "connect_timeout": (_duration(_positive_duration), 5.0),
    "read_timeout": (_duration(_positive_duration), 30.0),
    "max_attempts": (_number(int, maximum=10), 3),
    "max_control_domain_series": (_number(int, inclusive=True), 10000),
    "max_conformance_pack_rule_series": (_number(int, inclusive=True), 10000),
    "max_securityhub_control_series": (_number(int, inclusive=True), 10000),
    "securityhub_rate_limits": (_rate_limits, None),
    "max_workers": (_number(int, minimum=2, inclusive=True, maximum=MAX_CONCURRENCY), 32),
    "tag_labels": (_tag_labels, ()),
    "targets": (lambda reader, value, path: value, _REQUIRED),
}
