"""Prometheus exporter for AWS Audit Manager assessment insights."""

__version__ = "0.1.0"
