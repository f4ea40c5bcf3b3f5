"""The /status page: the exporter's targets and assessments, failing first, as HTML for people and JSON for
scripts, rendered from a StatusReport that the HTTP app gets from a provider callable."""

from exporter.status.document import render_json
from exporter.status.model import (
    AssessmentStatus,
    Query,
    StatusProvider,
    StatusReport,
    TargetStatus,
    ordered_assessments,
    ordered_targets,
    select,
)
from exporter.status.page import render_html
from exporter.status.source import CachedAssessmentRows, assessment_rows, report_from_snapshot

__all__ = [
    "AssessmentStatus",
    "CachedAssessmentRows",
    "Query",
    "StatusProvider",
    "StatusReport",
    "TargetStatus",
    "assessment_rows",
    "ordered_assessments",
    "ordered_targets",
    "render_html",
    "render_json",
    "report_from_snapshot",
    "select",
]
