"""The exporter's configuration: typed, frozen dataclasses checked by hand from YAML.

`load(path)` returns a `Config` or raises `ConfigError` listing every problem at once, one line each, each
naming the key path (`targets[0].assessments[1].id: not a UUID`). A target polls the `sources` it names: Audit
Manager (its assessments), AWS Config (its `conformance_packs`) and Security Hub CSPM (its `standards`).

The records and their defaults are in model, the keys and their checks in schema (on reader), the rules between
keys in rules, single values in values and durations, and reading a file in load.
"""

from exporter.config.durations import MAX_INTERVAL_SECONDS, MAX_TIMEOUT_SECONDS, parse_duration
from exporter.config.load import ConfigError, load, parse, yaml_problem
from exporter.config.model import (
    AUDIT_MANAGER,
    AWS_CONFIG,
    DEFAULT_SESSION_NAME,
    DEFAULT_SOURCES,
    EVERY_ENABLED_STANDARD,
    SECURITY_HUB,
    SECURITYHUB_OPERATIONS,
    SECURITYHUB_RATE_LIMITS,
    SOURCES,
    AssessmentConfig,
    Config,
    ConformancePacksConfig,
    StandardsConfig,
    Target,
    TargetConfig,
)
from exporter.config.schema import MAX_CONCURRENCY
from exporter.config.values import (
    AGGREGATOR_PATTERN,
    CONFORMANCE_PACK_PATTERN,
    REGION_PATTERN,
    ROLE_ARN_PATTERN,
    UUID_PATTERN,
)

__all__ = [
    "AGGREGATOR_PATTERN",
    "AUDIT_MANAGER",
    "AWS_CONFIG",
    "CONFORMANCE_PACK_PATTERN",
    "DEFAULT_SESSION_NAME",
    "DEFAULT_SOURCES",
    "EVERY_ENABLED_STANDARD",
    "MAX_CONCURRENCY",
    "MAX_INTERVAL_SECONDS",
    "MAX_TIMEOUT_SECONDS",
    "REGION_PATTERN",
    "ROLE_ARN_PATTERN",
    "SECURITYHUB_OPERATIONS",
    "SECURITYHUB_RATE_LIMITS",
    "SECURITY_HUB",
    "SOURCES",
    "UUID_PATTERN",
    "AssessmentConfig",
    "Config",
    "ConfigError",
    "ConformancePacksConfig",
    "StandardsConfig",
    "Target",
    "TargetConfig",
    "load",
    "parse",
    "parse_duration",
    "yaml_problem",
]
