"""The tombstone of a cluster name: which deleted incarnation applied which events, for how long."""

from __future__ import annotations

from shared.domain.cluster import APPLIED_EVENTS_KEPT, Cluster
from shared.domain.tombstone import INCARNATIONS_KEPT, TOMBSTONE_KEPT, bury
from tests.unit.builders import T0, make_cluster


def incarnation(uid: str, *event_ids: str) -> Cluster:
    cluster = make_cluster()
    cluster.uid, cluster.created_by_event = uid, f"create-{uid}"
    for event_id in (f"create-{uid}", *event_ids):
        cluster.record_applied(event_id)
    return cluster


def test_burying_the_same_incarnation_twice_writes_nothing_the_second_time() -> None:
    first = bury(None, incarnation("a", "delete-a"), T0)
    assert first is not None and first.knows("create-a", T0) and first.knows("delete-a", T0)
    assert bury(first, incarnation("a", "delete-a"), T0) is None


def test_burying_an_incarnation_again_with_more_events_updates_its_entry() -> None:
    first = bury(None, incarnation("a", "delete-a"), T0)
    again = bury(first, incarnation("a", "delete-a", "late-update"), T0)
    assert again is not None and [i.uid for i in again.incarnations] == ["a"]
    assert again.knows("late-update", T0) and again.knows("delete-a", T0)


def test_the_create_event_is_remembered_even_after_many_newer_events() -> None:
    busy = incarnation("a", *(f"submit-{n}" for n in range(APPLIED_EVENTS_KEPT)), "delete-a")
    assert not busy.has_applied("create-a")
    tombstone = bury(None, busy, T0)
    assert tombstone is not None and tombstone.knows("create-a", T0) and tombstone.knows("delete-a", T0)


def test_a_second_incarnation_is_added_and_the_first_is_still_known() -> None:
    first = bury(None, incarnation("a", "delete-a"), T0)
    both = bury(first, incarnation("b", "delete-b"), T0)
    assert both is not None and [i.uid for i in both.incarnations] == ["a", "b"]
    assert both.knows("delete-a", T0) and both.knows("delete-b", T0) and not both.knows("delete-c", T0)
    assert first is not None and [i.uid for i in first.incarnations] == ["a"]  # the input is not changed


def test_incarnations_are_forgotten_after_the_time_kept_and_beyond_the_number_kept() -> None:
    tombstone = bury(None, incarnation("old", "delete-old"), T0)
    assert tombstone is not None
    later = T0 + TOMBSTONE_KEPT
    assert not tombstone.knows("delete-old", later)
    for n in range(INCARNATIONS_KEPT + 2):
        tombstone = bury(tombstone, incarnation(f"u{n}", f"delete-u{n}"), later)
        assert tombstone is not None
    assert len(tombstone.incarnations) == INCARNATIONS_KEPT
    assert [i.uid for i in tombstone.incarnations][-1] == f"u{INCARNATIONS_KEPT + 1}"
    assert not tombstone.knows("delete-u0", later) and tombstone.knows(f"delete-u{INCARNATIONS_KEPT + 1}", later)
