"""The Security Hub source's part of the snapshot: the published state of each standard, and the cap on the
per-control series."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from exporter.sources.base import Failure
from exporter.sources.securityhub.score import StandardScore

StandardKey = tuple[str, str, str]
"""(account_id, region, standard)"""


@dataclass(frozen=True, kw_only=True)
class StandardState:
    """The published state of one standard of one account and region: its display name and subscription status
    (empty while unknown or not enabled), its last good result, and how its latest poll went."""

    account_id: str
    region: str
    standard: str
    name: str = ""
    status: str = ""
    result: StandardScore | None = None
    poll_success: bool
    last_success: float | None = None
    # The error of the latest failed poll; None once a poll succeeds.
    error_code: str | None = None
    error_message: str | None = None

    @property
    def key(self) -> StandardKey:
        return (self.account_id, self.region, self.standard)

    @property
    def control_series(self) -> int:
        return len(self.result.controls) if self.result is not None else 0

    def failed(self, failure: Failure, *, name: str = "", status: str = "") -> StandardState:
        """After a failed poll: the last good result stays, the success timestamp does not move; a name or status
        learned meanwhile replaces the old one."""
        return dataclasses.replace(
            self,
            name=name or self.name,
            status=status or self.status,
            poll_success=False,
            error_code=failure.code,
            error_message=failure.message,
        )


def limit_control_series(states: Sequence[StandardState], limit: int) -> tuple[list[StandardState], int]:
    """Keep per-control series, in the order given, until `limit` are kept; return the states and how many series
    were left out. A standard's controls are kept or left out whole, so that it never shows half of them; its
    score and counts are not capped."""
    remaining, dropped, limited = limit, 0, []
    for state in states:
        if state.result is None or state.control_series <= remaining:
            remaining -= state.control_series
            limited.append(state)
        else:
            dropped += state.control_series
            limited.append(dataclasses.replace(state, result=dataclasses.replace(state.result, controls=())))
    return limited, dropped
