"""Autoscale and placement policies: pure functions of (cluster, now)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.domain.autoscale import gang_placements, idle_nodes_to_release, scale_target
from shared.domain.cluster import NodeState
from tests.unit.builders import add_job, add_node, at, make_cluster


def test_scale_target_is_demand_clamped_to_max_nodes() -> None:
    cluster = make_cluster(max_nodes=2)
    for i in range(3):
        add_job(cluster, f"j{i}")
    assert scale_target(cluster) == 2


def test_scale_target_keeps_min_nodes_without_demand() -> None:
    assert scale_target(make_cluster(min_nodes=1)) == 1


def test_scale_target_is_capped_by_free_quota_but_never_below_busy_nodes() -> None:
    cluster = make_cluster(max_nodes=8)
    busy = add_node(cluster, NodeState.RUNNING, run_id="j0")
    add_job(cluster, "j0", running_on=[busy])
    for i in range(1, 5):
        add_job(cluster, f"j{i}")
    assert scale_target(cluster, quota_free_nodes=2) == 3
    assert scale_target(cluster, quota_free_nodes=0) == 1


def test_gang_placement_gives_a_job_all_its_nodes_or_none() -> None:
    cluster = make_cluster()
    add_node(cluster, NodeState.IDLE)
    add_job(cluster, "big", node_count=2)
    assert gang_placements(cluster) == []
    add_node(cluster, NodeState.IDLE)
    [(entry, nodes)] = gang_placements(cluster)
    assert entry.job_id == "big" and len(nodes) == 2


def test_placement_is_first_come_first_served_so_a_big_job_is_not_starved() -> None:
    cluster = make_cluster()
    add_node(cluster, NodeState.IDLE)
    add_job(cluster, "big", node_count=2, submitted=0)
    add_job(cluster, "small", node_count=1, submitted=1)
    assert gang_placements(cluster) == []  # the small job does not jump the queue


def test_idle_nodes_are_released_after_the_timeout_oldest_first_but_never_below_min_nodes() -> None:
    cluster = make_cluster(min_nodes=1, idle=60)
    old = add_node(cluster, NodeState.IDLE, idle_since=0)
    add_node(cluster, NodeState.IDLE, idle_since=30)
    add_node(cluster, NodeState.IDLE, idle_since=50)
    assert idle_nodes_to_release(cluster, at(59), target=1) == []
    assert idle_nodes_to_release(cluster, at(60), target=1) == [old]
    assert len(idle_nodes_to_release(cluster, at(500), target=1)) == 2  # one stays: min_nodes


def test_a_busy_node_is_never_released() -> None:
    cluster = make_cluster(idle=0)
    add_node(cluster, NodeState.RUNNING, run_id="j")
    assert idle_nodes_to_release(cluster, at(10_000), target=0) == []


@given(max_nodes=st.integers(0, 20), min_frac=st.floats(0, 1), jobs=st.lists(st.integers(1, 8), max_size=12),
       quota=st.one_of(st.none(), st.integers(0, 30)))
def test_scale_target_stays_within_bounds(max_nodes: int, min_frac: float, jobs: list[int],
                                          quota: int | None) -> None:
    cluster = make_cluster(max_nodes=max_nodes, min_nodes=int(max_nodes * min_frac))
    for i, n in enumerate(jobs):
        add_job(cluster, f"j{i}", node_count=n)
    target = scale_target(cluster, quota)
    assert 0 <= target <= max_nodes
    if quota is None:
        assert target >= cluster.spec.min_nodes
