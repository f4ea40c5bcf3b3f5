"""AWS Config conformance packs and configuration aggregators, as a source of the pipeline."""

from exporter.sources.awsconfig.source import AwsConfigPart, AwsConfigSource, aggregators_of, packs_of
from exporter.sources.awsconfig.state import AggregatorState, ConformancePackState

__all__ = ["AggregatorState", "AwsConfigPart", "AwsConfigSource", "ConformancePackState", "aggregators_of", "packs_of"]
