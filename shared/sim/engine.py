"""The event loop: jobs arrive, the real ``reconcile`` decides, the simulated provider carries the actions out.

Events at one instant are applied together, then the cluster is reconciled once. Wake-ups come from arrivals, node
readiness, run ends, preemptions, ``WakeUpAt`` actions and the policy's own ``wake_at``. The timer's resync
(``next_reconcile_at`` of a busy cluster, every 60 s) heals lost events; the simulator loses none, so it is followed
only when ``SimConfig.follow_resync`` is set (a test checks that the result is the same either way).
"""

from __future__ import annotations

import copy
import heapq
import math
import random
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

from shared.domain.actions import Action, ProjectJob, ProvisionNode, ReleaseNode, StartRun, StopRun, WakeUpAt
from shared.domain.cluster import ClusterSpec
from shared.domain.cluster_changes import accept_job, new_cluster
from shared.domain.job import Job, JobSpec, JobState
from shared.domain.reconcile import ReconcilePolicy, reconcile
from shared.domain.vm_sizes import VmSize, load_catalogue
from shared.sim.jobs import SimJob, Workload
from shared.sim.policy import ScalingPolicy
from shared.sim.preemption import NoPreemption, PreemptionModel
from shared.sim.provider import ProviderLedger, SimulatedProvider
from shared.sim.recovery import DEADLINE_ALLOWANCE_SECONDS, DEFAULT_DEADLINE_SLACK
from shared.sim.step_cap import step_cap, vcpu_quota
from shared.sim.virtual_time import to_datetime, to_seconds

WORKSPACE, CLUSTER = "sim", "cluster"
LOCATION = "eastus"
MAX_SIMULATED_SECONDS = 400 * 86400.0  # beyond the last arrival: a safety stop, reported as unfinished


@dataclass(frozen=True)
class SimConfig:
    vm_size: str = "Standard_NC6s_v3"
    max_nodes: int = 100
    boot_seconds: float = 120.0
    priority: Literal["dedicated", "lowpriority"] = "dedicated"
    preemption: PreemptionModel = field(default_factory=NoPreemption)
    quota_vcpus: int | None = None  # the vCPU quota that binds this cluster; None: quota never binds
    max_retries: int = 3
    # Jobs that save a checkpoint this often lose only the work since the last one to a preemption (None: none).
    checkpoint_interval_seconds: int | None = None
    deadline_slack: float = DEFAULT_DEADLINE_SLACK  # how late is late (and the deadline jobs declare, if they do)
    seed: int = 0
    follow_resync: bool = False
    reconcile_policy: ReconcilePolicy = field(default_factory=ReconcilePolicy)

    def vm(self) -> VmSize:
        return load_catalogue().get(self.vm_size)


@dataclass(frozen=True)
class RunResult:
    label: str
    short_label: str
    jobs: int
    waits: tuple[float, ...]  # submit -> first start, seconds, for every job that started
    jobs_never_started: int
    jobs_failed: int  # gave up after max_retries interrupted attempts
    jobs_rejected: int  # refused at submit
    jobs_late: int  # finished after submit + deadline_slack x runtime (+ an allowance for a boot), or never
    ledger: ProviderLedger
    reconciles: int
    end_seconds: float
    unfinished: bool  # stopped by MAX_SIMULATED_SECONDS or with nodes no policy would release


class _Event(IntEnum):
    ARRIVAL = 0
    NODE_READY = 1
    RUN_FINISHED = 2
    PREEMPT = 3
    WAKE = 4


_QueuedEvent = tuple[float, int, _Event, str, int]  # (time, sequence, kind, job or node id, attempt or job index)


class Simulation:
    def __init__(self, workload: Workload, policy: ScalingPolicy, config: SimConfig) -> None:
        if config.priority == "dedicated" and not isinstance(config.preemption, NoPreemption):
            raise ValueError("preemptions apply to low-priority nodes: set priority='lowpriority'")
        self.workload, self.config = workload, config
        self.policy = copy.deepcopy(policy)  # policies keep state: every run starts from a fresh copy
        self.vm = config.vm()
        low_priority = config.priority == "lowpriority"
        spec = ClusterSpec(vm_size=self.vm.name, max_nodes=config.max_nodes, vm_priority=config.priority,
                           idle_seconds_before_scaledown=self.policy.idle_seconds,
                           low_priority_fallback=self.policy.recovery.fallback if low_priority else None)
        self.cluster = new_cluster(WORKSPACE, CLUSTER, spec, uid="5151a7ed", now=to_datetime(0.0))
        self.quota = (None if config.quota_vcpus is None
                      else vcpu_quota(config.quota_vcpus, self.vm, config.priority, LOCATION))
        self.provider = SimulatedProvider()
        self._events: list[_QueuedEvent] = []
        self._seq = 0
        self._wakes: set[float] = set()
        self._arrivals_left = len(workload.jobs)
        self._index = {job.job_id: i for i, job in enumerate(workload.jobs)}
        self._first_start: dict[str, float] = {}
        self._completed_at: dict[str, float] = {}
        self._failed: set[str] = set()
        self._rejected: set[str] = set()
        self._reconciles = 0
        for index, job in enumerate(workload.jobs):
            self._push(job.submit_seconds, _Event.ARRIVAL, job.job_id, index)

    # --- the loop ----------------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        now = 0.0
        limit = (self.workload.jobs[-1].submit_seconds if self.workload.jobs else 0.0) + MAX_SIMULATED_SECONDS
        unfinished = False
        while self._events:
            now = self._events[0][0]
            if now > limit:
                unfinished = True
                break
            while self._events and self._events[0][0] == now:
                self._apply(heapq.heappop(self._events), now)
            self._step(now)
            if self._done():
                break
        if self.provider.live_node_count or self.cluster.jobs:
            unfinished = True
            self.provider.bill_until(now)
        return self._result(now, unfinished)

    def _done(self) -> bool:
        return not self._arrivals_left and not self.cluster.jobs and not self.provider.live_node_count

    def _push(self, at: float, kind: _Event, key: str, number: int) -> None:
        self._seq += 1
        heapq.heappush(self._events, (round(at, 6), self._seq, kind, key, number))

    def _push_wake(self, at: float, now: float) -> None:
        """A wake-up later than ``now`` (one for this instant would repeat the reconcile just done)."""
        at = round(at, 6)
        if at > now and at not in self._wakes:
            self._wakes.add(at)
            self._push(at, _Event.WAKE, "", 0)

    # --- the world changes -------------------------------------------------------------------------------------
    def _apply(self, event: _QueuedEvent, now: float) -> None:
        _, _, kind, key, number = event
        if kind is _Event.ARRIVAL:
            self._arrive(self.workload.jobs[number], now)
        elif kind is _Event.NODE_READY:
            if self.provider.mark_ready(key) and self.provider.priority_of(key) == "lowpriority":
                # one stream per node: the n-th node of every policy draws the same (common random numbers)
                lost_at = self.config.preemption.preemption_after(now, random.Random(f"{self.config.seed}:{key}"))
                if lost_at is not None:
                    self._push(lost_at, _Event.PREEMPT, key, 0)
        elif kind is _Event.RUN_FINISHED:
            self.provider.finish_run((key, number), now)
        elif kind is _Event.PREEMPT:
            self.provider.preempt(key, now)
        else:
            self._wakes.discard(now)

    def _arrive(self, job: SimJob, now: float) -> None:
        self._arrivals_left -= 1
        recovery = self.policy.recovery
        declares = recovery.declares_deadlines
        document = Job(workspace=WORKSPACE, id=job.job_id, cluster=CLUSTER, submitted_at=to_datetime(now),
                       spec=JobSpec(command=["simulated"], node_count=job.node_count,
                                    max_retries=self.config.max_retries,
                                    max_preemption_retries=(self.config.max_retries
                                                            if recovery.max_preemption_retries is None
                                                            else recovery.max_preemption_retries),
                                    on_preemption_retries_exhausted=recovery.exhausted,
                                    checkpoint_interval_seconds=self.config.checkpoint_interval_seconds,
                                    deadline=to_datetime(self._deadline(job)) if declares else None,
                                    expected_runtime_seconds=math.ceil(job.duration_seconds) if declares else None))
        for action in accept_job(self.cluster, document):
            if isinstance(action, ProjectJob) and action.update.state is JobState.FAILED:
                self._rejected.add(job.job_id)
        self.policy.on_arrival(now, job.node_count)

    def _deadline(self, job: SimJob) -> float:
        return job.submit_seconds + self.config.deadline_slack * job.duration_seconds + DEADLINE_ALLOWANCE_SECONDS

    # --- one decision ------------------------------------------------------------------------------------------
    def _step(self, now: float) -> None:
        now_dt = to_datetime(now)
        plan = self.policy.plan(self.cluster, now)
        if plan.idle_seconds != self.cluster.spec.idle_seconds_before_scaledown:
            self.cluster.spec = self.cluster.spec.model_copy(update={"idle_seconds_before_scaledown":
                                                                     plan.idle_seconds})
        cap = step_cap(self.quota, plan.scale_up_allowance)
        actions = reconcile(self.cluster, self.provider.observation, now_dt, self.config.reconcile_policy, cap)
        self._reconciles += 1
        actions += self.policy.after_reconcile(self.cluster, now, now_dt, actions)
        self._carry_out(actions, now)
        wake = self.policy.wake_at(self.cluster, now)
        if wake is not None:
            self._push_wake(wake, now)
        if self.config.follow_resync and self.cluster.next_reconcile_at is not None:
            self._push_wake(to_seconds(self.cluster.next_reconcile_at), now)

    def _carry_out(self, actions: list[Action], now: float) -> None:
        for action in actions:
            match action:
                case ProvisionNode(node_id, priority):
                    if self.provider.provision(node_id, now, priority or self.config.priority):
                        self._push(now + self.config.boot_seconds, _Event.NODE_READY, node_id, 0)
                case ReleaseNode(node_id):
                    self.provider.release(node_id, now)
                case StartRun(job_id, attempt, node_ids):
                    if self.provider.start_run((job_id, attempt), node_ids, now,
                                               self.config.checkpoint_interval_seconds):
                        self._first_start.setdefault(job_id, now)
                        duration = self.workload.jobs[self._index[job_id]].duration_seconds
                        left = max(duration - self.provider.saved_seconds.get(job_id, 0.0), 0.0)
                        self._push(now + left, _Event.RUN_FINISHED, job_id, attempt)
                case StopRun(job_id, attempt):
                    self.provider.stop_run((job_id, attempt), now)
                case ProjectJob(update) if update.state is JobState.FAILED:
                    self._failed.add(update.job_id)
                case ProjectJob(update) if update.state is JobState.COMPLETED:
                    self._completed_at[update.job_id] = now
                case WakeUpAt(at):
                    self._push_wake(to_seconds(at), now)
                case _:
                    pass

    def _result(self, now: float, unfinished: bool) -> RunResult:
        submitted = {j.job_id: j.submit_seconds for j in self.workload.jobs}
        waits = tuple(start - submitted[job_id] for job_id, start in self._first_start.items())
        started = set(self._first_start)
        return RunResult(
            label=self.policy.label, short_label=self.policy.short_label, jobs=len(self.workload.jobs), waits=waits,
            jobs_never_started=sum(1 for j in self.workload.jobs
                                   if j.job_id not in started and j.job_id not in self._rejected),
            jobs_failed=len(self._failed - self._rejected), jobs_rejected=len(self._rejected),
            jobs_late=sum(1 for j in self.workload.jobs if j.job_id not in self._rejected
                          and self._completed_at.get(j.job_id, math.inf) > self._deadline(j) + 1e-6),
            ledger=self.provider.ledger, reconciles=self._reconciles, end_seconds=now, unfinished=unfinished)


def simulate(workload: Workload, policy: ScalingPolicy, config: SimConfig) -> RunResult:
    return Simulation(workload, policy, config).run()
