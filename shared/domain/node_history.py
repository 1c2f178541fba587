"""A cluster's node counts over time, for the dashboard's node timeline.

Kept inside the cluster document (no extra store round trip) and appended only when the counts change, so a
reconcile that changes nothing still costs no write. Bounded: the oldest samples go first.

Stored as one string of samples separated by ``;``, newest first, each ``<time>,<preparing>,<idle>,<running>,
<leaving>,<preempted>,<unusable>`` with trailing zero counts left out. The first (newest) time is in epoch
milliseconds; the others are ``-<milliseconds before the sample in front>`` (``"1796218377730,0,0,1;-3;-2,1"``).
The cluster document is read, validated, compared and written on every event, and this history was most of it: a
list of sample objects (or even of integer lists) made every event measurably slower, and absolute times made every
write a third larger. Newest first, adding a sample touches only the front and dropping one only the end; oldest
first (the format written before, ``"1796218377725,1;+2,0,0,1;+3"``), knowing the last sample's time meant adding up
every delta, 20 µs on every event that changed a count. Both older formats (that one, and absolute times only) are
read too, and rewritten once.

The cluster document keeps only its newest samples: when it holds ``SAMPLES_IN_CLUSTER``, all but the newest
``SAMPLES_LEFT_IN_CLUSTER`` move to the cluster's ``NodeHistoryArchive``, a document of its own, in the same format.
Cosmos DB charges every write of the cluster by its size: 120 samples carried in it cost about a kilobyte on every
event, and moving them costs one read and one write of the archive every 24 changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from pydantic import BaseModel, Field

NODE_HISTORY_KEPT = 120  # samples of the timeline, the cluster's and its archive's together
SAMPLES_IN_CLUSTER = 32
SAMPLES_LEFT_IN_CLUSTER = 8
SAMPLED_STATES = ("preparing", "idle", "running", "leaving", "preempted", "unusable")  # NodeState's values, in order


class NodeCountSample(BaseModel):
    """From ``time`` on, the cluster had these nodes by state; states with no node are left out."""

    time: datetime
    counts: dict[str, int]


class NodeHistoryArchive(BaseModel):
    """A cluster's older samples, moved out of its document. ``uid``: the incarnation they belong to (a cluster
    created again with the name starts afresh, and the samples of the one before are not shown). ``etag`` as for
    clusters: the version read."""

    workspace: str
    name: str
    uid: str
    node_history: str = ""
    etag: str | None = Field(default=None, exclude=True)


def split_node_history(history: str) -> tuple[str, str]:
    """(what the cluster keeps, what moves to its archive); nothing moves until the cluster holds
    ``SAMPLES_IN_CLUSTER`` samples."""
    if history.count(";") + 1 < SAMPLES_IN_CLUSTER:
        return history, ""
    samples = _decode(history)
    return _encode(samples[-SAMPLES_LEFT_IN_CLUSTER:]), _encode(samples[:-SAMPLES_LEFT_IN_CLUSTER])


def merged_node_history(older: str, newer: str) -> str:
    """Both histories as one, bounded to ``NODE_HISTORY_KEPT``; a sample in both (a move repeated after a crash or a
    conflict) is counted once."""
    samples = dict(_decode(older))
    samples.update(_decode(newer))
    return _encode(sorted(samples.items())[-NODE_HISTORY_KEPT:])


def archived(archive: NodeHistoryArchive | None, workspace: str, name: str, uid: str,
             moved: str) -> NodeHistoryArchive:
    """The cluster's archive with the ``moved`` samples added: a new one for its first move, or for a cluster
    created again with the name (the archive's etag is kept, so the write replaces the one before)."""
    if archive is None:
        archive = NodeHistoryArchive(workspace=workspace, name=name, uid=uid)
    elif archive.uid != uid:
        archive = archive.model_copy(update={"uid": uid, "node_history": ""})
    return archive.model_copy(update={"node_history": merged_node_history(archive.node_history, moved)})


def timeline(history: str, archive: NodeHistoryArchive | None, uid: str) -> str:
    """The cluster's whole timeline: its archive's samples (if they are its own) and its newest."""
    return merged_node_history(archive.node_history, history) if archive is not None and archive.uid == uid \
        else history


def record_node_counts(history: str, state_counts: dict[str, int], now: datetime) -> str:
    """``history`` with a sample added when the counts differ from the last one. An empty history of an empty
    cluster stays empty: a cluster that never had a node needs no sample (and no write to store one).

    Runs on every decision, so it works on the string: only the newest sample is parsed."""
    counts = _counts_text(state_counts.get(state, 0) for state in SAMPLED_STATES)
    if ";" in history and not history[history.index(";") + 1:].startswith("-"):
        history = _encode(_decode(history))  # written oldest first: rewritten once
    newest, _, older = history.partition(";")
    newest_time, _, newest_counts = newest.partition(",")
    if newest_counts.endswith(",0") or newest_counts == "0":  # a single sample in absolute times, zeros kept
        newest_counts = _counts_text(int(n) for n in newest_counts.split(","))
    if counts == newest_counts:
        return history
    millis = int(now.timestamp() * 1000)
    if not history:
        return _entry(str(millis), counts)
    history = ";".join(filter(None, [_entry(str(millis), counts),
                                     _entry(f"-{millis - int(newest_time)}", newest_counts), older]))
    for _ in range(history.count(";") + 1 - NODE_HISTORY_KEPT):
        history = history[:history.rfind(";")]
    return history


def _entry(time: str, counts: str) -> str:
    return f"{time},{counts}" if counts else time


def _counts_text(counts: Iterable[int]) -> str:
    text = ",".join(str(n) for n in counts)
    while text.endswith(",0"):
        text = text[:-2]
    return "" if text == "0" else text


def _decode(history: str) -> list[tuple[int, str]]:
    """(epoch milliseconds, counts text) per sample, oldest first, from any of the three formats."""
    entries = [entry.partition(",") for entry in filter(None, history.split(";"))]
    samples: list[tuple[int, str]] = []
    newest_first = len(entries) > 1 and entries[1][0].startswith("-")
    for time, _, counts in entries:
        if samples and time.startswith(("-", "+")):
            millis = samples[-1][0] + (-1 if newest_first else 1) * int(time[1:])
        else:
            millis = int(time.lstrip("+"))
        samples.append((millis, _counts_text(int(n) for n in counts.split(",")) if counts else ""))
    return samples[::-1] if newest_first else samples


def _encode(samples: list[tuple[int, str]]) -> str:
    """Newest first, from samples oldest first."""
    entries, after = [], None
    for millis, counts in reversed(samples):
        entries.append(_entry(str(millis) if after is None else f"-{after - millis}", counts))
        after = millis
    return ";".join(entries)


def newest_node_counts(history: str) -> dict[str, int]:
    """The cluster's nodes by state now (every state, zeros included): the newest sample's. No sample, or a
    history that does not parse: all zeros (what the nodes gauge reports rather than failing)."""
    try:
        _, counts = _decode(history)[-1]
        numbers = [int(n) for n in counts.split(",")] if counts else []
    except (IndexError, ValueError):
        numbers = []
    return {state: numbers[i] if i < len(numbers) else 0 for i, state in enumerate(SAMPLED_STATES)}


def samples_of(history: str) -> list[NodeCountSample]:
    samples = []
    for millis, counts in _decode(history):
        numbers = [int(n) for n in counts.split(",")] if counts else []
        samples.append(NodeCountSample(time=datetime.fromtimestamp(millis / 1000, UTC), counts={
            state: n for state, n in zip(SAMPLED_STATES, numbers, strict=False) if n}))
    return samples
