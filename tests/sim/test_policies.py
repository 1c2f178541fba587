"""The peers' own logic: cluster-autoscaler scans, Batch evaluations, the adaptive warm pool."""

from __future__ import annotations

import pytest

from shared.sim.adaptive import AdaptiveWarmPoolPolicy
from shared.sim.batch_autoscale import BatchAutoscalePolicy
from shared.sim.cluster_autoscaler import ClusterAutoscalerPolicy
from shared.sim.engine import SimConfig, simulate
from shared.sim.jobs import SimJob, make_workload
from shared.sim.policy import fixed_timeout

BOOT = 120.0
CONFIG = SimConfig(max_nodes=8, boot_seconds=BOOT)


def test_cluster_autoscaler_scales_up_at_the_next_scan_and_down_after_ten_unneeded_minutes() -> None:
    # job at 3 s: the scan at 10 s asks for a node, ready at 130 s (wait 127), the job runs to 230 s; the node is
    # unneeded from 230 s and released by the first scan 10 min later (830 s)
    result = simulate(make_workload("one", [SimJob("a", 3.0, 100.0, 1)]), ClusterAutoscalerPolicy(), CONFIG)
    assert result.waits == pytest.approx((127.0,))
    assert result.ledger.node_seconds == pytest.approx(830.0 - 10.0)


def test_batch_autoscale_waits_for_the_evaluation_and_averages_pending_tasks() -> None:
    # job at 5 s: the 900 s evaluation averages 1 pending task over the last 180 s -> target 1, ready at 1,020 s;
    # the job ends at 1,120 s and the 1,800 s evaluation sees no task in [1,620, 1,800] -> target 0
    result = simulate(make_workload("one", [SimJob("a", 5.0, 100.0, 1)]), BatchAutoscalePolicy(900.0), CONFIG)
    assert result.waits == pytest.approx((1015.0,))
    assert result.ledger.node_seconds == pytest.approx(1800.0 - 900.0)


def test_adaptive_policy_keeps_only_the_warm_pool_and_releases_the_rest_at_once() -> None:
    # 4 one-node jobs at 0 s end together at 1,120 s. Demand seen: 4 nodes in 1,120 s, so the pool is
    # ceil(4 / 1120 x 120) = 1 node; 3 nodes go at once, the last when the cap (idle 1,800 s) ends
    burst = make_workload("burst", [SimJob(f"j{i}", 0.0, 1000.0, 1) for i in range(4)])
    adaptive = simulate(burst, AdaptiveWarmPoolPolicy(BOOT, rate_window_seconds=3600.0), CONFIG)
    fixed = simulate(burst, fixed_timeout(1800), CONFIG)
    assert adaptive.ledger.releases == 4
    assert adaptive.ledger.node_seconds == pytest.approx(4 * 1120.0 + 1800.0)
    assert fixed.ledger.node_seconds == pytest.approx(4 * (1120.0 + 1800.0))
