"""Which replica polls what: a unit belongs to one shard by a hash of its account, region and name, the same in
every process."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def shard_of(account_id: str, region: str, assessment_id: str, count: int) -> int:
    """The shard that polls an assessment: a SHA-256 of "account/region/assessment", the same in every process
    (unlike `hash()`, which Python salts per process)."""
    digest = hashlib.sha256(f"{account_id}/{region}/{assessment_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class Shard:
    """This replica's share of the assessments (`--shard.index` of `--shard.count`)."""

    index: int = 0
    count: int = 1

    def owns(self, account_id: str, region: str, assessment_id: str) -> bool:
        """Whether this shard polls the assessment; only asked once the account is known, so an assessment never
        moves to another shard when its account resolves."""
        return shard_of(account_id, region, assessment_id, self.count) == self.index

    @property
    def polls_accounts(self) -> bool:
        """Only shard 0 polls the account-level insights, so replicas do not publish them twice. It also
        publishes the failed polls of a target whose account cannot be resolved, which no shard can own yet."""
        return self.index == 0


UNSHARDED = Shard()
