"""The configuration as typed, frozen records. Their field defaults are the config's defaults: the checks in
exporter.config.schema read them from here, so each is written once."""

from __future__ import annotations

import re
from dataclasses import dataclass

from exporter.config.values import ROLE_ARN_PATTERN

AUDIT_MANAGER = "auditmanager"
AWS_CONFIG = "config"
SECURITY_HUB = "securityhub"
SOURCES = (AUDIT_MANAGER, AWS_CONFIG, SECURITY_HUB)
# What a target polls when it names no sources.
DEFAULT_SOURCES = (AUDIT_MANAGER,)
DEFAULT_SESSION_NAME = "auditmanager-exporter"


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
# The Security Hub operations the source calls, and the requests per second of each ("default": any other): AWS's
# quotas per account and region (each allows bursts of twice its rate).
SECURITYHUB_OPERATIONS = (
    "DescribeHub",
    "GetEnabledStandards",
    "DescribeStandards",
    "DescribeStandardsControls",
    "ListSecurityControlDefinitions",
    "BatchGetStandardsControlAssociations",
    "GetFindings",
)
SECURITYHUB_RATE_LIMITS = (("GetFindings", 3.0), ("default", 10.0))


@dataclass(frozen=True, kw_only=True)
class TargetConfig:
    """A target as configured; `regions` makes it one target per region (see `Config.expanded_targets`). None is a
    key not given: the target takes the config-wide value or the default."""

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
    sources: tuple[str, ...] | None = None
    conformance_packs: ConformancePacksConfig | None = None
    aggregator: str | None = None
    standards: StandardsConfig | None = None


@dataclass(frozen=True, kw_only=True)
class Target:
    """One account and region to poll: a configured target for one of its regions, with its limits resolved."""

    region: str
    assessments: tuple[AssessmentConfig, ...]
    max_concurrency: int
    max_requests_per_second: float
    endpoint_url: str | None
    profile: str | None
    role_arn: str | None
    external_id: str | None
    session_name: str
    discover: bool
    include: re.Pattern[str] | None
    exclude: re.Pattern[str] | None
    control_domains: bool
    sources: tuple[str, ...]
    conformance_packs: ConformancePacksConfig | None
    aggregator: str | None
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


@dataclass(frozen=True, kw_only=True)
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
    # Requests per second by Security Hub operation (or "default"), the given ones over SECURITYHUB_RATE_LIMITS.
    securityhub_rate_limits: tuple[tuple[str, float], ...] = SECURITYHUB_RATE_LIMITS
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
                sources=target.sources or DEFAULT_SOURCES,
                conformance_packs=target.conformance_packs,
                aggregator=target.aggregator,
                standards=target.standards or EVERY_ENABLED_STANDARD,
            )
            for target in self.targets
            for region in (target.regions or (target.region or "",))
        )
