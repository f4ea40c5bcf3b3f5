"""The config's keys: for each record, which keys it has and how each value is checked. Defaults come from the
records themselves (exporter.config.model)."""

from __future__ import annotations

import re
from typing import cast

from exporter.config import durations, values
from exporter.config.model import (
    SECURITYHUB_OPERATIONS,
    SECURITYHUB_RATE_LIMITS,
    SOURCES,
    AssessmentConfig,
    Config,
    ConformancePacksConfig,
    StandardsConfig,
    TargetConfig,
)
from exporter.config.reader import Reader, boolean, duration, fields_of, names, number, selection, string
from exporter.tags import label_name

# Far beyond what AWS's 20 requests/s can use; botocore preallocates a connection slot for each.
MAX_CONCURRENCY = 1000


def _regions(reader: Reader, value: object, path: str) -> object:
    regions = reader.items(value, path, required=True)
    return tuple(string(pattern=values.region)(reader, region, f"{path}[{r}]") for r, region in enumerate(regions))


def _assessments(reader: Reader, value: object, path: str) -> object:
    return tuple(
        reader.build(AssessmentConfig, item, f"{path}[{a}]", ASSESSMENT_FIELDS)
        for a, item in enumerate(reader.items(value, path))
    )


def _tag_labels(reader: Reader, value: object, path: str) -> object:
    """Tag keys as AWS allows them (1 to 128 characters), no two of which become the same label."""
    keys = tuple(string(max_length=128)(reader, key, f"{path}[{k}]") for k, key in enumerate(reader.items(value, path)))
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


def _sources(reader: Reader, value: object, path: str) -> object:
    sources = reader.items(value, path, required=True)
    for s, source in enumerate(sources):
        if source not in SOURCES:
            reader.fail(f"{path}[{s}]", f"unknown source {source!r} (known: {', '.join(SOURCES)})")
        elif source in sources[:s]:
            reader.fail(f"{path}[{s}]", f"duplicate of {path}[{sources.index(source)}] ({source})")
    return tuple(sources)


def _pattern(reader: Reader, value: object, path: str) -> object:
    checked = string(pattern=values.regex)(reader, value, path)
    return re.compile(checked) if isinstance(checked, str) else None


def _conformance_packs(reader: Reader, value: object, path: str) -> object:
    """A list of pack names, or a mapping of names, discover, include and exclude."""
    if isinstance(value, list):
        value = {"names": value}
    fields = selection(reader, value, path, CONFORMANCE_PACK_FIELDS, "conformance pack")
    return None if fields is None else ConformancePacksConfig(**fields)


def _standards(reader: Reader, value: object, path: str) -> object:
    """A list of Security Hub standard ids, or a mapping of names, discover, include and exclude."""
    if isinstance(value, list) and value:
        return StandardsConfig(names=cast(tuple[str, ...], names(values.standard_id)(reader, value, path)))
    fields = selection(
        reader, {"names": value} if isinstance(value, list) else value, path, STANDARDS_FIELDS, "standard"
    )
    return None if fields is None else StandardsConfig(**fields)


def _rate_limits(reader: Reader, value: object, path: str) -> object:
    """Requests per second by Security Hub operation (or "default"), over SECURITYHUB_RATE_LIMITS."""
    given = reader.mapping(value, path, {key: (number(float), None) for key in (*SECURITYHUB_OPERATIONS, "default")})
    return tuple({**dict(SECURITYHUB_RATE_LIMITS), **given}.items())


CONFORMANCE_PACK_FIELDS = fields_of(
    ConformancePacksConfig,
    {"names": names(values.pack_name), "discover": boolean, "include": _pattern, "exclude": _pattern},
)
STANDARDS_FIELDS = fields_of(
    StandardsConfig,
    {"names": names(values.standard_id), "discover": boolean, "include": _pattern, "exclude": _pattern},
)
ASSESSMENT_FIELDS = fields_of(
    AssessmentConfig,
    {"id": string(pattern=values.uuid), "name": string(max_length=300)},
)
TARGET_FIELDS = fields_of(
    TargetConfig,
    {
        "region": string(pattern=values.region),
        "regions": _regions,
        "endpoint_url": string(pattern=values.http_url),
        "profile": string(),
        "role_arn": string(pattern=values.role_arn),
        "external_id": string(pattern=values.external_id),
        "session_name": string(pattern=values.session_name),
        "assessments": _assessments,
        "discover": boolean,
        "include": string(pattern=values.regex),
        "exclude": string(pattern=values.regex),
        "control_domains": boolean,
        "max_concurrency": number(int, maximum=MAX_CONCURRENCY),
        "max_requests_per_second": number(float),
        "sources": _sources,
        "conformance_packs": _conformance_packs,
        "aggregator": string(pattern=values.aggregator),
        "standards": _standards,
    },
)
CONFIG_FIELDS = fields_of(
    Config,
    {
        "poll_interval": duration(durations.interval),
        "discovery_interval": duration(durations.interval),
        "max_concurrency": number(int, maximum=MAX_CONCURRENCY),
        "max_requests_per_second": number(float),
        "connect_timeout": duration(durations.timeout),
        "read_timeout": duration(durations.timeout),
        "max_attempts": number(int, maximum=10),
        "max_control_domain_series": number(int, inclusive=True),
        "max_conformance_pack_rule_series": number(int, inclusive=True),
        "max_securityhub_control_series": number(int, inclusive=True),
        "securityhub_rate_limits": _rate_limits,
        "max_workers": number(int, minimum=2, inclusive=True, maximum=MAX_CONCURRENCY),
        "tag_labels": _tag_labels,
        # Checked one by one by `parse`, which builds each target.
        "targets": lambda reader, value, path: value,
    },
)
