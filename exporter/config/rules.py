"""Rules between the keys of targets (region or regions, what each source needs, ids listed twice), checked on the
raw data so that they are reported alongside every other problem."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from exporter.config.model import AUDIT_MANAGER, AWS_CONFIG, DEFAULT_SOURCES, SECURITY_HUB

_AUDIT_MANAGER_KEYS = ("assessments", "discover", "include", "exclude", "control_domains")


def problems(raw: dict[str, Any]) -> list[str]:
    """Every problem between the keys of the targets of a raw config."""
    return [*_target_problems(raw), *_duplicate_ids(raw)]


def _raw_targets(raw: dict[str, Any]) -> Iterable[tuple[int, dict[str, Any]]]:
    targets = raw.get("targets")
    for t, target in enumerate(targets if isinstance(targets, list) else []):
        if isinstance(target, dict):
            yield t, target


def _target_problems(raw: dict[str, Any]) -> Iterable[str]:
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


def _raw_sources(target: dict[str, Any]) -> Iterable[object]:
    sources = target.get("sources")
    return sources if isinstance(sources, list) else DEFAULT_SOURCES


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
    """An assessment id listed twice for the same region and credentials. The same id under other credentials or
    regions is another target's."""
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
