"""The figures reported for one policy on one workload."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from shared.sim.engine import RunResult
from shared.sim.lower_bound import lower_bound_node_seconds


@dataclass(frozen=True)
class PolicyMetrics:
    label: str
    short_label: str
    jobs: int
    node_hours: float
    lower_bound_node_hours: float  # the same job starts with clairvoyant node management (see lower_bound)
    ideal_node_hours: float  # the workload with no waits at all, clairvoyant (a reference, not a strict floor)
    idle_fraction: float  # paid node time not running a job attempt (boots, idle nodes), over all paid node time
    wait_p50_seconds: float
    wait_p99_seconds: float
    wait_mean_seconds: float
    cost_usd: float  # low-priority node-hours at the low-priority price, dedicated ones at the dedicated price
    dedicated_node_hours: float  # on a low-priority cluster: its fallback nodes
    cost_of_dedicated_usd: float  # the same workload with no waits on dedicated nodes (the ideal, all dedicated)
    scale_operations_per_job: float  # (nodes provisioned + nodes released) / jobs
    preemptions: int
    preemption_lost_node_hours: float  # node time of attempts a preemption killed (redone from the start)
    jobs_failed: int  # gave up after exhausting retries
    jobs_rejected: int
    jobs_late: int  # finished after submit + slack x runtime, or never
    jobs_never_started: int
    peak_nodes: int
    reconciles: int
    unfinished: bool

    @property
    def ratio_to_lower_bound(self) -> float:
        return self.node_hours / self.lower_bound_node_hours if self.lower_bound_node_hours else math.nan

    @property
    def cost_share_of_dedicated(self) -> float:
        return self.cost_usd / self.cost_of_dedicated_usd if self.cost_of_dedicated_usd else math.nan

    @property
    def ratio_to_ideal(self) -> float:
        return self.node_hours / self.ideal_node_hours if self.ideal_node_hours else math.nan


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (a value that occurred); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(math.ceil(pct / 100.0 * len(ordered)), 1)
    return ordered[rank - 1]


def summarize(run: RunResult, ideal_node_seconds: float, boot_seconds: float,
              price_per_node_hour: float, dedicated_price_per_node_hour: float | None = None) -> PolicyMetrics:
    """``price_per_node_hour`` is the cluster's own priority's; dedicated nodes (a low-priority cluster's fallback)
    are charged at ``dedicated_price_per_node_hour`` (the same price when it is not given)."""
    ledger = run.ledger
    dedicated_price = price_per_node_hour if dedicated_price_per_node_hour is None else dedicated_price_per_node_hour
    dedicated_hours = ledger.dedicated_node_seconds / 3600.0
    bound = lower_bound_node_seconds(ledger.busy_intervals, boot_seconds)
    node_hours = ledger.node_seconds / 3600.0
    idle = (ledger.node_seconds - ledger.busy_node_seconds) / ledger.node_seconds if ledger.node_seconds else 0.0
    return PolicyMetrics(
        label=run.label, short_label=run.short_label, jobs=run.jobs, node_hours=node_hours,
        lower_bound_node_hours=bound / 3600.0, ideal_node_hours=ideal_node_seconds / 3600.0,
        idle_fraction=max(idle, 0.0),
        wait_p50_seconds=percentile(run.waits, 50), wait_p99_seconds=percentile(run.waits, 99),
        wait_mean_seconds=sum(run.waits) / len(run.waits) if run.waits else math.nan,
        cost_usd=(node_hours - dedicated_hours) * price_per_node_hour + dedicated_hours * dedicated_price
        if dedicated_price_per_node_hour is not None else node_hours * price_per_node_hour,
        dedicated_node_hours=dedicated_hours,
        cost_of_dedicated_usd=ideal_node_seconds / 3600.0 * dedicated_price,
        scale_operations_per_job=(ledger.provisions + ledger.releases) / run.jobs if run.jobs else 0.0,
        preemptions=ledger.preemptions, preemption_lost_node_hours=ledger.lost_node_seconds / 3600.0,
        jobs_failed=run.jobs_failed, jobs_rejected=run.jobs_rejected, jobs_late=run.jobs_late,
        jobs_never_started=run.jobs_never_started,
        peak_nodes=ledger.peak_nodes, reconciles=run.reconciles, unfinished=run.unfinished)
