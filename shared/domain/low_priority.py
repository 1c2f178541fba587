"""Low-priority clusters that never lose a job to preemption: what happens to a job after its node is preempted.

Preemptions are counted apart from infrastructure failures (``max_retries``): a preempted attempt is not the job's
fault and not the node's, it is the price of cheap capacity. A preempted job is requeued on low-priority nodes until

- the cluster's opt-in ``low_priority_fallback`` fires: its next attempts run on dedicated nodes of the same cluster
  (``trigger``: after ``after_preemptions`` preemptions; when the time lost to preemption passes
  ``lost_time_budget_seconds``; for a job with a deadline, when it falls behind uniform progress towards it, or
  only when it would otherwise miss it), or
- its ``max_preemption_retries`` run out: then ``on_preemption_retries_exhausted`` decides (``dedicated``,
  ``requeue`` on low priority without limit, or ``fail`` as AmlCompute does). Unset, it is ``requeue``: the default
  never drops the work, and a job that checkpoints keeps making progress on cheap nodes.

A job with a deadline falls back, whatever the trigger, as soon as one more preemption could make it miss the
deadline. Pure functions of the job's scheduling entry and ``now``: the server and the simulator decide alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Priority = Literal["dedicated", "lowpriority"]
DEDICATED: Final = "dedicated"
DEFAULT_MAX_PREEMPTION_RETRIES: Final = 3


class FallbackTrigger(StrEnum):
    PREEMPTIONS = "preemptions"  # after a fixed number of preemptions of the job
    LOST_TIME = "lost_time"  # when the job's time lost to preemption passes a budget
    UNIFORM_PROGRESS = "uniform_progress"  # when a job with a deadline falls behind uniform progress towards it
    DEADLINE = "deadline"  # only when a job with a deadline would otherwise miss it (every trigger does that too)


class AfterPreemptionRetries(StrEnum):
    DEDICATED = "dedicated"  # the next attempts run on dedicated nodes
    REQUEUE = "requeue"  # keep trying on low-priority nodes, without limit
    FAIL = "fail"  # AmlCompute's behaviour: the job fails with the preemption as its reason


# Chosen by comparing the triggers in the simulator (`python -m bench.autoscale --compare-fallback`; see README):
# falling back only when a job would otherwise miss its deadline finishes every job, in time, for the least money
# (fixed N, lost-time budgets and uniform progress move the long jobs to dedicated nodes early and cost 60-94% of
# dedicated). A job without a deadline then stays on low priority (checkpointing, it keeps making progress) unless
# its exhausted preemption retries say otherwise.
DEFAULT_FALLBACK_TRIGGER: Final = FallbackTrigger.DEADLINE
DEFAULT_AFTER_PREEMPTIONS: Final = 2
DEFAULT_LOST_TIME_BUDGET_SECONDS: Final = 3600


class LowPriorityFallback(BaseModel):
    """A low-priority cluster's opt-in fallback to dedicated nodes (each against its own quota)."""

    model_config = ConfigDict(extra="forbid")

    trigger: FallbackTrigger = DEFAULT_FALLBACK_TRIGGER
    after_preemptions: int = Field(default=DEFAULT_AFTER_PREEMPTIONS, ge=1, le=100)
    lost_time_budget_seconds: int = Field(default=DEFAULT_LOST_TIME_BUDGET_SECONDS, ge=0, le=30 * 86400)


class PreemptionOutcome(StrEnum):
    REQUEUE_LOW_PRIORITY = "requeue"
    DEDICATED = "dedicated"
    FAIL = "fail"


def checkpointed_seconds(run_seconds: float, checkpoint_interval_seconds: int | None) -> float:
    """Of an attempt that ran ``run_seconds``, the work saved by its last checkpoint (none without checkpoints)."""
    if not checkpoint_interval_seconds or run_seconds <= 0:
        return 0.0
    return (run_seconds // checkpoint_interval_seconds) * checkpoint_interval_seconds


def would_miss_deadline(*, deadline: datetime, runtime_seconds: float, progress_seconds: float, now: datetime,
                        restart_seconds: float, checkpoint_interval_seconds: int | None) -> bool:
    """Could one more preemption on low priority make the job miss its deadline? It would lose the work since its
    last checkpoint (all of the attempt without checkpoints) and a restart; dedicated nodes need one restart."""
    remaining = max(runtime_seconds - progress_seconds, 0.0)
    at_risk = min(checkpoint_interval_seconds or remaining, remaining) + restart_seconds
    return (deadline - now).total_seconds() < remaining + restart_seconds + at_risk


def behind_uniform_progress(*, submitted_at: datetime, deadline: datetime, runtime_seconds: float,
                            progress_seconds: float, now: datetime) -> bool:
    """Uniform progress (Can't Be Late, NSDI '24): a job should have done the share of its work that the share of
    its time before the deadline has passed."""
    window = (deadline - submitted_at).total_seconds()
    if window <= 0:
        return True
    due = runtime_seconds * min((now - submitted_at).total_seconds() / window, 1.0)
    return progress_seconds < due


@dataclass(frozen=True)
class PreemptedJob:
    """What the decision needs to know about a job whose node was just preempted (this preemption counted)."""

    preemptions: int
    lost_seconds: float
    progress_seconds: float
    submitted_at: datetime
    deadline: datetime | None
    runtime_seconds: float | None
    checkpoint_interval_seconds: int | None
    max_preemption_retries: int
    exhausted: AfterPreemptionRetries | None


def after_preemption(job: PreemptedJob, fallback: LowPriorityFallback | None, now: datetime,
                     restart: timedelta) -> PreemptionOutcome:
    """Where a job's next attempt runs after a preemption."""
    if fallback is not None and _falls_back(job, fallback, now, restart.total_seconds()):
        return PreemptionOutcome.DEDICATED
    if job.preemptions <= job.max_preemption_retries:
        return PreemptionOutcome.REQUEUE_LOW_PRIORITY
    action = job.exhausted or AfterPreemptionRetries.REQUEUE
    return {AfterPreemptionRetries.DEDICATED: PreemptionOutcome.DEDICATED,
            AfterPreemptionRetries.REQUEUE: PreemptionOutcome.REQUEUE_LOW_PRIORITY,
            AfterPreemptionRetries.FAIL: PreemptionOutcome.FAIL}[action]


def _falls_back(job: PreemptedJob, fallback: LowPriorityFallback, now: datetime, restart_seconds: float) -> bool:
    if job.deadline is not None and job.runtime_seconds:
        if would_miss_deadline(deadline=job.deadline, runtime_seconds=job.runtime_seconds,
                               progress_seconds=job.progress_seconds, now=now, restart_seconds=restart_seconds,
                               checkpoint_interval_seconds=job.checkpoint_interval_seconds):
            return True
        if fallback.trigger is FallbackTrigger.UNIFORM_PROGRESS and behind_uniform_progress(
                submitted_at=job.submitted_at, deadline=job.deadline, runtime_seconds=job.runtime_seconds,
                progress_seconds=job.progress_seconds, now=now):
            return True
    if fallback.trigger is FallbackTrigger.PREEMPTIONS:
        return job.preemptions >= fallback.after_preemptions
    if fallback.trigger is FallbackTrigger.LOST_TIME:
        return job.lost_seconds > fallback.lost_time_budget_seconds
    return False


def fallback_from_text(text: str) -> LowPriorityFallback | None:
    """The fallback a user names on a command line: ``on`` (the defaults), ``off``, ``preemptions[:N]``,
    ``lost_time[:SECONDS]``, ``uniform_progress`` or ``deadline``. Raises ValueError with the rule."""
    name, _, value = text.strip().lower().replace("-", "_").partition(":")
    if name in ("off", "none"):
        return None
    if name in ("on", "default") and not value:
        return LowPriorityFallback()
    try:
        trigger = FallbackTrigger(name)
    except ValueError:
        raise ValueError(f"'{text}' is not one of on, off, preemptions[:N], lost_time[:SECONDS], uniform_progress, "
                         "deadline") from None
    if value and trigger in (FallbackTrigger.DEADLINE, FallbackTrigger.UNIFORM_PROGRESS):
        raise ValueError(f"{trigger.value} takes no number: each job declares its own deadline")
    if value and not value.isdigit():
        raise ValueError(f"'{value}' is not a whole number")
    if not value:
        return LowPriorityFallback(trigger=trigger)
    field = "after_preemptions" if trigger is FallbackTrigger.PREEMPTIONS else "lost_time_budget_seconds"
    try:
        return LowPriorityFallback.model_validate({"trigger": trigger, field: int(value)})
    except ValidationError as exc:
        raise ValueError(f"{field}: {exc.errors()[0]['msg']}") from None
