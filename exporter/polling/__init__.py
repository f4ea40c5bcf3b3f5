"""The poll service: what it knows (state), which assessments to poll (inventory), one poll cycle (cycle), the
framework look-ups between cycles (details), the shared worker pool (workers) and the one writer of snapshots
(publisher). `Poller` ties them together for one config."""

from exporter.polling.poller import Poller
from exporter.polling.publisher import Publisher
from exporter.polling.state import PollState
from exporter.polling.workers import Workers
from exporter.sharding import UNSHARDED, Shard, shard_of

__all__ = ["UNSHARDED", "PollState", "Poller", "Publisher", "Shard", "Workers", "shard_of"]
