"""A cluster's node counts over time, for the dashboard's node timeline.

Kept inside the cluster document (no extra store round trip) and appended only when the counts change, so a
reconcile that changes nothing still costs no write. Bounded: the oldest samples go first.

Stored as one string of samples separated by ``;``, each ``<time>,<preparing>,<idle>,<running>,<leaving>,
<preempted>,<unusable>`` with trailing zero counts left out. The first time is in epoch milliseconds; the others are
``+<milliseconds since the sample before>`` (``"1796218377725,1;+2,0,0,1;+3"``). The cluster document is read,
validated, compared and written on every event, and this history is most of it: a list of sample objects (or even of
integer lists) made every event measurably slower, and absolute times made every write a third larger. Samples in
absolute times only (the format written before) are read too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from pydantic import BaseModel

NODE_HISTORY_KEPT = 120
SAMPLED_STATES = ("preparing", "idle", "running", "leaving", "preempted", "unusable")  # NodeState's values, in order


class NodeCountSample(BaseModel):
    """From ``time`` on, the cluster had these nodes by state; states with no node are left out."""

    time: datetime
    counts: dict[str, int]


def record_node_counts(history: str, state_counts: dict[str, int], now: datetime) -> str:
    """``history`` with a sample appended when the counts differ from the last one. An empty history of an empty
    cluster stays empty: a cluster that never had a node needs no sample (and no write to store one).

    Runs on every decision, so it works on the string: no sample is parsed but the first two and the last."""
    counts = _counts_text(state_counts.get(state, 0) for state in SAMPLED_STATES)
    last = _counts_text(int(n) for n in history[history.rfind(";") + 1:].split(",")[1:]) if history else ""
    if counts == last:
        return history
    millis = int(now.timestamp() * 1000)
    if not history:
        return _entry(str(millis), counts)
    if ";" in history and history[history.index(";") + 1] != "+":
        history = _encode(_decode(history))  # written in absolute times: rewritten once
    since = millis - sum(int(entry.partition(",")[0]) for entry in history.split(";"))
    history = f"{history};{_entry(f'+{since}', counts)}"
    for _ in range(history.count(";") + 1 - NODE_HISTORY_KEPT):
        history = _drop_first(history)
    return history


def _entry(time: str, counts: str) -> str:
    return f"{time},{counts}" if counts else time


def _drop_first(history: str) -> str:
    """The oldest sample dropped; the next one's time made absolute."""
    first, second, *rest = history.split(";", 2)
    first_time, second_time = first.partition(",")[0], second.partition(",")[0]
    return ";".join([f"{int(first_time) + int(second_time)}{second[len(second_time):]}", *rest])


def _counts_text(counts: Iterable[int]) -> str:
    text = ",".join(str(n) for n in counts)
    while text.endswith(",0"):
        text = text[:-2]
    return "" if text == "0" else text


def _decode(history: str) -> list[tuple[int, str]]:
    """(epoch milliseconds, counts text) per sample."""
    samples: list[tuple[int, str]] = []
    for entry in filter(None, history.split(";")):
        time, _, counts = entry.partition(",")
        millis = samples[-1][0] + int(time[1:]) if time.startswith("+") and samples else int(time.lstrip("+"))
        samples.append((millis, _counts_text(int(n) for n in counts.split(",")) if counts else ""))
    return samples


def _encode(samples: list[tuple[int, str]]) -> str:
    entries, before = [], None
    for millis, counts in samples:
        entries.append(_entry(str(millis) if before is None else f"+{millis - before}", counts))
        before = millis
    return ";".join(entries)


def samples_of(history: str) -> list[NodeCountSample]:
    samples = []
    for millis, counts in _decode(history):
        numbers = [int(n) for n in counts.split(",")] if counts else []
        samples.append(NodeCountSample(time=datetime.fromtimestamp(millis / 1000, UTC), counts={
            state: n for state, n in zip(SAMPLED_STATES, numbers, strict=False) if n}))
    return samples
