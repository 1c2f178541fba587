"""A scenario from command-line style options: the workload to replay and the simulated cluster. Shared by
``python -m bench.autoscale`` and ``computeplane simulate``. Files are read through ``shared.sim.workloads``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.sim.adaptive import AdaptiveWarmPoolPolicy
from shared.sim.batch_autoscale import BatchAutoscalePolicy
from shared.sim.cluster_autoscaler import ClusterAutoscalerPolicy
from shared.sim.engine import SimConfig
from shared.sim.jobs import Workload
from shared.sim.names import PolicyName, WorkloadFormat
from shared.sim.policy import ScalingPolicy, amlcompute_v1, amlcompute_v2, computeplane, skypilot_autostop
from shared.sim.preemption import NoPreemption, PreemptionModel, RatePreemption, TracePreemption
from shared.sim.recovery import PreemptionRecovery
from shared.sim.workloads import load_availability_trace, load_workload, shipped_workload


def policy_named(name: PolicyName, boot_seconds: float, idle_seconds: int = 1800,
                 recovery: PreemptionRecovery | None = None) -> ScalingPolicy:
    """``idle_seconds`` sets ComputePlane's idle timeout and the adaptive policy's cap; the peers keep theirs.
    ``recovery``: ComputePlane's handling of preempted jobs (default: the fallback with its default settings)."""
    match name:
        case PolicyName.COMPUTEPLANE:
            return computeplane(idle_seconds, recovery)
        case PolicyName.AMLCOMPUTE_V1:
            return amlcompute_v1()
        case PolicyName.AMLCOMPUTE_V2:
            return amlcompute_v2()
        case PolicyName.SKYPILOT:
            return skypilot_autostop()
        case PolicyName.CLUSTER_AUTOSCALER:
            return ClusterAutoscalerPolicy()
        case PolicyName.BATCH_15_MIN:
            return BatchAutoscalePolicy(900.0)
        case PolicyName.BATCH_5_MIN:
            return BatchAutoscalePolicy(300.0)
        case PolicyName.ADAPTIVE:
            return AdaptiveWarmPoolPolicy(boot_seconds, max_idle_seconds=idle_seconds)


@dataclass(frozen=True)
class ScenarioOptions:
    workload: Path | None = None  # None: the shipped Philly runtimes
    workload_format: WorkloadFormat | None = None
    preemption_trace: Path | None = None
    preemption_rate: float | None = None  # per node-hour
    seed: int = 1
    days: float | None = None
    start_day: float = 0.0
    max_nodes: int = 100
    vm_size: str = "Standard_NC6s_v3"
    boot_seconds: float = 120.0
    quota_vcpus: int | None = None
    jobs_per_day: float = 850.0
    checkpoint_seconds: int | None = None  # jobs checkpoint this often (low priority: only later work is lost)


def preemption_model(options: ScenarioOptions) -> PreemptionModel:
    if options.preemption_trace is not None:
        return TracePreemption(load_availability_trace(options.preemption_trace))
    if options.preemption_rate is not None:
        return RatePreemption(options.preemption_rate)
    return NoPreemption()


def build_scenario(options: ScenarioOptions) -> tuple[Workload, SimConfig]:
    """Preemptions make the nodes low priority (only those are preempted); otherwise they are dedicated."""
    preemption = preemption_model(options)
    config = SimConfig(vm_size=options.vm_size, max_nodes=options.max_nodes, boot_seconds=options.boot_seconds,
                       priority="dedicated" if isinstance(preemption, NoPreemption) else "lowpriority",
                       preemption=preemption, quota_vcpus=options.quota_vcpus, seed=options.seed,
                       checkpoint_interval_seconds=options.checkpoint_seconds or None)
    workload = load_workload(options.workload or shipped_workload("philly_runtime.csv"), options.workload_format,
                             max_nodes=options.max_nodes, seed=options.seed, days=options.days,
                             start_day=options.start_day, gpus_per_node=config.vm().gpus,
                             jobs_per_day=options.jobs_per_day)
    return workload, config


def describe(workload: Workload, config: SimConfig) -> list[str]:
    vm = config.vm()
    return [
        f"workload: {workload.name}, {len(workload.jobs)} jobs, {workload.node_seconds / 3600:,.0f} node-hours of work",
        *(f"  {note}" for note in workload.notes),
        f"cluster: {vm.name} {config.priority} (${vm.price_per_hour(config.priority)}/node-hour), max_nodes "
        f"{config.max_nodes}, boot {config.boot_seconds:g} s, quota "
        f"{'not binding' if config.quota_vcpus is None else f'{config.quota_vcpus} vCPUs'}, preemption "
        f"{config.preemption.label}, max_retries {config.max_retries}, seed {config.seed}",
        *([f"jobs checkpoint every {config.checkpoint_interval_seconds} s: a preemption loses the work since the "
           "last one"] if config.checkpoint_interval_seconds else []),
    ]
