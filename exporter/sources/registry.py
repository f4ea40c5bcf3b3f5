"""The registry of sources: each registers here by its config name with a factory, like node_exporter's collectors.
The pipeline (exporter.polling), the collector and /status run every registered source the same way and name none.
Adding a source is a new package and one `register` line below."""

from __future__ import annotations

import functools
from typing import Any

from exporter.config import AUDIT_MANAGER, AWS_CONFIG, SECURITY_HUB
from exporter.sources.auditmanager.source import AuditManagerSource
from exporter.sources.awsconfig.source import AwsConfigSource
from exporter.sources.base import Source, register, registered
from exporter.sources.securityhub.source import SecurityHubSource

register(AUDIT_MANAGER, AuditManagerSource)
register(AWS_CONFIG, AwsConfigSource)
register(SECURITY_HUB, SecurityHubSource)


@functools.cache
def sources() -> dict[str, Source[Any, Any]]:
    """One instance of every registered source, by name, in registration order."""
    return {name: factory() for name, factory in registered().items()}
