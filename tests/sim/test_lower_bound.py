"""Each policy pays at least the offline bound of its own job starts; the ideal (no waits) is the reference."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.sim.compare import frontier_policies, peer_policies, run_policies
from shared.sim.engine import SimConfig
from shared.sim.jobs import SimJob, make_workload
from shared.sim.lower_bound import ideal_node_seconds, lower_bound_node_seconds
from shared.sim.policy import fixed_timeout
from shared.sim.preemption import NoPreemption, RatePreemption
from shared.sim.workloads import synthesize_philly

BOOT = 120.0
jobs = st.lists(st.tuples(st.integers(0, 4000), st.integers(1, 3000), st.integers(1, 4)), min_size=1, max_size=10)


@settings(max_examples=25, deadline=None)
@given(jobs, st.integers(1, 64), st.sampled_from([0.0, 2.0]))
def test_lower_bound_is_at_most_every_policys_node_hours(raw: list[tuple[int, int, int]], max_nodes: int,
                                                         preemptions_per_hour: float) -> None:
    workload = make_workload("random", [SimJob(f"j{i}", s, d, min(n, max_nodes)) for i, (s, d, n) in enumerate(raw)])
    config = SimConfig(max_nodes=max_nodes, boot_seconds=BOOT,
                       priority="lowpriority" if preemptions_per_hour else "dedicated",
                       preemption=RatePreemption(preemptions_per_hour) if preemptions_per_hour else NoPreemption())
    for metrics in run_policies(workload, peer_policies(BOOT) + frontier_policies(BOOT), config):
        assert metrics.lower_bound_node_hours <= metrics.node_hours + 1e-9, metrics.label


def test_the_ideal_can_be_beaten_by_a_wait_that_lines_two_jobs_up() -> None:
    # a: 1 s at 0; b: 1 s at 121. With idle 0, a waits for its boot, ends at 121 and hands its node to b.
    workload = make_workload("aligned", [SimJob("a", 0.0, 1.0, 1), SimJob("b", 121.0, 1.0, 1)])
    (metrics,) = run_policies(workload, [fixed_timeout(0)], SimConfig(max_nodes=2, boot_seconds=BOOT))
    assert metrics.node_hours * 3600 == pytest.approx(122.0)
    assert metrics.ideal_node_hours * 3600 == pytest.approx(2 + 2 * BOOT)
    assert metrics.lower_bound_node_hours * 3600 == pytest.approx(2 + BOOT)


def test_on_a_philly_slice_every_peer_is_within_reach_of_the_ideal() -> None:
    workload = synthesize_philly([45.0, 300.0, 1200.0, 5000.0, 20000.0], days=0.3, seed=11)
    for metrics in run_policies(workload, peer_policies(BOOT), SimConfig(max_nodes=256, boot_seconds=BOOT)):
        assert 1.0 <= metrics.ratio_to_lower_bound < 2.0, metrics.label
        assert 1.0 <= metrics.ratio_to_ideal < 2.0, metrics.label


def test_a_single_job_needs_its_work_and_one_boot_per_node() -> None:
    assert ideal_node_seconds([SimJob("a", 10.0, 500.0, 3)], BOOT) == 3 * 500 + 3 * BOOT


def test_back_to_back_runs_reuse_the_warm_node() -> None:
    runs = [(0.0, 100.0, 1), (100.0, 200.0, 1), (230.0, 330.0, 1), (1000.0, 1100.0, 2)]
    assert lower_bound_node_seconds(runs, BOOT) == 300 + 200 + BOOT + 0 + 30 + BOOT + BOOT
