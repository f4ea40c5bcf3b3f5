"""The demo's data: a few realistic assessments whose daily counts drift with the clock, with the odd spike, two AWS
Config conformance packs whose rules' compliance changes from day to day, and two Security Hub standards whose
controls' findings do too."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from exporter.simulator.auditmanager import Simulator
from exporter.simulator.model import ControlDomain, Insights
from exporter.simulator.securityhub_data import FindingSet


@dataclass(frozen=True)
class Drift:
    """The daily counts of a demo assessment as a function of wall-clock time."""

    origin: float
    day_seconds: float
    seed: str
    index: int
    population: int
    total_controls: int
    noncompliant: int
    compliant: int
    inconclusive: int
    noncompliant_controls: int
    domains: tuple[tuple[str, str, float], ...]

    def at(self, now: float) -> tuple[Insights, tuple[ControlDomain, ...]]:
        day, elapsed = divmod(now - self.origin, self.day_seconds)
        # Seeded by strings, which Random hashes with SHA-512, so a day looks the same in every process.
        daily = random.Random(f"demo-spike/{int(day)}")
        spiking = daily.random() < 1 / 3 and daily.randrange(self.population) == self.index
        rng = random.Random(f"{self.seed}/{int(day)}")
        scale = (0.02 + 0.98 * elapsed / self.day_seconds) * rng.uniform(0.8, 1.2)
        spike = rng.uniform(3.0, 6.0) if spiking else 1.0
        updated = datetime.fromtimestamp(self.origin + day * self.day_seconds, UTC)

        def counts(share: float, total: int) -> tuple[int, int, int, int]:
            return (
                round(self.noncompliant * share * scale * spike),
                round(self.compliant * share * scale),
                round(self.inconclusive * share * scale),
                min(total, round(self.noncompliant_controls * share * scale * spike)),
            )

        noncompliant, compliant, inconclusive, failing = counts(1.0, self.total_controls)
        insights = Insights(noncompliant, compliant, inconclusive, failing, self.total_controls, updated)
        domains = []
        for domain_id, name, share in self.domains:
            total = round(self.total_controls * share)
            noncompliant, compliant, inconclusive, failing = counts(share, total)
            domains.append(
                ControlDomain(domain_id, name, noncompliant, compliant, inconclusive, failing, total, updated)
            )
        return insights, tuple(domains)


_DEMO_DOMAINS = (
    ("arn:aws:controlcatalog:::domain/IDENTITY_AND_ACCESS_MANAGEMENT", "Identity and access management", 0.4),
    ("arn:aws:controlcatalog:::domain/LOGGING_AND_MONITORING", "Logging and monitoring", 0.35),
    ("arn:aws:controlcatalog:::domain/DATA_PROTECTION", "Data protection", 0.25),
)
# region, name, status, framework, compliance type, then the total controls (also the framework's size) and, on
# an ordinary day, the daily noncompliant, compliant and inconclusive evidence and the controls with noncompliant
# evidence.
_DEMO_ASSESSMENTS = (
    ("us-east-1", "SOC 2 Type II - Production", "ACTIVE", "SOC 2", "SOC2", 61, 40, 2200, 300, 9),
    ("us-east-1", "PCI DSS v4.0 - Cardholder data", "ACTIVE", "PCI DSS V4.0", "PCI DSS", 264, 120, 5400, 800, 31),
    ("us-east-1", "CIS - All accounts", "ACTIVE", "CIS AWS Foundations Benchmark v1.4.0", "CIS", 58, 25, 1800, 90, 6),
    ("us-east-1", "HIPAA - Patient portal", "ACTIVE", "HIPAA Security Rule: Feb 2003", "HIPAA", 77, 18, 950, 140, 5),
    ("us-east-1", "NIST 800-53 - Shared services", "ACTIVE", "NIST SP 800-53 Rev 5", "NIST", 1007, 210, 7600, 1300, 44),
    ("us-east-1", "SOC 2 Type II - FY2024 audit", "INACTIVE", "SOC 2", "SOC2", 61, 12, 600, 70, 3),
    ("eu-west-1", 'Prod "PCI", Zürich', "ACTIVE", "PCI DSS V4.0", "PCI DSS", 264, 95, 4100, 620, 27),
    ("eu-west-1", "GDPR - Customer data platform", "ACTIVE", "GDPR 2016", "GDPR", 62, 30, 1500, 210, 8),
)
# Each demo assessment's tags, in the order above: team, cost-center, environment.
_DEMO_TAGS = (
    ("platform", "cc-1001", "production"),
    ("payments", "cc-2040", "production"),
    ("platform", "cc-1001", "production"),
    ("patient-portal", "cc-3100", "production"),
    ("security", "cc-1200", "shared"),
    ("platform", "cc-1001", "production"),
    ("payments", "cc-2041", "production"),
    ("data", "cc-4000", "production"),
)


@dataclass(frozen=True)
class PackDrift:
    """The daily compliance of a demo conformance pack's rules as a function of wall-clock time: the `persistent`
    rules are NON_COMPLIANT every day (as a finding nobody has fixed yet is); each other rule is NON_COMPLIANT with
    probability `noncompliant` and INSUFFICIENT_DATA with `insufficient` on any one day."""

    origin: float
    day_seconds: float
    name: str
    rules: tuple[str, ...]
    persistent: frozenset[str]
    noncompliant: float
    insufficient: float

    def at(self, now: float) -> tuple[Mapping[str, str], datetime]:
        day = int((now - self.origin) // self.day_seconds)
        rng = random.Random(f"{self.name}/{day}")
        rules = {}
        for rule in self.rules:
            draw = rng.random()
            failing = rule in self.persistent or draw < self.noncompliant
            rules[rule] = (
                "NON_COMPLIANT" if failing else "INSUFFICIENT_DATA" if draw > 1 - self.insufficient else "COMPLIANT"
            )
        return rules, datetime.fromtimestamp(self.origin + day * self.day_seconds, UTC)


# region, name, the rules (AWS names a pack's rules "<managed rule>-conformance-pack-<suffix>"), the rules that
# fail every day (the findings a real account lives with for months), and the daily chances of any other rule being
# noncompliant or without data.
# The demo's configuration aggregator: every demo pack, of every region, seen from us-east-1.
DEMO_AGGREGATOR = "demo-organisation"
DEMO_AGGREGATOR_REGION = "us-east-1"
_DEMO_PACKS = (
    (
        "us-east-1",
        "Operational-Best-Practices-for-CIS-AWS-v1-4-Level1",
        (
            "access-keys-rotated",
            "cloudtrail-enabled",
            "cloudtrail-log-file-validation-enabled",
            "iam-password-policy",
            "iam-root-access-key-check",
            "iam-user-unused-credentials-check",
            "mfa-enabled-for-iam-console-access",
            "multi-region-cloudtrail-enabled",
            "root-account-hardware-mfa-enabled",
            "root-account-mfa-enabled",
            "s3-account-level-public-access-blocks-periodic",
            "vpc-flow-logs-enabled",
        ),
        ("root-account-hardware-mfa-enabled",),
        0.2,
        0.05,
    ),
    (
        "us-east-1",
        "Security-Best-Practices-for-Amazon-S3",
        (
            "s3-bucket-level-public-access-prohibited",
            "s3-bucket-logging-enabled",
            "s3-bucket-public-read-prohibited",
            "s3-bucket-public-write-prohibited",
            "s3-bucket-server-side-encryption-enabled",
            "s3-bucket-ssl-requests-only",
            "s3-bucket-versioning-enabled",
        ),
        ("s3-bucket-logging-enabled",),
        0.12,
        0.0,
    ),
)

_FSBP = "standards/aws-foundational-security-best-practices/v/1.0.0"
_CIS = "ruleset/cis-aws-foundations-benchmark/v/1.2.0"
# Security Hub's demo controls in us-east-1: id, severity, the standards it is in (enabled in both unless marked
# disabled in CIS), and its resources (findings a day).
_DEMO_CONTROLS = (
    ("IAM.6", "CRITICAL", (_FSBP, _CIS), 1),
    ("IAM.4", "CRITICAL", (_FSBP, _CIS), 1),
    ("S3.1", "MEDIUM", (_FSBP,), 1),
    ("S3.8", "HIGH", (_FSBP,), 40),
    ("EC2.2", "HIGH", (_FSBP, _CIS), 25),
    ("EC2.19", "CRITICAL", (_FSBP,), 60),
    ("CloudTrail.1", "HIGH", (_FSBP, _CIS), 1),
    ("CloudTrail.2", "MEDIUM", (_FSBP, _CIS), 3),
    ("Config.1", "MEDIUM", (_FSBP, _CIS), 1),
    ("KMS.4", "MEDIUM", (_FSBP, _CIS), 12),
    ("Lambda.1", "CRITICAL", (_FSBP,), 18),
    ("RDS.3", "MEDIUM", (_FSBP,), 9),
    ("GuardDuty.1", "HIGH", (_FSBP,), 1),
    ("SSM.1", "MEDIUM", (_FSBP,), 30),
)
# The control that fails every day (HIGH: a healthy demo raises no alert, and CRITICAL controls pass), and the one
# disabled in CIS.
_DEMO_PERSISTENT = "S3.8"
_DEMO_DISABLED_IN_CIS = "CloudTrail.2"


@dataclass(frozen=True)
class FindingsDrift:
    """The demo's Security Hub findings on each day: _DEMO_PERSISTENT fails every day, any other control that is not
    CRITICAL fails with probability `failing`, and any warns with `warning` (a finding per resource; one failing
    resource fails it)."""

    origin: float
    day_seconds: float
    failing: float
    warning: float

    def at(self, now: float) -> list[FindingSet]:
        day = int((now - self.origin) // self.day_seconds)
        rng = random.Random(f"securityhub/{day}")
        findings = []
        for serial, (control, severity, _, resources) in enumerate(_DEMO_CONTROLS, start=1):
            draw = rng.random()
            fails = control == _DEMO_PERSISTENT or (draw < self.failing and severity != "CRITICAL")
            bad = "FAILED" if fails else "WARNING"
            broken = 1 + rng.randrange(resources) if bad == "FAILED" or draw > 1 - self.warning else 0
            if broken:
                findings.append(FindingSet(control_id=control, status=bad, count=broken, serial=serial))
            if resources > broken:
                findings.append(
                    FindingSet(control_id=control, status="PASSED", count=resources - broken, serial=-serial)
                )
        return findings


def demo_simulator(
    *, start_time: float | None = None, day_seconds: float = 300.0, clock: Callable[[], float] = time.time
) -> Simulator:
    """A simulator (not started) holding a few realistic, tagged assessments and two conformance packs that drift
    with `clock`; each framework has as many controls as its assessment counts (up to 1,007, like NIST SP 800-53
    Rev 5).

    Time is compressed into days of `day_seconds` starting at `start_time` (default: the Unix epoch, so days
    start at multiples of `day_seconds`). The counts are the current day's: they rise through the day and drop
    at the rollover, when lastUpdated moves to the start of the new day. On about one day in three, one
    assessment sees a spike of several times its usual noncompliant evidence. The packs' rules change compliance
    at each rollover, except for one noncompliant rule per pack that stays so every day; the configuration aggregator
    DEMO_AGGREGATOR in DEMO_AGGREGATOR_REGION holds every pack of every region. Security Hub has two
    standards in us-east-1 (and a hub without standards in eu-west-1) whose controls' findings change at each
    rollover, except for one CRITICAL control that fails every day.
    """
    simulator = Simulator(clock=clock)
    origin = 0.0 if start_time is None else start_time
    for index, (row, (team, cost_center, environment)) in enumerate(zip(_DEMO_ASSESSMENTS, _DEMO_TAGS, strict=True)):
        region, name, status, framework, compliance, controls, noncompliant, compliant, inconclusive, failing = row
        assessment_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"auditmanager-exporter-demo/{name}"))
        simulator.add_assessment(
            region,
            assessment_id,
            name,
            status=status,
            framework=framework,
            compliance_type=compliance,
            framework_controls=controls,
            tags={"team": team, "cost-center": cost_center, "environment": environment},
        )
        drift = Drift(
            origin,
            day_seconds,
            assessment_id,
            index,
            len(_DEMO_ASSESSMENTS),
            controls,
            noncompliant,
            compliant,
            inconclusive,
            failing,
            _DEMO_DOMAINS,
        )
        simulator._add_drift(region, assessment_id, drift)
    for region, pack, rules, persistent, failing_share, missing_share in _DEMO_PACKS:
        suffix = uuid.uuid5(uuid.NAMESPACE_URL, f"auditmanager-exporter-demo/{pack}").hex[:6]
        named = {rule: f"{rule}-conformance-pack-{suffix}" for rule in rules}
        simulator.awsconfig.add_conformance_pack(region, pack)
        pack_drift = PackDrift(
            origin,
            day_seconds,
            pack,
            tuple(named.values()),
            frozenset(named[rule] for rule in persistent),
            failing_share,
            missing_share,
        )
        simulator.awsconfig._set_drift(region, pack, pack_drift.at)
        source = (simulator.awsconfig.account_id, region, pack)
        simulator.awsconfig._set_aggregate_drift(DEMO_AGGREGATOR_REGION, DEMO_AGGREGATOR, source, pack_drift.at)
    hub = simulator.securityhub
    hub.enable_hub("eu-west-1")
    hub.enable_hub("us-east-1")
    for standard in (_FSBP, _CIS):
        hub.enable_standard("us-east-1", standard)
    for control, severity, standards, _ in _DEMO_CONTROLS:
        enabled = {standard: not (standard == _CIS and control == _DEMO_DISABLED_IN_CIS) for standard in standards}
        hub.add_control("us-east-1", control, enabled, severity=severity)
    hub._set_drift("us-east-1", FindingsDrift(origin, day_seconds, 0.2, 0.08).at)
    return simulator
