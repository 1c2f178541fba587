"""Kubernetes cluster-autoscaler (defaults): a scan every 10 s; scale up for pending pods; remove a node unneeded
for 10 min (``--scale-down-unneeded-time``), but not within 10 min of a scale-up
(``--scale-down-delay-after-add``), at most 10 empty nodes a scan (``--max-empty-bulk-delete``).

Pods are placed at once on free nodes (the kube-scheduler, here reconcile's gang placement); only scale-up waits for
the next scan, and only scans release nodes. One job takes whole nodes, so "unneeded" is "idle". Scans that could
change nothing are skipped (the policy asks to be woken at the next scan that could).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from shared.domain.actions import Action, ProvisionNode
from shared.domain.autoscale import demand
from shared.domain.cluster import Cluster, NodeState
from shared.sim.policy import NEVER_SECONDS, ScalingPolicy, StepPlan, active_nodes, release_idle_nodes, spare_node_count
from shared.sim.virtual_time import to_seconds


class ClusterAutoscalerPolicy(ScalingPolicy):
    def __init__(self, scan_seconds: float = 10.0, unneeded_seconds: float = 600.0,
                 delay_after_add_seconds: float = 600.0, max_empty_bulk_delete: int = 10) -> None:
        self.label = "Kubernetes cluster-autoscaler (10 s scan, 10 min unneeded, 10 min after add)"
        self.short_label = "K8s CA"
        self.idle_seconds = NEVER_SECONDS
        self.scan_seconds, self.unneeded_seconds = scan_seconds, unneeded_seconds
        self.delay_after_add_seconds = delay_after_add_seconds
        self.max_empty_bulk_delete = max_empty_bulk_delete
        self._scan_due: float | None = None
        self._scanning = False
        self._last_scale_up = -math.inf

    def cache_key(self) -> tuple[object, ...]:
        return (type(self).__name__, self.scan_seconds, self.unneeded_seconds, self.delay_after_add_seconds,
                self.max_empty_bulk_delete)

    def plan(self, cluster: Cluster, now: float) -> StepPlan:
        self._scanning = self._scan_due is not None and now >= self._scan_due - 1e-6
        return StepPlan(self.idle_seconds, None if self._scanning else 0)

    def after_reconcile(self, cluster: Cluster, now: float, now_dt: datetime, decided: list[Action]) -> list[Action]:
        if not self._scanning:
            return []
        if any(isinstance(a, ProvisionNode) for a in decided):
            self._last_scale_up = now
            return []
        if now - self._last_scale_up < self.delay_after_add_seconds:
            return []
        unneeded_since = now_dt - timedelta(seconds=self.unneeded_seconds)
        count = min(spare_node_count(cluster), self.max_empty_bulk_delete)
        return release_idle_nodes(cluster, count, idle_before=unneeded_since)

    def wake_at(self, cluster: Cluster, now: float) -> float | None:
        """The next scan that could act: at once for pods no node is coming for, else when a node turns unneeded."""
        next_scan = (math.floor(now / self.scan_seconds + 1e-9) + 1) * self.scan_seconds
        room = cluster.spec.max_nodes - len(active_nodes(cluster))
        if demand(cluster) > len(active_nodes(cluster)) and room > 0:
            self._scan_due = next_scan
        elif spare_node_count(cluster) > 0 and (idle := cluster.nodes_in(NodeState.IDLE)):
            earliest = min(to_seconds(n.idle_since) for n in idle if n.idle_since is not None)
            ready = max(earliest + self.unneeded_seconds, self._last_scale_up + self.delay_after_add_seconds, now)
            self._scan_due = max(math.ceil(ready / self.scan_seconds - 1e-9) * self.scan_seconds, next_scan)
        else:
            self._scan_due = None
        return self._scan_due
