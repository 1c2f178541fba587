"""What a policy does with a job whose low-priority node was preempted, in the simulator.

ComputePlane's answer is the real reconcile's (``shared.domain.low_priority``): requeue, and with the cluster's
``low_priority_fallback`` move a job that preemption keeps back to dedicated nodes. The peers are modelled with the
same settings: AmlCompute and the schedulers that only retry give up after their retries (AmlCompute fails a
preempted job and its users resubmit by hand); SkyPilot's managed jobs recover on spot capacity without limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.domain.low_priority import AfterPreemptionRetries, FallbackTrigger, LowPriorityFallback

DEFAULT_DEADLINE_SLACK = 2.0  # a job's deadline: submit + this many times its runtime + DEADLINE_ALLOWANCE_SECONDS
DEADLINE_ALLOWANCE_SECONDS = 600.0  # for a queue and a boot: a short job is not late because of one boot


@dataclass(frozen=True)
class PreemptionRecovery:
    label: str
    fallback: LowPriorityFallback | None = None
    exhausted: AfterPreemptionRetries | None = None
    max_preemption_retries: int | None = None  # None: the simulation's max_retries
    declares_deadlines: bool = False  # jobs tell the cluster their deadline and runtime (the deadline trigger)

    def cache_key(self) -> tuple[object, ...]:
        fallback = None if self.fallback is None else tuple(self.fallback.model_dump().values())
        return (fallback, self.exhausted, self.max_preemption_retries, self.declares_deadlines)


GIVE_UP_AFTER_RETRIES = PreemptionRecovery("fails after its retries", exhausted=AfterPreemptionRetries.FAIL)
DEADLINE_TRIGGERS = (FallbackTrigger.UNIFORM_PROGRESS, FallbackTrigger.DEADLINE)  # jobs declare deadlines for these
RECOVER_FOREVER = PreemptionRecovery("recovers on low priority without limit", exhausted=AfterPreemptionRetries.REQUEUE)


def computeplane_fallback(fallback: LowPriorityFallback | None = None) -> PreemptionRecovery:
    """ComputePlane with the fallback enabled (its default settings unless given)."""
    chosen = fallback or LowPriorityFallback()
    return PreemptionRecovery(f"fallback to dedicated: {describe_fallback(chosen)}", fallback=chosen,
                              declares_deadlines=chosen.trigger in DEADLINE_TRIGGERS)


def describe_fallback(fallback: LowPriorityFallback) -> str:
    match fallback.trigger:
        case FallbackTrigger.PREEMPTIONS:
            return f"after {fallback.after_preemptions} preemption(s)"
        case FallbackTrigger.LOST_TIME:
            return f"past {fallback.lost_time_budget_seconds / 3600:g} h lost to preemption"
        case FallbackTrigger.UNIFORM_PROGRESS:
            return "when behind uniform progress towards the deadline"
        case FallbackTrigger.DEADLINE:
            return "only when it would otherwise miss its deadline"
