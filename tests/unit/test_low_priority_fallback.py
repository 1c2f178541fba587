"""Low-priority clusters: preemptions counted apart from failures, and the fallback to dedicated nodes, decided by the
real reconcile (the same function the handlers and the simulator call)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.domain.actions import ProjectJob, ProvisionNode, StartRun
from shared.domain.cluster import Cluster, ClusterSpec, JobEntry, JobPhase, Node, NodeState
from shared.domain.cluster_changes import accept_job
from shared.domain.errors import InvalidField
from shared.domain.job import Job, JobSpec, JobState
from shared.domain.low_priority import AfterPreemptionRetries, FallbackTrigger, LowPriorityFallback
from shared.domain.observation import NodeStatus, Observation, ObservedNode, ObservedRun, RunStatus
from shared.domain.quota import QuotaLimits, QuotaUsage
from shared.domain.quota_ledger import QuotaAllowance
from shared.domain.reconcile import ReconcilePolicy, reconcile
from shared.domain.requests import ClusterCreate, JobSubmit, check_cluster_create, check_job_spec
from shared.domain.vm_sizes import load_catalogue
from tests.unit.builders import T0, at, make_cluster

POLICY = ReconcilePolicy(boot_timeout=timedelta(seconds=300), low_priority_restart=timedelta(seconds=120))


def low_priority_cluster(fallback: LowPriorityFallback | None = None, max_nodes: int = 4,
                         exhausted: AfterPreemptionRetries | None = None) -> Cluster:
    cluster = make_cluster(max_nodes=max_nodes, idle=600)
    cluster.spec = ClusterSpec(vm_size="STANDARD_D2_V2", max_nodes=max_nodes, vm_priority="lowpriority",
                               idle_seconds_before_scaledown=600, low_priority_fallback=fallback,
                               on_preemption_retries_exhausted=exhausted)
    return cluster


def submit(cluster: Cluster, job_id: str = "j1", **spec: object) -> JobEntry:
    accept_job(cluster, Job(workspace="ws", id=job_id, cluster="c1", submitted_at=T0,
                            spec=JobSpec(command=["train"], **spec)))  # type: ignore[arg-type]
    entry = cluster.job(job_id)
    assert entry is not None
    return entry


def ready_and_running(cluster: Cluster) -> Observation:
    return Observation(nodes={n.node_id: ObservedNode(NodeStatus.READY) for n in cluster.nodes
                              if n.state is not NodeState.PREEMPTED},
                       runs={(j.job_id, j.attempt): ObservedRun(RunStatus.RUNNING) for j in cluster.jobs
                             if j.phase is JobPhase.RUNNING})


def run_then_preempt(cluster: Cluster, start: float, run_for: float) -> list[object]:
    """Boot whatever the cluster asks for, place the job, let it run ``run_for`` s, then preempt its node."""
    reconcile(cluster, ready_and_running(cluster), at(start), POLICY)
    reconcile(cluster, ready_and_running(cluster), at(start + 1), POLICY)
    [node] = [n for n in cluster.nodes if n.state is NodeState.RUNNING]
    [started] = [j.started_at for j in cluster.jobs if j.phase is JobPhase.RUNNING]
    assert started is not None
    seen = ready_and_running(cluster)
    seen.nodes[node.node_id] = ObservedNode(NodeStatus.PREEMPTED)
    return list(reconcile(cluster, seen, started + timedelta(seconds=run_for), POLICY))


def nodes_asked_for(actions: list[object]) -> list[str | None]:
    return [a.priority for a in actions if isinstance(a, ProvisionNode)]


def test_preemptions_do_not_use_up_the_retries_for_failures_and_the_default_never_drops_the_job() -> None:
    cluster = low_priority_cluster()
    entry = submit(cluster, max_retries=0)
    for i in range(6):  # twice the default max_preemption_retries, no fallback: requeued on low priority
        actions = run_then_preempt(cluster, 1000.0 * i, 100.0)
        assert not [a for a in actions if isinstance(a, ProjectJob) and a.update.state is JobState.FAILED]
    assert entry.preemptions == 6 and entry.failures == 0 and not entry.on_dedicated
    assert entry in cluster.jobs and entry.phase is JobPhase.QUEUED
    assert nodes_asked_for(actions) == ["lowpriority"]


def test_fail_after_preemption_retries_is_amlcompute_behaviour_when_asked_for() -> None:
    cluster = low_priority_cluster(exhausted=AfterPreemptionRetries.FAIL)
    submit(cluster, max_preemption_retries=1)
    run_then_preempt(cluster, 0.0, 100.0)
    actions = run_then_preempt(cluster, 1000.0, 100.0)
    [failed] = [a.update for a in actions if isinstance(a, ProjectJob) and a.update.state is JobState.FAILED]
    assert "Preempted" in (failed.reason or "") and "gave up after 1 preemption retries" in (failed.reason or "")


def test_after_n_preemptions_the_job_falls_back_to_a_dedicated_node_of_the_same_cluster() -> None:
    cluster = low_priority_cluster(LowPriorityFallback(trigger=FallbackTrigger.PREEMPTIONS, after_preemptions=2))
    entry = submit(cluster)
    first = run_then_preempt(cluster, 0.0, 100.0)
    assert nodes_asked_for(first) == ["lowpriority"] and not entry.on_dedicated
    second = run_then_preempt(cluster, 1000.0, 100.0)
    assert entry.on_dedicated and nodes_asked_for(second) == ["dedicated"]
    requeued = next(a.update for a in second if isinstance(a, ProjectJob) and a.update.state is JobState.QUEUED)
    assert "falling back to dedicated nodes" in (requeued.reason or "")
    dedicated = cluster.nodes[-1]
    assert cluster.priority_of(dedicated) == "dedicated"
    # once the dedicated node is ready the job runs there, never on an idle low-priority node
    spare = Node(node_id="c1-spare", state=NodeState.IDLE, requested_at=T0, idle_since=at(2000),
                 priority="lowpriority")
    cluster.nodes.append(spare)
    actions = reconcile(cluster, ready_and_running(cluster), at(2200), POLICY)
    [start] = [a for a in actions if isinstance(a, StartRun)]
    assert start.node_ids == (dedicated.node_id,)
    assert cluster.node_priority_counts()["dedicated"] == 1


def test_the_lost_time_budget_counts_only_work_since_the_last_checkpoint() -> None:
    fallback = LowPriorityFallback(trigger=FallbackTrigger.LOST_TIME, lost_time_budget_seconds=1000)
    checkpointing = low_priority_cluster(fallback)
    saved = submit(checkpointing, checkpoint_interval_seconds=600)
    for i in range(3):  # 1,900 s each: 1,800 s checkpointed, 100 s lost
        run_then_preempt(checkpointing, 10_000.0 * i, 1900.0)
    assert saved.lost_seconds == pytest.approx(300.0) and saved.progress_seconds == pytest.approx(5400.0)
    assert not saved.on_dedicated
    plain = low_priority_cluster(fallback)
    lost = submit(plain)
    run_then_preempt(plain, 0.0, 1900.0)
    assert lost.lost_seconds == pytest.approx(1900.0) and lost.on_dedicated


def test_a_job_with_a_deadline_falls_back_when_one_more_preemption_could_make_it_miss_whatever_the_trigger() -> None:
    fallback = LowPriorityFallback(trigger=FallbackTrigger.PREEMPTIONS, after_preemptions=50)
    relaxed = low_priority_cluster(fallback)
    far = submit(relaxed, deadline=at(20_000), expected_runtime_seconds=3600, checkpoint_interval_seconds=60)
    run_then_preempt(relaxed, 0.0, 600.0)  # 600 s saved, 3,000 s of work left, ~19,000 s to go: room to spare
    assert not far.on_dedicated
    tight = low_priority_cluster(fallback)
    near = submit(tight, deadline=at(8000), expected_runtime_seconds=3600)
    run_then_preempt(tight, 0.0, 600.0)  # nothing saved: another preemption could cost a whole 3,600 s run
    assert near.on_dedicated


def test_uniform_progress_moves_a_job_that_fell_behind_its_schedule_the_deadline_alone_waits() -> None:
    behind = low_priority_cluster(LowPriorityFallback(trigger=FallbackTrigger.UNIFORM_PROGRESS))
    job = submit(behind, deadline=at(100_000), expected_runtime_seconds=3600)
    run_then_preempt(behind, 0.0, 600.0)  # no progress kept, some of the window gone: behind the line
    assert job.on_dedicated
    waiting = low_priority_cluster(LowPriorityFallback(trigger=FallbackTrigger.DEADLINE))
    same = submit(waiting, deadline=at(100_000), expected_runtime_seconds=3600)
    run_then_preempt(waiting, 0.0, 600.0)  # the deadline is far: stay on cheap nodes
    assert not same.on_dedicated and same.phase is JobPhase.QUEUED


def test_each_priority_scales_against_its_own_quota() -> None:
    vm = load_catalogue().get("Standard_D2_v2")
    limits = QuotaLimits(total_regional_dedicated_vcpus=2, low_priority_vcpus=100, family_dedicated_vcpus={},
                         default_family_dedicated_vcpus=100)
    quota = QuotaAllowance(limits=limits, others=QuotaUsage(), vm_size=vm, priority="lowpriority", region="eastus")
    cluster = low_priority_cluster(LowPriorityFallback(trigger=FallbackTrigger.PREEMPTIONS, after_preemptions=1),
                                   max_nodes=8)
    for name in ("a", "b", "c"):
        submit(cluster, name)
        cluster.job(name).on_dedicated = True  # type: ignore[union-attr]
    submit(cluster, "low")
    actions = reconcile(cluster, Observation(), at(1), POLICY, quota)
    assert sorted(nodes_asked_for(actions), key=str) == ["dedicated", "lowpriority"]  # 2 vCPUs: one dedicated
    assert any(e.code == "QuotaExceeded" and "Total Regional vCPUs" in e.message for e in cluster.errors)


def test_the_fallback_is_refused_on_a_dedicated_cluster_and_job_settings_are_checked() -> None:
    with pytest.raises(InvalidField) as refused:
        check_cluster_create(ClusterCreate(name="cpu1", vm_size="STANDARD_D2_V2", max_nodes=2,
                                           low_priority_fallback=LowPriorityFallback()), "eastus")
    assert refused.value.field == "low_priority_fallback"
    with pytest.raises(InvalidField) as deadline:
        check_job_spec(JobSubmit(command=["x"], deadline=at(100)).spec())
    assert deadline.value.field == "deadline"
    with pytest.raises(InvalidField) as interval:
        check_job_spec(JobSubmit(command=["x"], checkpoint_interval_seconds=0).spec())
    assert interval.value.field == "checkpoint_interval_seconds"
