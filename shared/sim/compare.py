"""Policies side by side on one workload, and the cost-versus-wait frontier of fixed idle timeouts.

``run_policies`` takes a ``map`` so a caller can spread the simulations over processes; policies that decide alike
(the same ``cache_key``, e.g. ComputePlane at 1800 s and AmlCompute v1) are simulated once.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from shared.sim.adaptive import AdaptiveWarmPoolPolicy
from shared.sim.batch_autoscale import BatchAutoscalePolicy
from shared.sim.cluster_autoscaler import ClusterAutoscalerPolicy
from shared.sim.engine import RunResult, SimConfig, simulate
from shared.sim.jobs import Workload
from shared.sim.lower_bound import ideal_node_seconds
from shared.sim.metrics import PolicyMetrics, summarize
from shared.sim.policy import (
    ScalingPolicy,
    amlcompute_v1,
    amlcompute_v2,
    computeplane,
    fixed_timeout,
    skypilot_autostop,
)
from shared.sim.recovery import PreemptionRecovery

FIXED_TIMEOUTS = (0, 30, 60, 120, 300, 600, 1800)
ADAPTIVE_HORIZONS = (1.0, 2.0, 4.0)

SimulationTask = tuple[Workload, ScalingPolicy, SimConfig]
MapFunction = Callable[[Callable[[SimulationTask], RunResult], Iterable[SimulationTask]], Iterator[RunResult]]


def peer_policies(boot_seconds: float, computeplane_idle_seconds: int = 1800,
                  computeplane_recovery: PreemptionRecovery | None = None) -> list[ScalingPolicy]:
    return [computeplane(computeplane_idle_seconds, computeplane_recovery), amlcompute_v1(), amlcompute_v2(),
            skypilot_autostop(), ClusterAutoscalerPolicy(), BatchAutoscalePolicy(900.0), BatchAutoscalePolicy(300.0),
            AdaptiveWarmPoolPolicy(boot_seconds)]


def frontier_policies(boot_seconds: float) -> list[ScalingPolicy]:
    fixed: list[ScalingPolicy] = [fixed_timeout(t) for t in FIXED_TIMEOUTS]
    return fixed + [AdaptiveWarmPoolPolicy(boot_seconds, h) for h in ADAPTIVE_HORIZONS]


def run_simulation(task: SimulationTask) -> RunResult:
    """One simulation (a top-level function, so a process pool can run it)."""
    workload, policy, config = task
    return simulate(workload, policy, config)


def run_policies(workload: Workload, policies: list[ScalingPolicy], config: SimConfig,
                 map_fn: MapFunction = map) -> list[PolicyMetrics]:
    unique: dict[tuple[object, ...], ScalingPolicy] = {}
    for policy in policies:
        unique.setdefault(policy.cache_key(), policy)
    keys = list(unique)
    results = dict(zip(keys, map_fn(run_simulation, [(workload, unique[k], config) for k in keys]), strict=True))
    ideal = ideal_node_seconds(workload.jobs, config.boot_seconds)
    price = config.vm().price_per_hour(config.priority)
    dedicated_price = config.vm().price_per_hour("dedicated")
    metrics = []
    for policy in policies:
        run = replace(results[policy.cache_key()], label=policy.label, short_label=policy.short_label)
        metrics.append(summarize(run, ideal, config.boot_seconds, price, dedicated_price))
    return metrics


# --- the frontier --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FrontierPoint:
    metrics: PolicyMetrics
    fixed: bool  # a fixed idle timeout (the frontier's own points) or a policy placed against it
    dominated_by: tuple[str, ...]  # fixed timeouts at most as costly and at most as slow (one strictly)
    dominates: tuple[str, ...]  # fixed timeouts it beats on both
    frontier_wait_at_same_cost: float | None  # mean wait the fixed-timeout frontier reaches at these node-hours


def dominates(a: PolicyMetrics, b: PolicyMetrics) -> bool:
    no_worse = a.node_hours <= b.node_hours and a.wait_mean_seconds <= b.wait_mean_seconds
    better = a.node_hours < b.node_hours or a.wait_mean_seconds < b.wait_mean_seconds
    return no_worse and better


def frontier(fixed: list[PolicyMetrics], others: list[PolicyMetrics]) -> list[FrontierPoint]:
    """Each fixed timeout and each other policy, with who dominates whom on (node-hours, mean wait)."""
    points = []
    for metrics, is_fixed in [*((m, True) for m in fixed), *((m, False) for m in others)]:
        points.append(FrontierPoint(
            metrics=metrics, fixed=is_fixed,
            dominated_by=tuple(f.short_label for f in fixed if f is not metrics and dominates(f, metrics)),
            dominates=tuple(f.short_label for f in fixed if f is not metrics and dominates(metrics, f)),
            frontier_wait_at_same_cost=None if is_fixed else wait_on_frontier(fixed, metrics.node_hours)))
    return points


def wait_on_frontier(fixed: list[PolicyMetrics], node_hours: float) -> float | None:
    """Linear interpolation of mean wait over the fixed timeouts' (node-hours, mean wait), cheapest first."""
    ordered = sorted((m.node_hours, m.wait_mean_seconds) for m in fixed)
    costs = [c for c, _ in ordered]
    if not ordered or node_hours < costs[0] or node_hours > costs[-1]:
        return None
    i = bisect.bisect_left(costs, node_hours)
    if costs[i] == node_hours or i == 0:
        return ordered[i][1]
    (c0, w0), (c1, w1) = ordered[i - 1], ordered[i]
    return w0 + (w1 - w0) * (node_hours - c0) / (c1 - c0)
