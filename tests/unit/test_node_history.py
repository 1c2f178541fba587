"""The node timeline's history: a sample only when the counts change, bounded, nothing for a cluster that never
had a node (so a no-op reconcile still costs no write)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.cluster import NodeState
from shared.domain.node_history import (
    NODE_HISTORY_KEPT,
    SAMPLED_STATES,
    SAMPLES_IN_CLUSTER,
    SAMPLES_LEFT_IN_CLUSTER,
    archived,
    newest_node_counts,
    record_node_counts,
    samples_of,
    split_node_history,
    timeline,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NONE = {state.value: 0 for state in NodeState}


def test_the_samples_cover_every_node_state() -> None:
    assert tuple(state.value for state in NodeState) == SAMPLED_STATES


def test_an_empty_cluster_records_nothing_until_it_has_a_node() -> None:
    history = ""
    history = record_node_counts(history, NONE, T0)
    assert history == ""
    history = record_node_counts(history, NONE | {"preparing": 2}, T0 + timedelta(seconds=1))
    assert [(s.time, s.counts) for s in samples_of(history)] == [(T0 + timedelta(seconds=1), {"preparing": 2})]


def test_a_sample_is_added_only_when_the_counts_change_and_the_fall_to_zero_is_kept() -> None:
    history = ""
    for second, counts in enumerate([{"preparing": 1}, {"preparing": 1}, {"running": 1}, {"running": 1},
                                     {"idle": 1}, {"leaving": 1}, {}, {}]):
        history = record_node_counts(history, NONE | counts, T0 + timedelta(seconds=second))
    shown = samples_of(history)
    assert [s.counts for s in shown] == [{"preparing": 1}, {"running": 1}, {"idle": 1}, {"leaving": 1}, {}]
    assert shown[1].time == T0 + timedelta(seconds=2)


def test_the_history_keeps_only_the_latest_samples() -> None:
    history = ""
    for n in range(NODE_HISTORY_KEPT + 30):
        history = record_node_counts(history, NONE | {"running": n % 2 + 1}, T0 + timedelta(seconds=n))
    assert len(samples_of(history)) == NODE_HISTORY_KEPT
    assert samples_of(history)[-1].time == T0 + timedelta(seconds=NODE_HISTORY_KEPT + 29)


def test_a_history_written_in_absolute_times_is_read_and_extended() -> None:
    """Clusters stored before the history was delta-encoded keep their timeline."""
    millis = int(T0.timestamp() * 1000)
    stored = f"{millis},2,0,0,0,0,0;{millis + 1500},0,1,1,0,0,0"
    history = record_node_counts(stored, NONE, T0 + timedelta(seconds=3))
    assert [(s.time, s.counts) for s in samples_of(history)] == [
        (T0, {"preparing": 2}), (T0 + timedelta(seconds=1.5), {"idle": 1, "running": 1}),
        (T0 + timedelta(seconds=3), {})]


def test_a_long_history_stays_small_enough_for_every_write() -> None:
    history = ""
    for n in range(NODE_HISTORY_KEPT * 2):
        history = record_node_counts(history, NONE | {"running": n % 3}, T0 + timedelta(seconds=n))
    assert len(history) < NODE_HISTORY_KEPT * 13  # half what absolute times took (26 characters a sample)


@given(st.lists(st.tuples(st.integers(0, 5000), st.sampled_from(SAMPLED_STATES), st.integers(0, 3)),
                max_size=NODE_HISTORY_KEPT + 40))
def test_the_timeline_shows_the_last_changes_at_their_times(steps: list[tuple[int, str, int]]) -> None:
    """Against a plain list of (time, counts) kept the obvious way."""
    history, expected, at, counts = "", [], T0, dict(NONE)
    for millis, state, n in steps:
        at += timedelta(milliseconds=millis)
        counts = dict(counts) | {state: n}
        history = record_node_counts(history, counts, at)
        shown = {s: c for s, c in counts.items() if c}
        if (expected and expected[-1][1] != shown) or (not expected and shown):
            expected.append((at, shown))
    assert [(s.time, s.counts) for s in samples_of(history)] == expected[-NODE_HISTORY_KEPT:]
    assert newest_node_counts(history) == counts  # what the nodes gauge reports: the counts last recorded


@pytest.mark.parametrize("stored", ["{m},2;+1500,0,1,1;+500", "{m},2;+1500,0,1,1", "{m},0,1,1;-1500,2",
                                    "{m},0,1,1,0,0,0"])
def test_the_newest_counts_are_read_from_every_format(stored: str) -> None:
    history = stored.format(m=int(T0.timestamp() * 1000))
    newest = samples_of(history)[-1].counts
    assert newest_node_counts(history) == NONE | newest


@pytest.mark.parametrize("broken", ["", ";", "garbage", "1796218377730,x"])
def test_a_history_that_does_not_parse_reads_as_no_nodes_rather_than_failing(broken: str) -> None:
    assert newest_node_counts(broken) == NONE


def test_a_history_written_oldest_first_is_read_and_extended() -> None:
    """Clusters stored while the newest sample came last (``+`` deltas) keep their timeline."""
    millis = int(T0.timestamp() * 1000)
    stored = f"{millis},2;+1500,0,1,1;+500"
    history = record_node_counts(stored, NONE | {"running": 3}, T0 + timedelta(seconds=3))
    assert [(s.time, s.counts) for s in samples_of(history)] == [
        (T0, {"preparing": 2}), (T0 + timedelta(seconds=1.5), {"idle": 1, "running": 1}),
        (T0 + timedelta(seconds=2), {}), (T0 + timedelta(seconds=3), {"running": 3})]


def test_a_single_sample_in_absolute_times_with_its_zeros_is_not_repeated() -> None:
    millis = int(T0.timestamp() * 1000)
    stored = f"{millis},2,0,0,0,0,0"
    assert record_node_counts(stored, NONE | {"preparing": 2}, T0 + timedelta(seconds=1)) == stored


def history_of(changes: int, start: datetime = T0) -> str:
    history = ""
    for n in range(changes):
        history = record_node_counts(history, {"running": n % 3, "idle": 1}, start + timedelta(seconds=n))
    return history


def test_the_cluster_keeps_its_newest_samples_and_the_archive_the_rest_of_the_timeline() -> None:
    assert split_node_history(history_of(SAMPLES_IN_CLUSTER - 1)) == (history_of(SAMPLES_IN_CLUSTER - 1), "")
    whole = history_of(SAMPLES_IN_CLUSTER)
    kept, moved = split_node_history(whole)
    assert samples_of(kept) == samples_of(whole)[-SAMPLES_LEFT_IN_CLUSTER:]
    archive = archived(None, "ws", "gpu", "uid-1", moved)
    assert samples_of(timeline(kept, archive, "uid-1")) == samples_of(whole)
    assert samples_of(timeline(kept, archived(archive, "ws", "gpu", "uid-1", moved), "uid-1")) == samples_of(whole)


def test_an_archive_keeps_the_latest_samples_only() -> None:
    archive = None
    for round_ in range(NODE_HISTORY_KEPT // (SAMPLES_IN_CLUSTER - SAMPLES_LEFT_IN_CLUSTER) + 2):
        _, moved = split_node_history(history_of(SAMPLES_IN_CLUSTER, T0 + timedelta(hours=round_)))
        archive = archived(archive, "ws", "gpu", "uid-1", moved)
    assert archive is not None and len(samples_of(archive.node_history)) == NODE_HISTORY_KEPT
    newest_moved = SAMPLES_IN_CLUSTER - SAMPLES_LEFT_IN_CLUSTER - 1  # the samples a history of one a second moves
    assert samples_of(archive.node_history)[-1].time == T0 + timedelta(hours=round_, seconds=newest_moved)


def test_a_cluster_created_again_with_the_name_starts_a_timeline_of_its_own() -> None:
    _, moved = split_node_history(history_of(SAMPLES_IN_CLUSTER))
    before = archived(None, "ws", "gpu", "uid-1", moved).model_copy(update={"etag": "7"})
    assert timeline("", before, "uid-2") == ""  # the earlier cluster's samples are not shown
    _, moved_later = split_node_history(history_of(SAMPLES_IN_CLUSTER, T0 + timedelta(days=1)))
    after = archived(before, "ws", "gpu", "uid-2", moved_later)
    assert after.etag == "7" and samples_of(after.node_history) == samples_of(moved_later)  # replaces it
