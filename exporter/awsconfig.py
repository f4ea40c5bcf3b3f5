"""AWS Config as the polling sees it: the error code of a pack that does not exist, and the client (which lives in
exporter.sources.awsconfig.client)."""

from exporter.sources.awsconfig.client import ConformancePackClient

NOT_FOUND = "NoSuchConformancePackException"

__all__ = ["NOT_FOUND", "ConformancePackClient"]
