"""Every message delivered two or three times, out of order, and late (scheduled messages after newer ones, copies
after newer messages): the day ends exactly as a clean run does, and every event is applied at most once."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.domain.cluster import APPLIED_EVENTS_KEPT
from tests.reliability.broker import DeliveryChaos
from tests.reliability.scenarios import BUSY_DAY, play
from tests.reliability.world import World


@pytest.fixture(scope="module")
def clean_outcome(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    world = World(tmp_path_factory.mktemp("clean"))
    play(world, BUSY_DAY)
    assert world.broken_promises(settled=True, scaled_down=True) == []
    return world.outcome()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("sessions", [True, False], ids=["sessions", "no-sessions"])
def test_every_message_twice_or_thrice_out_of_order_and_late_ends_like_a_clean_run(
        tmp_path: Path, clean_outcome: dict[str, object], seed: int, sessions: bool) -> None:
    chaos = DeliveryChaos(copies=(2, 3), duplicate_delay=(0.0, 45.0), late_scheduled=(0.0, 20.0), shuffle=True,
                          respect_sessions=sessions)
    world = World(tmp_path, chaos=chaos, seed=seed)
    play(world, BUSY_DAY)
    assert world.broker.stats.duplicate_deliveries >= world.broker.stats.published  # every message at least twice
    assert world.outcome() == clean_outcome
    assert world.broken_promises(settled=True, scaled_down=True) == []


def test_a_late_copy_of_an_older_update_does_not_undo_a_newer_one(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.create("cpuone", max_nodes=4)
    world.update("cpuone", "update-1", min_nodes=2)
    world.settle(30)
    world.update("cpuone", "update-2", min_nodes=1)
    world.settle(30)
    world.redeliver("update-1")  # late
    world.settle(30)
    cluster = world.store.get_cluster("ws", "cpuone")
    assert cluster is not None and cluster.spec.min_nodes == 1
    assert world.broken_promises(settled=True) == []


def test_a_late_copy_of_an_update_after_200_newer_events_does_not_undo_the_newer_settings(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.create("cpuone", max_nodes=4)
    world.update("cpuone", "update-old", min_nodes=2)
    world.settle(5)
    for n in range(APPLIED_EVENTS_KEPT):
        world.submit("cpuone", f"quick-{n}", seconds=1)
    world.update("cpuone", "update-new", min_nodes=0)
    world.settle(60)
    world.redeliver("update-old")  # within minutes of being sent: inside the broker's duplicate window
    world.settle(5)
    cluster = world.store.get_cluster("ws", "cpuone")
    assert cluster is not None and cluster.spec.min_nodes == 0


def test_a_late_copy_of_a_submit_after_the_job_ended_does_not_run_it_again(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.create("cpuone")
    world.submit("cpuone", "once", seconds=2)
    world.settle(60)
    assert world.jobs()["once"].state.value == "Completed"
    world.redeliver("submit-once")
    world.settle(60)
    assert world.provider.runs_started == 1
    assert world.jobs()["once"].state.value == "Completed"


def test_a_late_node_ready_for_a_released_node_changes_nothing(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.create("cpuone", idle=10)
    world.submit("cpuone", "j", seconds=1)
    world.settle(120)
    node_ready = [m for m in world.broker.bodies if m.startswith("node-ready-")]
    assert node_ready and world.provider.released == 1
    before = world.outcome()
    world.redeliver(node_ready[0])
    world.settle(60)
    assert world.outcome() == before
    assert world.broken_promises(settled=True, scaled_down=True) == []


def test_a_late_copy_of_create_after_the_cluster_was_deleted_does_not_bring_it_back(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.create("cpuone")
    world.settle(30)
    world.delete("cpuone")
    world.settle(30)
    assert world.store.get_cluster("ws", "cpuone") is None
    world.redeliver("create-cpuone")
    world.settle(30)
    assert world.store.get_cluster("ws", "cpuone") is None


def test_a_late_copy_of_delete_does_not_delete_the_cluster_created_again_since(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.create("cpuone", event_id="create-1")
    world.settle(30)
    world.delete("cpuone", event_id="delete-1")
    world.settle(30)
    world.create("cpuone", event_id="create-2")
    world.settle(30)
    world.redeliver("delete-1")
    world.settle(30)
    assert world.store.get_cluster("ws", "cpuone") is not None
    assert world.broken_promises(settled=True) == []


def test_a_late_copy_of_an_update_does_not_change_the_cluster_created_again_since(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.create("cpuone", max_nodes=4, event_id="create-1")
    world.update("cpuone", "update-1", min_nodes=2)
    world.settle(30)
    world.delete("cpuone", event_id="delete-1")
    world.settle(60)
    world.create("cpuone", max_nodes=4, event_id="create-2")  # never updated: no newer setting to compare with
    world.settle(30)
    world.redeliver("update-1")
    world.redeliver("create-1")
    world.settle(30)
    cluster = world.store.get_cluster("ws", "cpuone")
    assert cluster is not None and cluster.spec.min_nodes == 0 and cluster.created_by_event == "create-2"
    assert world.broker.dead_letters == []  # dropped as stale, not refused as a conflicting create
    assert world.broken_promises(settled=True) == []


def test_a_create_sent_while_the_old_cluster_is_still_deleting_takes_effect_once_it_is_gone(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.create("cpuone", max_nodes=2, event_id="create-1")
    world.submit("cpuone", "long", seconds=600)
    world.settle(30)
    world.delete("cpuone", event_id="delete-1")
    world.create("cpuone", max_nodes=3, event_id="create-2")  # the old one still has a node to give back
    world.settle(300)
    cluster = world.store.get_cluster("ws", "cpuone")
    assert cluster is not None and cluster.spec.max_nodes == 3 and cluster.created_by_event == "create-2"
    assert world.broker.dead_letters == []
