"""The ids of the events a cluster applied, as its document keeps them: short keys in one string, so that a busy
cluster's writes stay small; documents and tombstones written by versions before still answer the same."""

from __future__ import annotations

import json
from base64 import urlsafe_b64encode
from datetime import timedelta
from hashlib import blake2b

from shared.domain.cluster import APPLIED_EVENTS_KEPT, Cluster, applied_event_key
from shared.domain.tombstone import BuriedIncarnation, ClusterTombstone
from tests.unit.builders import T0, make_cluster


def legacy_key(event_id: str) -> str:
    """The 12-character key versions before this one kept."""
    return urlsafe_b64encode(blake2b(event_id.encode(), digest_size=9).digest()).decode()


def busy_cluster() -> Cluster:
    cluster = make_cluster()
    for n in range(APPLIED_EVENTS_KEPT + 5):
        cluster.record_applied(f"submit-{n:04d}-{'x' * 30}")
    return cluster


def test_a_busy_cluster_remembers_its_last_events_through_a_save_and_a_read() -> None:
    stored = busy_cluster().model_dump_json()
    read = Cluster.model_validate_json(stored)
    assert read.has_applied(f"submit-{APPLIED_EVENTS_KEPT + 4:04d}-{'x' * 30}")
    assert read.has_applied(f"submit-0005-{'x' * 30}") and not read.has_applied(f"submit-0004-{'x' * 30}")
    assert not read.has_applied("submit-never-sent")
    # 10 characters an event, one string: 2,000 characters for the 200 kept, not 3,000 as a JSON list of 12
    assert len(json.loads(stored)["applied_events"]) == 10 * APPLIED_EVENTS_KEPT


def test_a_document_written_before_with_longer_keys_or_whole_ids_answers_the_same() -> None:
    old = json.loads(make_cluster().model_dump_json())
    old["applied_events"] = [legacy_key("submit-1"), "update-whole-id-2"]
    read = Cluster.model_validate(old)
    assert read.has_applied("submit-1") and read.has_applied("update-whole-id-2")
    assert not read.has_applied("submit-3")
    again = Cluster.model_validate_json(read.model_dump_json())  # rewritten in the new form, still the same
    assert again.has_applied("submit-1") and again.has_applied("update-whole-id-2")


def test_a_tombstone_written_before_with_longer_keys_still_knows_its_events() -> None:
    tombstone = ClusterTombstone(workspace="ws", name="gpu", incarnations=[BuriedIncarnation(
        uid="a", deleted_at=T0, event_ids=["create-a", legacy_key("delete-a")])])
    read = ClusterTombstone.model_validate_json(tombstone.model_dump_json())
    now = T0 + timedelta(minutes=1)
    assert read.knows("create-a", now) and read.knows("delete-a", now)
    assert not read.knows("delete-b", now)


def test_a_key_found_across_two_kept_keys_is_not_taken_for_an_applied_event() -> None:
    cluster = make_cluster()
    key = applied_event_key("submit-9")
    cluster.applied_events = "0" * 5 + key + "0" * 5  # two kept keys, each holding half of it
    assert not cluster.has_applied("submit-9")
    cluster.record_applied("submit-9")
    assert cluster.has_applied("submit-9") and cluster.applied_keys()[-1] == key


def test_a_whole_id_as_long_as_a_key_in_a_document_written_before_is_still_found() -> None:
    old = json.loads(make_cluster().model_dump_json())
    old["applied_events"] = ["cancel-abc", "cancel-ab"]  # 10 and 9 characters: whole ids, never keys
    read = Cluster.model_validate(old)
    assert read.has_applied("cancel-abc") and read.has_applied("cancel-ab")
