"""The simulator on low priority: the real reconcile's fallback to dedicated nodes, checkpoints, and the bill."""

from __future__ import annotations

import pytest

from shared.domain.low_priority import FallbackTrigger, LowPriorityFallback
from shared.sim.compare import run_policies
from shared.sim.engine import SimConfig, simulate
from shared.sim.jobs import SimJob, make_workload
from shared.sim.policy import computeplane
from shared.sim.recovery import RECOVER_FOREVER, computeplane_fallback
from tests.sim.test_engine import PreemptedAfter  # only low-priority nodes are ever preempted

ALWAYS_PREEMPTED = SimConfig(max_nodes=2, priority="lowpriority", preemption=PreemptedAfter(100.0), max_retries=1)
ONE_JOB = make_workload("one", [SimJob("a", 0.0, 600.0, 1)])


def test_a_job_preemption_keeps_back_falls_back_to_a_dedicated_node_and_finishes() -> None:
    fallback = computeplane_fallback(LowPriorityFallback(trigger=FallbackTrigger.PREEMPTIONS, after_preemptions=2))
    result = simulate(ONE_JOB, computeplane(60, fallback), ALWAYS_PREEMPTED)
    assert result.jobs_failed == 0 and result.jobs_never_started == 0 and not result.unfinished
    assert result.ledger.preemptions == 2  # the dedicated node is never preempted
    # attempts 1 and 2 on low priority (120-220, 340-440), attempt 3 boots a dedicated node at 440: 560-1160
    assert result.ledger.busy_intervals[-1] == (560.0, 1160.0, 1)
    assert result.ledger.dedicated_node_seconds == pytest.approx(1160.0 + 60.0 - 440.0)  # released after 60 s idle


def test_dedicated_fallback_nodes_are_billed_at_the_dedicated_price() -> None:
    fallback = computeplane_fallback(LowPriorityFallback(trigger=FallbackTrigger.PREEMPTIONS, after_preemptions=1))
    [metrics] = run_policies(ONE_JOB, [computeplane(60, fallback)], ALWAYS_PREEMPTED)
    low_hours = (metrics.node_hours - metrics.dedicated_node_hours)
    assert metrics.cost_usd == pytest.approx(low_hours * 0.612 + metrics.dedicated_node_hours * 3.06)
    assert metrics.cost_of_dedicated_usd == pytest.approx(metrics.ideal_node_hours * 3.06)


def test_a_job_that_checkpoints_loses_only_the_work_since_its_last_checkpoint_and_finishes_on_low_priority() -> None:
    config = SimConfig(max_nodes=2, priority="lowpriority", preemption=PreemptedAfter(100.0),
                       checkpoint_interval_seconds=60)
    result = simulate(ONE_JOB, computeplane(60, RECOVER_FOREVER), config)
    # each attempt runs 100 s and keeps 60 of them: 9 preempted attempts save 540 s, the 10th runs the last 60 s
    assert result.jobs_failed == 0 and result.ledger.interrupted_runs == 9
    assert result.ledger.lost_node_seconds == pytest.approx(9 * 40.0)
    assert result.ledger.dedicated_node_seconds == 0.0


def test_the_default_fallback_moves_a_job_that_would_miss_its_deadline_to_dedicated_nodes() -> None:
    config = SimConfig(max_nodes=2, priority="lowpriority", preemption=PreemptedAfter(100.0))
    short = make_workload("short", [SimJob("a", 0.0, 600.0, 1)])
    deadline_fallback = simulate(short, computeplane(60), config)  # the default: uniform progress to a deadline
    assert deadline_fallback.jobs_failed == 0 and deadline_fallback.jobs_late == 0
    assert deadline_fallback.ledger.dedicated_node_seconds > 0
