"""The sources: one package per AWS service, each registered here by its config name, like node_exporter's
collectors. The pipeline (exporter.polling) runs every registered source the same way and names none."""

from exporter.sources.base import Source, register, registered

__all__ = ["Source", "register", "registered"]
