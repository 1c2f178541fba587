"""The simulator drives the real reconcile: exact figures on hand-made workloads, determinism, limits."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from shared.sim.compare import peer_policies, run_policies
from shared.sim.engine import SimConfig, simulate
from shared.sim.jobs import SimJob, Workload, make_workload
from shared.sim.lower_bound import ideal_node_seconds
from shared.sim.policy import amlcompute_v1, computeplane
from shared.sim.preemption import RatePreemption
from shared.sim.workloads import synthesize_philly

BOOT = 120.0


def hand_made() -> Workload:
    """a: 1 node 600 s at 0; b: 1 node 300 s at 700; c: 2 nodes 100 s at 2000."""
    return make_workload("hand", [SimJob("a", 0, 600, 1), SimJob("b", 700, 300, 1), SimJob("c", 2000, 100, 2)])


def test_hand_made_workload_gives_the_node_seconds_and_waits_computed_by_hand() -> None:
    # idle 300 s, boot 120 s:
    # n1 asked at 0, ready 120, runs a 120-720, runs b 720-1020 (b was submitted at 700: wait 20), released 1320
    # n2 asked at 700 for b, ready 820 but b already runs on n1: idle from 820, released 1120
    # n3, n4 asked at 2000 for c, ready 2120, run c 2120-2220, released 2520
    result = simulate(hand_made(), computeplane(300), SimConfig(max_nodes=4, boot_seconds=BOOT))
    assert result.ledger.node_seconds == pytest.approx(1320 + 420 + 2 * 520)
    assert result.ledger.busy_node_seconds == pytest.approx(600 + 300 + 2 * 100)
    assert sorted(result.waits) == pytest.approx([20, 120, 120])
    assert (result.ledger.provisions, result.ledger.releases) == (4, 4)
    assert not result.unfinished


def test_hand_made_ideal_is_work_plus_unavoidable_boots_and_warm_gaps() -> None:
    # work 1,100; level 1: first boot 120, gap 700-600=100 kept warm, gap 2000-1000 rebooted 120; level 2: boot 120
    assert ideal_node_seconds(hand_made().jobs, BOOT) == pytest.approx(1100 + 120 + 100 + 120 + 120)


def test_hand_made_lower_bound_follows_the_policys_own_job_starts() -> None:
    # runs a 120-720 and b 720-1020 back to back on level 1 (boot 120, no gap), c 2120-2220 on levels 1-2:
    # level 1 gap 1100 -> boot 120; level 2 first boot 120
    (metrics,) = run_policies(hand_made(), [computeplane(300)], SimConfig(max_nodes=4, boot_seconds=BOOT))
    assert metrics.lower_bound_node_hours * 3600 == pytest.approx(1100 + 120 + 120 + 120)
    assert metrics.node_hours * 3600 == pytest.approx(2780)


def test_the_same_seed_gives_the_same_figures() -> None:
    runtimes = [60.0, 300.0, 900.0, 3600.0, 7200.0]
    config = SimConfig(max_nodes=32, priority="lowpriority", preemption=RatePreemption(0.5), seed=7)

    def run() -> tuple[object, ...]:
        workload = synthesize_philly(runtimes, days=0.2, seed=7)
        result = simulate(workload, computeplane(120), config)
        return result.waits, result.ledger, result.jobs_failed

    first = run()
    assert first == run()
    assert first[1].preemptions > 0  # type: ignore[attr-defined]


def test_following_the_timer_resync_changes_nothing() -> None:
    workload = synthesize_philly([30.0, 600.0, 2400.0], days=0.1, seed=3)
    quiet = simulate(workload, computeplane(300), SimConfig(max_nodes=16))
    resync = simulate(workload, computeplane(300), SimConfig(max_nodes=16, follow_resync=True))
    assert (quiet.waits, quiet.ledger) == (resync.waits, resync.ledger)
    assert resync.reconciles > quiet.reconciles


def test_no_policy_ever_holds_more_than_max_nodes() -> None:
    burst = make_workload("burst", [SimJob(f"j{i}", i * 5.0, 400.0, 1 + i % 3) for i in range(30)])
    config = SimConfig(max_nodes=5)
    for metrics in run_policies(burst, peer_policies(BOOT), config):
        assert metrics.peak_nodes <= 5, metrics.label
        assert metrics.jobs_never_started == 0, metrics.label


def test_a_vcpu_quota_caps_the_nodes_held() -> None:
    burst = make_workload("burst", [SimJob(f"j{i}", 0.0, 300.0, 1) for i in range(6)])
    result = simulate(burst, computeplane(0), SimConfig(max_nodes=10, quota_vcpus=12))  # NC6s_v3: 6 vCPUs
    assert result.ledger.peak_nodes == 2
    assert len(result.waits) == 6


@dataclass(frozen=True)
class PreemptedAfter:
    """Every low-priority node is preempted this long after it is ready."""

    seconds: float
    label: str = "fixed"

    def preemption_after(self, ready_at: float, rng: random.Random) -> float | None:
        return ready_at + self.seconds


def test_a_preempted_job_is_retried_then_fails_and_its_lost_work_is_counted() -> None:
    # one 600 s job, max_retries 1; nodes die 100 s after boot: attempt 1 runs 120-220, attempt 2 runs 340-440;
    # AmlCompute gives up after its retries (ComputePlane's fallback would not: tests/sim/test_low_priority_sim.py)
    job = make_workload("one", [SimJob("a", 0.0, 600.0, 1)])
    config = SimConfig(max_nodes=2, priority="lowpriority", preemption=PreemptedAfter(100.0), max_retries=1)
    result = simulate(job, amlcompute_v1(), config)
    assert result.jobs_failed == 1
    assert result.ledger.preemptions == 2
    assert result.ledger.lost_node_seconds == pytest.approx(200.0)
    assert result.ledger.node_seconds == pytest.approx(220.0 + 220.0)  # billing stops at the preemption


def test_preemption_needs_low_priority_nodes() -> None:
    with pytest.raises(ValueError, match="low-priority"):
        simulate(hand_made(), computeplane(), SimConfig(preemption=RatePreemption(1.0)))
