"""A cluster's node counts over time, for the dashboard's node timeline.

Kept inside the cluster document (no extra store round trip) and appended only when the counts change, so a
reconcile that changes nothing still costs no write. Bounded: the oldest samples go first.

Stored as one string, ``"<epoch ms>,<preparing>,<idle>,<running>,<leaving>,<preempted>,<unusable>;..."``: the
cluster document is read, validated, compared and written on every event, and a list of sample objects (or even of
integer lists) made every event measurably slower; one string costs next to nothing until it is read for display.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

NODE_HISTORY_KEPT = 120
SAMPLED_STATES = ("preparing", "idle", "running", "leaving", "preempted", "unusable")  # NodeState's values, in order
_NO_NODES = ",".join("0" for _ in SAMPLED_STATES)


class NodeCountSample(BaseModel):
    """From ``time`` on, the cluster had these nodes by state; states with no node are left out."""

    time: datetime
    counts: dict[str, int]


def record_node_counts(history: str, state_counts: dict[str, int], now: datetime) -> str:
    """``history`` with a sample appended when the counts differ from the last one. An empty history of an empty
    cluster stays empty: a cluster that never had a node needs no sample (and no write to store one)."""
    counts = ",".join(str(state_counts.get(state, 0)) for state in SAMPLED_STATES)
    last = history[history.rfind(";") + 1:].partition(",")[2] if history else _NO_NODES
    if counts == last:
        return history
    entry = f"{int(now.timestamp() * 1000)},{counts}"
    history = f"{history};{entry}" if history else entry
    excess = history.count(";") + 1 - NODE_HISTORY_KEPT
    return history.split(";", excess)[-1] if excess > 0 else history


def samples_of(history: str) -> list[NodeCountSample]:
    samples = []
    for entry in filter(None, history.split(";")):
        millis, *counts = (int(part) for part in entry.split(","))
        samples.append(NodeCountSample(time=datetime.fromtimestamp(millis / 1000, UTC), counts={
            state: n for state, n in zip(SAMPLED_STATES, counts, strict=False) if n}))
    return samples
