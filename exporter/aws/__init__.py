"""What every AWS source shares: sessions and credentials (session), sessions and clients shared between targets
(sessions), the request rate limit (ratelimit), errors (errors), the client base (client) and the reading of answers
(reading).

The Audit Manager client moved to exporter.sources.auditmanager.client; its names are still importable from here,
loaded on first use, since that module imports this package.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from exporter.aws.client import ServiceClient, pages
from exporter.aws.errors import MALFORMED, AnswerError, AwsError
from exporter.aws.ratelimit import RequestRateLimiter
from exporter.aws.session import SessionFactory, assumed_role_session, default_session, new_session
from exporter.aws.sessions import (
    Caller,
    ClientSettings,
    CredentialSource,
    SessionCache,
    SharedClient,
    build_families,
    calling_as,
)

if TYPE_CHECKING:
    from exporter.sources.auditmanager.client import (
        ASSESSMENT_ANSWERS_AT_ONCE,
        AUDIT_MANAGER_ANSWERS,
        BACKGROUND_SHARE,
        AssessmentMeta,
        AuditManagerClient,
        DescribedAssessment,
    )

_AUDIT_MANAGER_NAMES = frozenset(
    {
        "ASSESSMENT_ANSWERS_AT_ONCE",
        "AUDIT_MANAGER_ANSWERS",
        "BACKGROUND_SHARE",
        "AssessmentMeta",
        "AuditManagerClient",
        "DescribedAssessment",
    }
)


def __getattr__(name: str) -> Any:
    if name in _AUDIT_MANAGER_NAMES:
        return getattr(import_module("exporter.sources.auditmanager.client"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ASSESSMENT_ANSWERS_AT_ONCE",
    "AUDIT_MANAGER_ANSWERS",
    "BACKGROUND_SHARE",
    "MALFORMED",
    "AnswerError",
    "AssessmentMeta",
    "AuditManagerClient",
    "AwsError",
    "Caller",
    "ClientSettings",
    "CredentialSource",
    "DescribedAssessment",
    "RequestRateLimiter",
    "ServiceClient",
    "SessionCache",
    "SessionFactory",
    "SharedClient",
    "assumed_role_session",
    "build_families",
    "calling_as",
    "default_session",
    "new_session",
    "pages",
]
