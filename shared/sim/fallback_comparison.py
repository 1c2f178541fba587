"""ComputePlane's fallback triggers side by side on one low-priority workload: fixed N preemptions, a lost-time
budget, uniform progress towards a deadline and the deadline alone (for these two, jobs declare submit + 2 x
runtime + 10 min), next to no fallback. Every candidate is judged on the same deadlines ("late").

The best fails no job, costs at most half of dedicated nodes, then finishes the most jobs in time for the least
money; it is the default trigger (``shared.domain.low_priority.DEFAULT_FALLBACK_TRIGGER``).
"""

from __future__ import annotations

from shared.domain.low_priority import FallbackTrigger, LowPriorityFallback
from shared.sim.metrics import PolicyMetrics
from shared.sim.policy import ScalingPolicy, computeplane
from shared.sim.recovery import RECOVER_FOREVER, computeplane_fallback

AFTER_PREEMPTIONS = (1, 2, 4)
LOST_TIME_BUDGETS_SECONDS = (1800, 3600, 7200)
MAX_COST_SHARE = 0.5  # of the same workload on dedicated nodes


def fallback_candidates(idle_seconds: int = 1800) -> list[ScalingPolicy]:
    fallbacks = [LowPriorityFallback(trigger=FallbackTrigger.PREEMPTIONS, after_preemptions=n)
                 for n in AFTER_PREEMPTIONS]
    fallbacks += [LowPriorityFallback(trigger=FallbackTrigger.LOST_TIME, lost_time_budget_seconds=s)
                  for s in LOST_TIME_BUDGETS_SECONDS]
    fallbacks += [LowPriorityFallback(trigger=FallbackTrigger.UNIFORM_PROGRESS),
                  LowPriorityFallback(trigger=FallbackTrigger.DEADLINE)]
    policies: list[ScalingPolicy] = [computeplane(idle_seconds, RECOVER_FOREVER, "no fallback")]
    for fallback in fallbacks:
        recovery = computeplane_fallback(fallback)
        policies.append(computeplane(idle_seconds, recovery, recovery.label.removeprefix("fallback to dedicated: ")))
    return policies


def best_fallback(compared: list[PolicyMetrics]) -> PolicyMetrics:
    """No job failed first; then within half the cost of dedicated; then the fewest jobs late; then the cheapest."""
    return min(compared, key=lambda m: (m.jobs_failed, m.cost_share_of_dedicated > MAX_COST_SHARE, m.jobs_late,
                                        m.cost_usd))


FALLBACK_HEADERS = ["ComputePlane on low priority", "jobs failed", "jobs late or unfinished", "cost ($)",
                    "cost / all dedicated (%)", "dedicated node-hours", "preemptions", "wait p50 (s)"]


def fallback_rows(compared: list[PolicyMetrics]) -> tuple[list[str], list[list[str]]]:
    rows = [[m.short_label, str(m.jobs_failed), str(m.jobs_late), f"{m.cost_usd:,.0f}",
             f"{100 * m.cost_share_of_dedicated:.1f}", f"{m.dedicated_node_hours:,.1f}", str(m.preemptions),
             f"{m.wait_p50_seconds:.0f}"] for m in compared]
    return FALLBACK_HEADERS, rows
