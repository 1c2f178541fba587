"""The fallback through the real handlers (SQLite store, the queue's delivery, the fake provider): a preempted job
moves to a dedicated node that is booked in the quota ledger against the dedicated limits, apart from the
cluster's low-priority cores, and every promise still holds once the cluster has scaled down."""

from __future__ import annotations

from pathlib import Path

from shared.domain import events as ev
from tests.reliability.world import WORKSPACE, World


def test_a_fallen_back_job_books_dedicated_cores_apart_and_gives_them_back(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.send(ev.CLUSTER_CREATE, "spot", {
        "name": "spot", "vm_size": "STANDARD_D2_V2", "max_nodes": 2, "idle_seconds_before_scaledown": 60,
        "vm_priority": "lowpriority", "low_priority_fallback": {"trigger": "preemptions", "after_preemptions": 1}},
        "create-spot")
    world.submit("spot", "j", seconds=30)
    world.settle(10)
    [low] = world.provider.nodes
    assert world.provider.nodes[low].priority == "lowpriority"
    ledger = world.store.get_quota_ledger("eastus")
    assert ledger is not None and ledger.allocations[f"{WORKSPACE}/spot"].priority == "lowpriority"
    assert world.provider.preempt(low)
    world.settle(10)
    [dedicated] = [n for n in world.provider.nodes.values() if not n.lost]
    assert dedicated.priority == "dedicated" and not world.provider.preempt(dedicated.node_id)
    ledger = world.store.get_quota_ledger("eastus")
    assert ledger is not None
    booked = ledger.allocations[f"{WORKSPACE}/spot#dedicated"]
    assert (booked.priority, booked.vcpus) == ("dedicated", 2)
    cluster = world.store.get_cluster(WORKSPACE, "spot")  # each priority's nodes under a booking of their own
    assert cluster is not None and cluster.quota_booked[f"{WORKSPACE}/spot#dedicated"] == booked.booking
    world.settle(120)
    job = world.jobs()["j"]
    assert job.state.value == "Completed" and job.attempts == 2
    world.settle(300)
    ledger = world.store.get_quota_ledger("eastus")
    assert ledger is not None and ledger.allocations == {}
    cluster = world.store.get_cluster(WORKSPACE, "spot")
    assert cluster is not None and cluster.quota_booked == {}  # given back: neither booking covers anything now
    assert world.broken_promises(settled=True, scaled_down=True) == []
