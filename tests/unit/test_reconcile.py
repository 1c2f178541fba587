"""Reconcile: desired (spec, queue) against observed (provider), at a given time."""

from __future__ import annotations

from datetime import timedelta

from shared.domain.actions import ProjectJob, ProvisionNode, ReleaseNode, StartRun, StopRun, WakeUpAt
from shared.domain.cluster import AllocationState, JobPhase, NodeState
from shared.domain.cluster_changes import (
    ScaleSettingsUpdate,
    accept_job,
    cancel_job,
    mark_deleting,
    update_scale_settings,
)
from shared.domain.job import Job, JobSpec, JobState
from shared.domain.observation import NodeStatus, Observation, ObservedNode, ObservedRun, ResizeError, RunStatus
from shared.domain.reconcile import ReconcilePolicy, reconcile
from tests.unit.builders import T0, add_job, add_node, at, everything_ready, make_cluster, running

POLICY = ReconcilePolicy(boot_timeout=timedelta(seconds=300), resync_interval=timedelta(seconds=60),
                         release_poll=timedelta(seconds=5))


def job_doc(job_id: str, node_count: int = 1) -> Job:
    return Job(workspace="ws", id=job_id, cluster="c1", spec=JobSpec(command=["true"], node_count=node_count),
               submitted_at=T0)


def test_a_submitted_job_scales_the_cluster_up_at_once_and_says_it_is_preparing() -> None:
    cluster = make_cluster()
    accept_job(cluster, job_doc("j1"))
    actions = reconcile(cluster, Observation(), at(1), POLICY)
    assert [type(a) for a in actions if isinstance(a, ProvisionNode)] == [ProvisionNode]
    assert cluster.target_node_count == 1 and cluster.allocation_state is AllocationState.RESIZING
    [projection] = [a for a in actions if isinstance(a, ProjectJob)]
    assert projection.update.state is JobState.PREPARING


def test_a_ready_node_takes_the_queued_job_and_the_run_is_started() -> None:
    cluster = make_cluster()
    accept_job(cluster, job_doc("j1"))
    reconcile(cluster, Observation(), at(1), POLICY)
    actions = reconcile(cluster, everything_ready(cluster), at(3), POLICY)
    [start] = [a for a in actions if isinstance(a, StartRun)]
    assert start.job_id == "j1" and start.node_ids == (cluster.nodes[0].node_id,)
    assert cluster.nodes[0].state is NodeState.RUNNING and cluster.allocation_state is AllocationState.STEADY


def test_a_finished_run_completes_the_job_frees_the_node_and_schedules_the_idle_wake_up() -> None:
    cluster = make_cluster(idle=60)
    node = add_node(cluster, NodeState.RUNNING, run_id="j1")
    add_job(cluster, "j1", running_on=[node])
    observed = everything_ready(cluster, {("j1", 1): ObservedRun(RunStatus.FINISHED, 0)})
    actions = reconcile(cluster, observed, at(10), POLICY)
    [done] = [a.update for a in actions if isinstance(a, ProjectJob)]
    assert done.state is JobState.COMPLETED and done.exit_code == 0
    assert node.state is NodeState.IDLE and cluster.jobs == []
    assert WakeUpAt(at(70)) in actions and cluster.next_reconcile_at == at(70)


def test_the_idle_node_is_released_at_its_deadline_and_removed_once_the_provider_lets_it_go() -> None:
    cluster = make_cluster(idle=60)
    node = add_node(cluster, NodeState.IDLE, idle_since=0)
    assert ReleaseNode(node.node_id) not in reconcile(cluster, everything_ready(cluster), at(59), POLICY)
    assert ReleaseNode(node.node_id) in reconcile(cluster, everything_ready(cluster), at(60), POLICY)
    assert node.state is NodeState.LEAVING
    reconcile(cluster, Observation(), at(61), POLICY)
    assert cluster.nodes == [] and cluster.allocation_state is AllocationState.STEADY


def test_a_node_not_ready_within_the_boot_timeout_is_unusable_replaced_and_reported() -> None:
    cluster = make_cluster()
    accept_job(cluster, job_doc("j1"))
    reconcile(cluster, Observation(), T0, POLICY)
    stuck = cluster.nodes[0]
    booting = Observation(nodes={stuck.node_id: ObservedNode(NodeStatus.BOOTING)})
    actions = reconcile(cluster, booting, at(301), POLICY)
    assert stuck.state is NodeState.UNUSABLE and ReleaseNode(stuck.node_id) in actions
    assert [e.code for e in cluster.errors] == ["NodeProvisioningFailed"]
    assert any(isinstance(a, ProvisionNode) for a in actions)  # the first failure is replaced at once


def test_a_provider_that_keeps_failing_gets_a_growing_pause_not_a_storm_of_nodes() -> None:
    cluster = make_cluster()
    accept_job(cluster, job_doc("j1"))
    now = T0
    reconcile(cluster, Observation(), now, POLICY)
    provisioned = 0
    for _ in range(40):  # the provider fails every node it is asked for, and we look every 5 s for 200 s
        now += timedelta(seconds=5)
        failing = Observation(nodes={n.node_id: ObservedNode(NodeStatus.FAILED, "no capacity")
                                     for n in cluster.nodes if n.state is NodeState.PREPARING})
        provisioned += sum(isinstance(a, ProvisionNode) for a in reconcile(cluster, failing, now, POLICY))
    assert 2 <= provisioned <= 4  # at once, then after 60 s, then after 120 s
    assert cluster.provisioning_failures >= 2 and cluster.errors[0].message == "no capacity"


def test_a_preempted_node_requeues_its_job_with_the_attempt_counted() -> None:
    cluster = make_cluster()
    node = add_node(cluster, NodeState.RUNNING, run_id="j1")
    entry = add_job(cluster, "j1", running_on=[node])
    observed = Observation(nodes={node.node_id: ObservedNode(NodeStatus.PREEMPTED)})
    actions = reconcile(cluster, observed, at(5), POLICY)
    assert entry.phase is JobPhase.QUEUED and entry.attempt == 2
    assert node.state is NodeState.PREEMPTED and ReleaseNode(node.node_id) in actions
    assert any(isinstance(a, ProvisionNode) for a in actions)  # a replacement is asked for at once
    [requeued] = [a.update for a in actions if isinstance(a, ProjectJob) and a.update.state is JobState.QUEUED]
    assert requeued.attempt == 2 and "Preempted" in (requeued.reason or "")


def test_a_job_fails_once_its_retries_for_failed_nodes_are_used_up() -> None:
    cluster = make_cluster()
    node = add_node(cluster, NodeState.RUNNING, run_id="j1")
    entry = add_job(cluster, "j1", running_on=[node], max_retries=0)
    actions = reconcile(cluster, Observation(nodes={node.node_id: ObservedNode(NodeStatus.FAILED)}), at(5),
                        POLICY)
    [failed] = [a.update for a in actions if isinstance(a, ProjectJob)]
    assert failed.state is JobState.FAILED and "gave up after 0 retries" in (failed.reason or "")
    assert entry not in cluster.jobs


def test_a_lost_run_is_stopped_and_requeued() -> None:
    cluster = make_cluster()
    node = add_node(cluster, NodeState.RUNNING, run_id="j1")
    add_job(cluster, "j1", running_on=[node])
    actions = reconcile(cluster, everything_ready(cluster, {("j1", 1): ObservedRun(RunStatus.LOST)}), at(5), POLICY)
    assert StopRun("j1", 1) in actions
    assert StartRun("j1", 2, (node.node_id,)) in actions  # the freed node takes the next attempt at once


def test_a_placed_run_the_provider_never_started_is_started_again() -> None:
    cluster = make_cluster()
    node = add_node(cluster, NodeState.RUNNING, run_id="j1")
    add_job(cluster, "j1", running_on=[node])
    assert StartRun("j1", 1, (node.node_id,)) in reconcile(cluster, everything_ready(cluster), at(5), POLICY)


def test_reconcile_is_idempotent_for_the_same_observation_and_time() -> None:
    cluster = make_cluster()
    node = add_node(cluster, NodeState.RUNNING, run_id="j1")
    add_job(cluster, "j1", running_on=[node])
    accept_job(cluster, job_doc("j2"))
    observed = everything_ready(cluster, running(cluster))
    first = reconcile(cluster, observed, at(5), POLICY)
    snapshot = cluster.model_dump()
    again = reconcile(cluster, observed, at(5), POLICY)
    assert cluster.model_dump() == snapshot
    # Only what is safe to repeat is asked again: the booting node (idempotent), no new node, no new job update.
    assert [a for a in again if not isinstance(a, ProvisionNode)] == []
    assert [a for a in first if isinstance(a, ProvisionNode)] == [a for a in again if isinstance(a, ProvisionNode)]


def test_patch_of_min_nodes_scales_up_and_lower_max_never_evicts_busy_nodes() -> None:
    cluster = make_cluster(max_nodes=4)
    update_scale_settings(cluster, ScaleSettingsUpdate(min_nodes=2), at(1))
    reconcile(cluster, Observation(), at(1), POLICY)
    assert cluster.target_node_count == 2 and len(cluster.nodes) == 2
    busy = make_cluster(max_nodes=4)
    nodes = [add_node(busy, NodeState.RUNNING, run_id="big") for _ in range(3)]
    add_job(busy, "big", node_count=3, running_on=nodes)
    update_scale_settings(busy, ScaleSettingsUpdate(max_nodes=1), at(1))
    actions = reconcile(busy, everything_ready(busy, running(busy)), at(2), POLICY)
    assert not any(isinstance(a, ReleaseNode) for a in actions) and len(busy.nodes) == 3


def test_cancel_of_a_running_job_stops_it_and_frees_its_nodes() -> None:
    cluster = make_cluster()
    node = add_node(cluster, NodeState.RUNNING, run_id="j1")
    add_job(cluster, "j1", running_on=[node])
    actions = cancel_job(cluster, "j1", at(3))
    assert StopRun("j1", 1) in actions and node.state is NodeState.IDLE and cluster.jobs == []


def test_deleting_a_cluster_cancels_its_jobs_and_releases_every_node() -> None:
    cluster = make_cluster()
    node = add_node(cluster, NodeState.RUNNING, run_id="j1")
    add_job(cluster, "j1", running_on=[node])
    mark_deleting(cluster, at(1))
    actions = reconcile(cluster, everything_ready(cluster, running(cluster)), at(1), POLICY)
    assert StopRun("j1", 1) in actions and ReleaseNode(node.node_id) in actions
    assert any(isinstance(a, ProjectJob) and a.update.state is JobState.CANCELED for a in actions)
    reconcile(cluster, Observation(), at(2), POLICY)
    assert cluster.nodes == [] and cluster.jobs == []


def test_a_node_that_never_reached_the_provider_is_not_asked_for_again_once_max_nodes_was_lowered() -> None:
    cluster = make_cluster(max_nodes=4)
    busy = [add_node(cluster, NodeState.RUNNING, run_id=f"j{i}") for i in range(3)]
    for i, node in enumerate(busy):
        add_job(cluster, f"j{i}", running_on=[node])
    add_job(cluster, "waiting")
    reconcile(cluster, everything_ready(cluster, running(cluster)), at(1), POLICY)
    [late] = cluster.nodes_in(NodeState.PREPARING)  # its provision was lost (a crash after the save)
    update_scale_settings(cluster, ScaleSettingsUpdate(max_nodes=2), at(2))
    seen = everything_ready(cluster, running(cluster))
    del seen.nodes[late.node_id]
    actions = reconcile(cluster, seen, at(3), POLICY)
    assert not [a for a in actions if isinstance(a, ProvisionNode)]
    assert ReleaseNode(late.node_id) in actions and late.state is NodeState.LEAVING


def test_a_resize_error_of_the_cloud_shows_in_the_cluster_errors_and_a_quota_one_as_quota_exceeded() -> None:
    cluster = make_cluster()
    reconcile(cluster, Observation(resize_error=ResizeError("AllocationFailed", "no capacity")), at(1), POLICY)
    assert [(e.code, e.message) for e in cluster.errors] == [("ResizeError", "AllocationFailed: no capacity")]
    quota = ResizeError("AccountCoreQuotaReached", "The specified account has reached VM core quota", is_quota=True)
    reconcile(cluster, Observation(resize_error=quota), at(2), POLICY)
    assert {e.code for e in cluster.errors} == {"QuotaExceeded"}
    reconcile(cluster, Observation(), at(3), POLICY)
    assert cluster.errors == []  # the cloud no longer refuses: both errors are gone
