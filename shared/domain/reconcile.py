"""Reconcile one cluster: compare desired (spec, job queue) with observed (nodes, runs) and decide the actions.

Level-triggered: the result depends only on the cluster document, the observation and ``now``, never on which
event woke us, so a lost, late or duplicated event is healed by the next reconcile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.domain.actions import Action, ProjectJob, ProvisionNode, ReleaseNode, StartRun, StopRun, WakeUpAt
from shared.domain.autoscale import (
    ACTIVE_NODE_STATES,
    gang_placements,
    idle_deadline,
    idle_nodes_to_release,
    queued_in_order,
    scale_target,
)
from shared.domain.cluster import (
    AllocationState,
    Cluster,
    ClusterErrorCode,
    Interruption,
    JobEntry,
    JobPhase,
    Node,
    NodeState,
    ProvisioningState,
)
from shared.domain.job import JobState, JobUpdate
from shared.domain.low_priority import (
    PreemptedJob,
    PreemptionOutcome,
    Priority,
    after_preemption,
    checkpointed_seconds,
)
from shared.domain.observation import NodeStatus, Observation, ResizeError, ResourceLock, RunStatus
from shared.domain.quota_ledger import QuotaCap


@dataclass(frozen=True)
class ReconcilePolicy:
    boot_timeout: timedelta = timedelta(minutes=10)  # a node not ready by then is unusable and replaced
    resync_interval: timedelta = timedelta(seconds=60)  # how often a busy cluster is re-checked by the timer
    release_poll: timedelta = timedelta(seconds=30)  # how soon to check that a released node is gone
    provision_backoff: timedelta = timedelta(seconds=60)  # pause before replacing nodes the provider failed
    low_priority_restart: timedelta = timedelta(minutes=5)  # a restart's cost in time, for the deadline check


def reconcile(cluster: Cluster, observed: Observation, now: datetime, policy: ReconcilePolicy,
              quota: QuotaCap | None = None) -> list[Action]:
    actions: list[Action] = []
    if cluster.provisioning_state is ProvisioningState.DELETING:
        actions += _tear_down(cluster, observed, now)
    else:
        if cluster.provisioning_state in (ProvisioningState.CREATING, ProvisioningState.UPDATING):
            cluster.provisioning_state = ProvisioningState.SUCCEEDED
        actions += _apply_node_observations(cluster, observed, now, policy)
        actions += _apply_run_observations(cluster, observed, now, policy)
        stops, occupied = _stop_orphaned_runs(cluster, observed)
        actions += stops
        actions += _fail_jobs_that_no_longer_fit(cluster)
        actions += _place_jobs(cluster, now, occupied)
        actions += _scale(cluster, now, quota, observed.lock, policy, occupied)
        _report_resize_error(cluster, observed.resize_error, now)
        actions += _project_waiting_jobs(cluster, now)
    _update_allocation_state(cluster, now)
    actions += _schedule_next(cluster, now, policy)
    cluster.modified_at = now
    return actions


# --- nodes ---------------------------------------------------------------------------------------------------------
def _apply_node_observations(cluster: Cluster, observed: Observation, now: datetime,
                             policy: ReconcilePolicy) -> list[Action]:
    actions: list[Action] = []
    for node in list(cluster.nodes):
        seen = observed.node(node.node_id)
        if node.state is NodeState.PREPARING:
            if seen.status is NodeStatus.READY:
                node.state, node.ready_at, node.idle_since = NodeState.IDLE, now, now
                node.private_ip = seen.private_ip
                cluster.clear_error(ClusterErrorCode.NODE_PROVISIONING_FAILED)
                cluster.provisioning_failures = 0
            elif seen.status is NodeStatus.FAILED or now - node.requested_at >= policy.boot_timeout:
                reason = seen.reason or f"node {node.node_id} was not ready within {policy.boot_timeout}"
                node.state = NodeState.UNUSABLE
                cluster.add_error(ClusterErrorCode.NODE_PROVISIONING_FAILED, reason, now)
                cluster.provisioning_failures += 1
                actions.append(ReleaseNode(node.node_id))
            elif seen.status is NodeStatus.GONE and len(cluster.nodes_in(*ACTIVE_NODE_STATES)) > cluster.spec.max_nodes:
                # never reached the provider, and max_nodes was lowered since: not asked for again
                node.state = NodeState.LEAVING
                actions.append(ReleaseNode(node.node_id))
            elif seen.status is NodeStatus.GONE:
                actions.append(ProvisionNode(node.node_id, cluster.priority_of(node)))  # never reached the provider
        elif node.state in (NodeState.IDLE, NodeState.RUNNING):
            if seen.status is NodeStatus.PREEMPTED:
                actions += _lose_node(cluster, node, NodeState.PREEMPTED, Interruption.PREEMPTED,
                                      f"low-priority node {node.node_id} was preempted", now, policy)
            elif seen.status is NodeStatus.FAILED:
                actions += _lose_node(cluster, node, NodeState.UNUSABLE, Interruption.NODE_FAILED,
                                      seen.reason or f"node {node.node_id} failed", now, policy)
            elif seen.status is NodeStatus.GONE:
                actions += _lose_node(cluster, node, None, Interruption.NODE_LOST,
                                      f"node {node.node_id} disappeared from the provider", now, policy)
        elif seen.status is NodeStatus.GONE:  # leaving, preempted or unusable, and now released
            cluster.nodes.remove(node)
        else:
            actions.append(ReleaseNode(node.node_id))
    return actions


def _lose_node(cluster: Cluster, node: Node, new_state: NodeState | None, code: Interruption, reason: str,
               now: datetime, policy: ReconcilePolicy) -> list[Action]:
    """A node we counted on is gone or going: requeue its job, release what is left of the node."""
    actions: list[Action] = []
    entry = cluster.job(node.run_id) if node.run_id else None
    if new_state is None:
        cluster.nodes.remove(node)
    else:
        node.state, node.run_id = new_state, None
        actions.append(ReleaseNode(node.node_id))
    if entry is not None:
        actions += _requeue(cluster, entry, code, reason, now, policy)
    return actions


def _free_nodes_of(cluster: Cluster, entry: JobEntry, now: datetime) -> None:
    for node in cluster.nodes:
        if node.run_id == entry.job_id and node.state is NodeState.RUNNING:
            node.state, node.run_id, node.idle_since = NodeState.IDLE, None, now


# --- runs ----------------------------------------------------------------------------------------------------------
def _apply_run_observations(cluster: Cluster, observed: Observation, now: datetime,
                            policy: ReconcilePolicy) -> list[Action]:
    actions: list[Action] = []
    for entry in [j for j in cluster.jobs if j.phase is JobPhase.RUNNING]:
        seen = observed.run(entry.job_id, entry.attempt)
        if seen.status is RunStatus.FINISHED:
            code = seen.exit_code if seen.exit_code is not None else -1
            state = JobState.COMPLETED if code == 0 else JobState.FAILED
            reason = None if code == 0 else f"UserError: the command exited with code {code}"
            actions.append(ProjectJob(JobUpdate(job_id=entry.job_id, state=state, attempt=entry.attempt,
                                                reason=reason, exit_code=code, nodes=entry.node_ids)))
            _free_nodes_of(cluster, entry, now)
            cluster.jobs.remove(entry)
        elif seen.status is RunStatus.LOST:
            actions += _requeue(cluster, entry, Interruption.RUN_LOST,
                                "the job's processes ended without an exit code (control plane restarted?)", now,
                                policy)
        elif seen.status is RunStatus.NOT_STARTED:
            actions.append(StartRun(entry.job_id, entry.attempt, tuple(entry.node_ids)))
    return actions


def _stop_orphaned_runs(cluster: Cluster, observed: Observation) -> tuple[list[Action], frozenset[str]]:
    """Level-triggered stop: a run still going on our nodes that is not the current attempt of a running job (its
    cancel or requeue was saved, then the process died before the stop) is stopped now. Also returns the nodes such
    runs still occupy: neither offered to a job nor released until the run is gone."""
    current = {(j.job_id, j.attempt) for j in cluster.jobs if j.phase is JobPhase.RUNNING}
    orphans = {key: nodes for key, nodes in observed.unfinished_runs.items() if key not in current}
    return ([StopRun(job_id, attempt) for job_id, attempt in sorted(orphans)],
            frozenset(n for nodes in orphans.values() for n in nodes))


def _requeue(cluster: Cluster, entry: JobEntry, code: Interruption, reason: str, now: datetime,
             policy: ReconcilePolicy) -> list[Action]:
    """AmlCompute fails an interrupted job and makes the user resubmit; we requeue it: after an infrastructure
    failure up to max_retries times, after a preemption as ``shared.domain.low_priority`` decides (never dropped
    silently). What is left of the attempt is stopped first: a multi-node job that lost one node must not keep
    running on the others while its next attempt starts."""
    actions: list[Action] = [StopRun(entry.job_id, entry.attempt)] if entry.phase is JobPhase.RUNNING else []
    _free_nodes_of(cluster, entry, now)
    for node in cluster.nodes:
        if node.run_id == entry.job_id:
            node.run_id = None
    if code is Interruption.PREEMPTED:
        give_up, reason = _count_preemption(cluster, entry, reason, now, policy)
    else:
        entry.failures += 1  # the attempt that just ended is one more retry
        give_up = entry.failures > entry.max_retries
        if give_up:
            reason = f"{reason}; gave up after {entry.max_retries} retries"
    if give_up:
        cluster.jobs.remove(entry)
        return [*actions, ProjectJob(JobUpdate(job_id=entry.job_id, state=JobState.FAILED, attempt=entry.attempt,
                                               reason=f"{code}: {reason}"))]
    entry.phase, entry.node_ids, entry.started_at = JobPhase.QUEUED, [], None
    entry.attempt += 1
    where = " on a dedicated node" if entry.on_dedicated else ""
    entry.visible_state, entry.interrupted_by = JobState.QUEUED, code
    entry.reason = f"{code}: {reason}; requeued as attempt {entry.attempt}{where}"
    return [*actions, ProjectJob(JobUpdate(job_id=entry.job_id, state=JobState.QUEUED, attempt=entry.attempt,
                                           reason=entry.reason, nodes=[]))]


def _count_preemption(cluster: Cluster, entry: JobEntry, reason: str, now: datetime,
                      policy: ReconcilePolicy) -> tuple[bool, str]:
    """Count the preemption and the work it cost; decide where the next attempt runs. Returns (give up, reason)."""
    ran = (now - entry.started_at).total_seconds() if entry.started_at is not None else 0.0
    saved = checkpointed_seconds(ran, entry.checkpoint_interval_seconds)
    entry.preemptions += 1
    entry.progress_seconds += saved
    entry.lost_seconds += ran - saved
    job = PreemptedJob(
        preemptions=entry.preemptions, lost_seconds=entry.lost_seconds, progress_seconds=entry.progress_seconds,
        submitted_at=entry.submitted_at, deadline=entry.deadline, runtime_seconds=entry.expected_runtime_seconds,
        checkpoint_interval_seconds=entry.checkpoint_interval_seconds,
        max_preemption_retries=entry.max_preemption_retries,
        exhausted=entry.on_preemption_retries_exhausted or cluster.spec.on_preemption_retries_exhausted)
    outcome = after_preemption(job, cluster.spec.low_priority_fallback, now, policy.low_priority_restart)
    counted = f"{reason} (preemption {entry.preemptions}, {entry.lost_seconds:.0f} s lost)"
    if outcome is PreemptionOutcome.FAIL:
        return True, f"{counted}; gave up after {entry.max_preemption_retries} preemption retries"
    if outcome is PreemptionOutcome.DEDICATED and not entry.on_dedicated:
        entry.on_dedicated = True
        return False, f"{counted}; falling back to dedicated nodes"
    return False, counted


# --- placement and scaling -----------------------------------------------------------------------------------------
def _fail_jobs_that_no_longer_fit(cluster: Cluster) -> list[Action]:
    """max_nodes lowered below a queued job's node count: that job can never run (and would block the queue)."""
    actions: list[Action] = []
    for entry in queued_in_order(cluster):
        if entry.node_count > cluster.spec.max_nodes:
            cluster.jobs.remove(entry)
            actions.append(ProjectJob(JobUpdate(
                job_id=entry.job_id, state=JobState.FAILED, attempt=entry.attempt,
                reason=f"JobNodeCountExceedsCoreQuota: the job needs {entry.node_count} nodes and max_nodes is "
                       f"now {cluster.spec.max_nodes}")))
    return actions


def _place_jobs(cluster: Cluster, now: datetime, occupied: frozenset[str]) -> list[Action]:
    actions: list[Action] = []
    for entry, nodes in gang_placements(cluster, occupied):
        for node in nodes:
            node.state, node.run_id, node.idle_since = NodeState.RUNNING, entry.job_id, None
        entry.phase, entry.node_ids, entry.started_at = JobPhase.RUNNING, [n.node_id for n in nodes], now
        entry.visible_state, entry.reason, entry.interrupted_by = JobState.RUNNING, None, None
        # Shown running with the cluster's save that placed it (one write), before its run starts: a crash in
        # between leaves the run not started, and the next reconcile starts it (``_apply_run_observations``).
        actions.append(ProjectJob(JobUpdate(job_id=entry.job_id, state=JobState.RUNNING, attempt=entry.attempt,
                                            nodes=list(entry.node_ids))))
        actions.append(StartRun(entry.job_id, entry.attempt, tuple(entry.node_ids)))
    return actions


def _report_resize_error(cluster: Cluster, error: ResizeError | None, now: datetime) -> None:
    """The cloud's own refusal to resize shows in the cluster's errors: a quota refusal as ``QUOTA_EXCEEDED`` (the
    cluster's condition when ComputePlane's own quota holds it back), anything else as ``RESIZE_ERROR``; it goes once
    the cloud stops saying it."""
    if error is None or error.is_quota:
        cluster.clear_error(ClusterErrorCode.RESIZE_ERROR)
    if error is None:
        return
    if error.is_quota:
        cluster.add_error(ClusterErrorCode.QUOTA_EXCEEDED, f"{error.code}: {error.message}", now)
    else:
        cluster.add_error(ClusterErrorCode.RESIZE_ERROR, f"{error.code}: {error.message}", now)


def _scale(cluster: Cluster, now: datetime, quota: QuotaCap | None, lock: ResourceLock | None,
           policy: ReconcilePolicy, occupied: frozenset[str]) -> list[Action]:
    """Each pool (the cluster's priority, and dedicated for fallen-back jobs) scales to its own target against its
    own quota."""
    to_add: dict[Priority, int] = {}
    to_release: list[Node] = []
    quota_messages: list[str] = []
    target_total = 0
    for priority in cluster.priorities():
        pool_quota = None if quota is None else quota.for_priority(priority)
        # Every node held counts, including those on their way out: they keep their cores until released.
        held = len([n for n in cluster.nodes if cluster.priority_of(n) == priority])
        room = cluster.spec.max_nodes - target_total  # the pools share max_nodes, the cluster's own pool first
        busy = len(cluster.nodes_in(NodeState.RUNNING, priority=priority))
        uncapped = max(min(scale_target(cluster, None, priority), room), busy)
        active = cluster.nodes_in(*ACTIVE_NODE_STATES, priority=priority)
        # Quota only caps growth: it is asked (and the region's ledger read) only by a pool that wants more nodes.
        extra = (pool_quota.extra_nodes(held_nodes=held)
                 if pool_quota is not None and uncapped > len(active) else None)
        target = uncapped if extra is None else max(min(scale_target(cluster, extra, priority), room), busy)
        message = (pool_quota.explain(uncapped - target, held_nodes=held)
                   if pool_quota is not None and uncapped > target else None)
        if message:
            quota_messages.append(message)
        target_total += target
        to_add[priority] = max(target - len(active), 0)
        to_release += idle_nodes_to_release(cluster, now, target, occupied, priority)
    if quota_messages:
        cluster.add_error(ClusterErrorCode.QUOTA_EXCEEDED, " ".join(quota_messages), now)
    else:
        cluster.clear_error(ClusterErrorCode.QUOTA_EXCEEDED)
    cluster.target_node_count = target_total
    retry_at = provisioning_retry_at(cluster, policy)
    if any(to_add.values()) and retry_at is not None and now < retry_at:
        to_add = {}  # the provider keeps failing us: ask again after a growing pause, never in a storm
    blocked = lock is not None and (to_release or (any(to_add.values()) and lock.blocks_scale_up))
    if blocked and lock is not None:
        # AmlCompute hangs "resizing 0 -> 0" here; we stay Steady, say why and how to fix it, and retry on resync.
        cluster.add_error(ClusterErrorCode.RESOURCE_LOCKED, resource_lock_message(lock), now)
        to_release = []
        if lock.blocks_scale_up:
            to_add = {}
    else:
        cluster.clear_error(ClusterErrorCode.RESOURCE_LOCKED)
    actions: list[Action] = []
    for priority, count in to_add.items():
        for _ in range(count):
            node = Node(node_id=cluster.new_node_id(), state=NodeState.PREPARING, requested_at=now,
                        priority=priority)
            cluster.nodes.append(node)
            actions.append(ProvisionNode(node.node_id, priority))
    for node in to_release:
        node.state = NodeState.LEAVING
        actions.append(ReleaseNode(node.node_id))
    return actions


def provisioning_retry_at(cluster: Cluster, policy: ReconcilePolicy) -> datetime | None:
    """The first failed node is replaced at once; after that the pause doubles per failure (up to 16 x)."""
    failed = next((e for e in cluster.errors if e.code == ClusterErrorCode.NODE_PROVISIONING_FAILED), None)
    if failed is None or cluster.provisioning_failures < 2:
        return None
    pause: timedelta = policy.provision_backoff * min(2 ** (cluster.provisioning_failures - 2), 16)
    return failed.time + pause


def resource_lock_message(lock: ResourceLock) -> str:
    return (f"A {lock.level.value} lock '{lock.name}' on {lock.scope} blocks resizing the cluster. Remove the lock "
            "from the resource group and lock the individual resources instead; never lock the "
            "<GUID>-azurebatch-cloudservicenetworksecuritygroup, <GUID>-azurebatch-cloudservicepublicip or "
            "<GUID>-azurebatch-cloudserviceloadbalancer resources the cluster uses to scale. Scaling resumes "
            "on its own once the lock is gone.")


def _project_waiting_jobs(cluster: Cluster, now: datetime) -> list[Action]:
    """Queued jobs covered by booting nodes are Preparing; the rest say why they wait."""
    booting = {p: len(cluster.nodes_in(NodeState.PREPARING, priority=p)) for p in cluster.priorities()}
    actions: list[Action] = []
    for entry in queued_in_order(cluster):
        pool = cluster.priority_for(entry)
        if entry.node_count <= booting.get(pool, 0):
            booting[pool] -= entry.node_count
            kind = " dedicated" if pool != cluster.spec.vm_priority else ""
            state, reason = JobState.PREPARING, f"waiting for {entry.node_count}{kind} node(s) to start"
            entry.interrupted_by = None  # its nodes are coming: the requeue reason gives way for good
        else:
            booting[pool] = 0
            state = JobState.QUEUED
            reason = entry.reason if entry.interrupted_by is not None and entry.reason else _queue_reason(cluster)
        if (entry.visible_state, entry.reason) != (state, reason):
            entry.visible_state, entry.reason = state, reason
            actions.append(ProjectJob(JobUpdate(job_id=entry.job_id, state=state, attempt=entry.attempt,
                                                reason=reason)))
    return actions


def _queue_reason(cluster: Cluster) -> str:
    quota = next((e for e in cluster.errors if e.code == ClusterErrorCode.QUOTA_EXCEEDED), None)
    if quota is not None:
        return f"waiting for quota: {quota.message}"
    return f"waiting for a free node (cluster at max_nodes={cluster.spec.max_nodes} or jobs ahead in the queue)"


# --- deletion ------------------------------------------------------------------------------------------------------
def _tear_down(cluster: Cluster, observed: Observation, now: datetime) -> list[Action]:
    actions: list[Action] = []
    for entry in list(cluster.jobs):
        if entry.phase is JobPhase.RUNNING:
            actions.append(StopRun(entry.job_id, entry.attempt))
        actions.append(ProjectJob(JobUpdate(job_id=entry.job_id, state=JobState.CANCELED, attempt=entry.attempt,
                                            reason="ClusterDeleted: the cluster was deleted")))
        cluster.jobs.remove(entry)
    stops, occupied = _stop_orphaned_runs(cluster, observed)
    actions += stops
    for node in list(cluster.nodes):
        if observed.node(node.node_id).status is NodeStatus.GONE:
            cluster.nodes.remove(node)
        else:
            node.state, node.run_id = NodeState.LEAVING, None
            if node.node_id not in occupied:  # a node is released once its run has stopped
                actions.append(ReleaseNode(node.node_id))
    cluster.target_node_count = 0
    return actions


# --- status and wake-ups -------------------------------------------------------------------------------------------
def _update_allocation_state(cluster: Cluster, now: datetime) -> None:
    moving = any(n.state not in (NodeState.IDLE, NodeState.RUNNING) for n in cluster.nodes)
    state = AllocationState.RESIZING if moving else AllocationState.STEADY
    if state is not cluster.allocation_state:
        cluster.allocation_state, cluster.allocation_state_transition_time = state, now


def _schedule_next(cluster: Cluster, now: datetime, policy: ReconcilePolicy) -> list[Action]:
    """Precise wake-ups (a scheduled message) for the next idle deadline or boot timeout; the timer's sweep uses
    ``next_reconcile_at`` as the safety net, and re-checks busy clusters every resync interval."""
    deadlines: list[datetime] = []
    if any(e.code == ClusterErrorCode.RESOURCE_LOCKED for e in cluster.errors):
        deadlines.append(now + policy.resync_interval)  # look again for the lock, precisely
    elif len(cluster.nodes_in(*ACTIVE_NODE_STATES)) > cluster.spec.min_nodes:
        deadlines += [d for n in cluster.nodes if (d := idle_deadline(cluster, n)) is not None]
    deadlines += [n.requested_at + policy.boot_timeout for n in cluster.nodes_in(NodeState.PREPARING)]
    retry_at = provisioning_retry_at(cluster, policy)
    if retry_at is not None and cluster.target_node_count > len(cluster.nodes_in(*ACTIVE_NODE_STATES)):
        deadlines.append(retry_at)
    if any(n.state in (NodeState.LEAVING, NodeState.PREEMPTED, NodeState.UNUSABLE) for n in cluster.nodes):
        deadlines.append(now + policy.release_poll)  # check that the release went through
    # Only future deadlines: one that passed without effect (an idle node kept for a queued gang job) would
    # otherwise wake us again at once, forever.
    future = [d for d in deadlines if d > now]
    wake_at = min(future) if future else None
    safety_net = [d for d in (wake_at,) if d is not None]
    locked = any(e.code == ClusterErrorCode.RESOURCE_LOCKED for e in cluster.errors)
    if cluster.jobs or locked or cluster.provisioning_state is ProvisioningState.DELETING:
        safety_net.append(now + policy.resync_interval)
        if cluster.next_reconcile_at is not None and cluster.next_reconcile_at > now:
            safety_net.append(cluster.next_reconcile_at)  # an event does not push the resync further away
    cluster.next_reconcile_at = min(safety_net) if safety_net else None
    pending = cluster.wake_scheduled_for
    if wake_at is None or wake_at == pending or (pending is not None and now < pending <= wake_at):
        return []  # a wake-up at or before this one is already on its way: one at a time, never a storm
    cluster.wake_scheduled_for = wake_at
    return [WakeUpAt(wake_at)]
