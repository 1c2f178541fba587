"""A cluster's node counts over time, for the dashboard's node timeline.

Kept inside the cluster document (no extra store round trip) and appended only when the counts change, so a
reconcile that changes nothing still costs no write. Bounded: the oldest samples go first.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from shared.domain.clock import UtcDatetime

NODE_HISTORY_KEPT = 120


class NodeCountSample(BaseModel):
    """From ``time`` on, the cluster had these nodes by state; states with no node are left out (compact)."""

    time: UtcDatetime
    counts: dict[str, int] = Field(default_factory=dict)


def record_node_counts(history: list[NodeCountSample], state_counts: dict[str, int], now: datetime) -> None:
    """Append a sample when the counts differ from the last one. An empty history of an empty cluster stays empty:
    a cluster that never had a node needs no sample (and no write to store one)."""
    counts = {state: n for state, n in state_counts.items() if n}
    last = history[-1].counts if history else {}
    if counts == last:
        return
    history.append(NodeCountSample(time=now, counts=counts))
    del history[:-NODE_HISTORY_KEPT]
