"""Azure Batch pool autoscale with the documented $PendingTasks formula, evaluated every 15 min (5 min at best):

    $samples = $PendingTasks.GetSamplePercent(180 * TimeInterval_Second);
    $tasks = $samples < 70 ? 0 : avg($PendingTasks.GetSample(180 * TimeInterval_Second));
    $TargetDedicatedNodes = min(maxNodes, $tasks);
    $NodeDeallocationOption = taskcompletion;

$PendingTasks is active plus running tasks; a job of n nodes counts n (a multi-instance task). The average over the
last 180 s is taken exactly from the simulated demand (Batch samples every 30 s) and rounded up. Between evaluations
the pool holds its target: lost nodes are replaced; a scale-down releases idle nodes at once and busy ones when their
task completes. Evaluations that could change nothing are skipped.
"""

from __future__ import annotations

import math
from datetime import datetime

from shared.domain.actions import Action
from shared.domain.autoscale import demand
from shared.domain.cluster import Cluster, NodeState
from shared.sim.policy import NEVER_SECONDS, ScalingPolicy, StepPlan, active_nodes, add_nodes, release_idle_nodes


class BatchAutoscalePolicy(ScalingPolicy):
    def __init__(self, evaluation_seconds: float = 900.0, sample_seconds: float = 180.0) -> None:
        self.label = f"Azure Batch autoscale ($PendingTasks formula, every {evaluation_seconds / 60:g} min)"
        self.short_label = f"Batch {evaluation_seconds / 60:g}m"
        self.idle_seconds = NEVER_SECONDS
        self.evaluation_seconds, self.sample_seconds = evaluation_seconds, sample_seconds
        self._demand_changes: list[tuple[float, int]] = [(0.0, 0)]  # (time, node demand from then on)
        self._target = 0
        self._removals_pending = 0
        self._last_evaluation = -1

    def cache_key(self) -> tuple[object, ...]:
        return (type(self).__name__, self.evaluation_seconds, self.sample_seconds)

    def plan(self, cluster: Cluster, now: float) -> StepPlan:
        return StepPlan(self.idle_seconds, 0)  # reconcile places jobs; only the formula adds nodes

    def after_reconcile(self, cluster: Cluster, now: float, now_dt: datetime, decided: list[Action]) -> list[Action]:
        self._record_demand(now, demand(cluster))
        evaluation = round(now / self.evaluation_seconds)
        if abs(now - evaluation * self.evaluation_seconds) < 1e-6 and evaluation != self._last_evaluation:
            self._last_evaluation = evaluation
            self._evaluate(cluster, now)
        actions: list[Action] = []
        if self._removals_pending:
            actions = release_idle_nodes(cluster, self._removals_pending)
            self._removals_pending -= len(actions)
        missing = self._target - len(active_nodes(cluster))
        if missing > 0 and not self._removals_pending:
            actions += add_nodes(cluster, missing, now_dt)
        return actions

    def _evaluate(self, cluster: Cluster, now: float) -> None:
        average = self._average_demand(now - self.sample_seconds, now) if now >= 0.7 * self.sample_seconds else 0.0
        self._target = min(cluster.spec.max_nodes, math.ceil(average - 1e-9))
        self._removals_pending = max(len(active_nodes(cluster)) - self._target, 0)

    def _record_demand(self, now: float, nodes: int) -> None:
        if nodes != self._demand_changes[-1][1]:
            self._demand_changes.append((now, nodes))
        horizon = now - 2 * self.sample_seconds
        while len(self._demand_changes) > 1 and self._demand_changes[1][0] <= horizon:
            self._demand_changes.pop(0)

    def _average_demand(self, start: float, end: float) -> float:
        total = 0.0
        for i, (at, nodes) in enumerate(self._demand_changes):
            until = self._demand_changes[i + 1][0] if i + 1 < len(self._demand_changes) else end
            total += nodes * max(min(until, end) - max(at, start), 0.0)
        return total / (end - start)

    def wake_at(self, cluster: Cluster, now: float) -> float | None:
        """The next evaluation, unless it would find demand, target and pool all equal and steady."""
        next_evaluation = (math.floor(now / self.evaluation_seconds + 1e-9) + 1) * self.evaluation_seconds
        current = self._demand_changes[-1]
        steady = (current[0] <= next_evaluation - self.sample_seconds and current[1] == self._target
                  == len(active_nodes(cluster)) and not self._removals_pending
                  and not cluster.nodes_in(NodeState.PREPARING))
        return None if steady else next_evaluation
