"""An adaptive idle policy: keep warm only the idle nodes the next boot-time's worth of arrivals should use.

Ski-rental: an idle node is worth keeping while the expected wait for the job that would use it is shorter than a boot
(keeping it costs idle node-time; releasing it costs a boot, in node-time and in that job's wait). With node demand
arriving at rate r (nodes a second, learned from the arrivals of the last ``rate_window_seconds``), the k-th idle
node is expected to be taken after about k / r seconds, so the first ``ceil(r x boot x horizon_boots)`` idle nodes
are worth keeping and the rest are released at once. ``max_idle_seconds`` is the cluster's idle timeout as usual: no
node is kept longer, whatever the rate. Scale-up is reconcile's, unchanged.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime

from shared.domain.actions import Action
from shared.domain.cluster import Cluster, NodeState
from shared.sim.policy import ScalingPolicy, StepPlan, release_idle_nodes, spare_node_count


class AdaptiveWarmPoolPolicy(ScalingPolicy):
    def __init__(self, boot_seconds: float, horizon_boots: float = 1.0, rate_window_seconds: float = 3600.0,
                 max_idle_seconds: int = 1800) -> None:
        self.label = f"Adaptive warm pool (ski-rental: keep idle the nodes {horizon_boots:g} boot(s) of demand needs)"
        self.short_label = f"Adaptive {horizon_boots:g}b"
        self.idle_seconds = max_idle_seconds
        self.boot_seconds, self.horizon_boots = boot_seconds, horizon_boots
        self.rate_window_seconds = rate_window_seconds
        self._arrivals: deque[tuple[float, int]] = deque()  # (time, nodes asked for) within the window
        self._nodes_in_window = 0

    def cache_key(self) -> tuple[object, ...]:
        return (type(self).__name__, self.boot_seconds, self.horizon_boots, self.rate_window_seconds,
                self.idle_seconds)

    def on_arrival(self, now: float, node_count: int) -> None:
        self._arrivals.append((now, node_count))
        self._nodes_in_window += node_count

    def warm_pool_size(self, now: float) -> int:
        self._forget_before(now - self.rate_window_seconds)
        observed_for = min(max(now, self.boot_seconds), self.rate_window_seconds)
        rate = self._nodes_in_window / observed_for
        return math.ceil(rate * self.boot_seconds * self.horizon_boots - 1e-9)

    def _forget_before(self, start: float) -> None:
        while self._arrivals and self._arrivals[0][0] < start:
            self._nodes_in_window -= self._arrivals.popleft()[1]

    def plan(self, cluster: Cluster, now: float) -> StepPlan:
        return StepPlan(self.idle_seconds, None)

    def after_reconcile(self, cluster: Cluster, now: float, now_dt: datetime, decided: list[Action]) -> list[Action]:
        surplus = len(cluster.nodes_in(NodeState.IDLE)) - self.warm_pool_size(now)
        return release_idle_nodes(cluster, min(surplus, spare_node_count(cluster)))

    def wake_at(self, cluster: Cluster, now: float) -> float | None:
        """When the oldest arrival leaves the window (the pool may shrink), while any node is idle."""
        if not cluster.nodes_in(NodeState.IDLE) or not self._arrivals:
            return None
        return self._arrivals[0][0] + self.rate_window_seconds
