"""The poll service: the pipeline every registered source runs through (pipeline, lanes), what it knows between
cycles (state), the shared worker pool (workers) and the one writer of snapshots (publisher). `Poller` ties them
together for one config."""

from exporter.polling.poller import Poller
from exporter.polling.publisher import Publisher
from exporter.polling.state import PollState
from exporter.polling.workers import Workers
from exporter.sharding import UNSHARDED, Shard, shard_of

__all__ = ["UNSHARDED", "PollState", "Poller", "Publisher", "Shard", "Workers", "shard_of"]
