"""What users ask of a cluster: create, update, delete, submit, cancel. Pure changes of the aggregate."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from shared.domain.actions import Action, ProjectJob, StopRun
from shared.domain.cluster import Cluster, ClusterSpec, JobEntry, JobPhase, NodeState, ProvisioningState
from shared.domain.errors import InvalidField, JobExceedsQuota, OperationNotAllowed
from shared.domain.job import Job, JobSpec, JobState, JobUpdate
from shared.domain.low_priority import DEFAULT_MAX_PREEMPTION_RETRIES
from shared.domain.validation import (
    validate_idle_seconds_before_scaledown,
    validate_inter_node_communication,
    validate_node_counts,
)


class ScaleSettingsUpdate(BaseModel):
    """PATCH body: only these three change on a live cluster (as AmlCompute's update()); any other field is
    refused rather than ignored."""

    model_config = ConfigDict(extra="forbid", strict=True)

    min_nodes: int | None = None
    max_nodes: int | None = None
    idle_seconds_before_scaledown: int | None = None


def new_cluster(workspace: str, name: str, spec: ClusterSpec, uid: str, now: datetime) -> Cluster:
    return Cluster(workspace=workspace, name=name, uid=uid, spec=spec, allocation_state_transition_time=now,
                   created_at=now, modified_at=now, next_reconcile_at=now)


def update_scale_settings(cluster: Cluster, update: ScaleSettingsUpdate, now: datetime,
                          as_of: datetime | None = None) -> bool:
    """Apply a PATCH; returns whether anything changed. The status shows it at once.

    ``as_of`` is when the change was asked for (the event's time): an update older than the last one applied is
    stale and ignored, so a late redelivery can never revert newer settings (last writer wins)."""
    if cluster.provisioning_state is ProvisioningState.DELETING:
        raise OperationNotAllowed(f"cluster '{cluster.name}' is being deleted")
    asked_at = as_of or now
    if cluster.spec_changed_at is not None and asked_at < cluster.spec_changed_at:
        return False
    changes = update.model_dump(exclude_none=True)
    merged = cluster.spec.model_copy(update=changes)
    check_scale_settings(merged, changed=frozenset(changes))
    if merged == cluster.spec:
        return False
    cluster.spec = merged
    cluster.spec_changed_at = asked_at
    cluster.modified_at = now
    cluster.next_reconcile_at = now
    return True


def check_scale_settings(spec: ClusterSpec, changed: frozenset[str] = frozenset()) -> None:
    """The create rules that involve min/max/idle, run again on every update (an update is no back door).
    The simple ones come first, and a conflict of min and max names the one the update changed."""
    if spec.max_nodes < 0:
        raise InvalidField("max_nodes", "must be 0 or more")
    if spec.min_nodes < 0:
        raise InvalidField("min_nodes", "must be 0 or more")
    if spec.min_nodes > spec.max_nodes:
        if "max_nodes" in changed and "min_nodes" not in changed:
            raise InvalidField("max_nodes", f"must be at least min_nodes ({spec.max_nodes} < {spec.min_nodes}); "
                                            "lower min_nodes in the same update to go below it")
        raise InvalidField("min_nodes", f"must not exceed max_nodes ({spec.min_nodes} > {spec.max_nodes})")
    if spec.idle_seconds_before_scaledown < 0:
        raise InvalidField("idle_seconds_before_scaledown", "must be 0 or more")
    validate_node_counts(spec.min_nodes, spec.max_nodes)
    validate_inter_node_communication(spec.inter_node_communication, spec.max_nodes)
    validate_idle_seconds_before_scaledown(spec.idle_seconds_before_scaledown)


def mark_deleting(cluster: Cluster, now: datetime) -> bool:
    if cluster.provisioning_state is ProvisioningState.DELETING:
        return False
    cluster.provisioning_state = ProvisioningState.DELETING
    cluster.modified_at = cluster.next_reconcile_at = now
    return True


def too_many_nodes(cluster: Cluster, spec: JobSpec) -> JobExceedsQuota | None:
    """The rule on a job's node count, in one place: never more nodes than the cluster's max_nodes."""
    if spec.node_count <= cluster.spec.max_nodes:
        return None
    return JobExceedsQuota(f"the job needs {spec.node_count} node(s) but cluster '{cluster.name}' has "
                           f"max_nodes={cluster.spec.max_nodes}: submit with node_count <= "
                           f"{cluster.spec.max_nodes}, or raise the cluster's max_nodes to {spec.node_count} or more "
                           f"(PATCH .../clusters/{cluster.name}, `computeplane cluster update {cluster.name} "
                           f"--max-nodes {spec.node_count}`)", field="node_count")


def check_job_fits(cluster: Cluster, spec: JobSpec) -> None:
    """A job that can never run on this cluster is refused at submit, not left queued forever."""
    if cluster.provisioning_state is ProvisioningState.DELETING:
        raise OperationNotAllowed(f"cluster '{cluster.name}' is being deleted")
    if (error := too_many_nodes(cluster, spec)) is not None:
        raise error


def accept_job(cluster: Cluster, job: Job) -> list[Action]:
    """Take a job into the cluster's queue (idempotent: a job already known is left alone)."""
    if cluster.job(job.id) is not None or job.state.is_terminal:
        return []
    too_many = too_many_nodes(cluster, job.spec)
    if too_many is not None or cluster.provisioning_state is ProvisioningState.DELETING:
        reason = ("ClusterDeleted: the cluster is being deleted"
                  if cluster.provisioning_state is ProvisioningState.DELETING or too_many is None
                  else f"{too_many.code}: {too_many.message}")
        return [ProjectJob(JobUpdate(job_id=job.id, state=JobState.FAILED, attempt=max(job.attempts, 1),
                                     reason=reason))]
    spec = job.spec
    cluster.jobs.append(JobEntry(
        job_id=job.id, node_count=spec.node_count, max_retries=spec.max_retries, submitted_at=job.submitted_at,
        attempt=max(job.attempts, 1), visible_state=None, reason=None,
        max_preemption_retries=(DEFAULT_MAX_PREEMPTION_RETRIES if spec.max_preemption_retries is None
                                else spec.max_preemption_retries),
        on_preemption_retries_exhausted=spec.on_preemption_retries_exhausted,
        checkpoint_interval_seconds=spec.checkpoint_interval_seconds, deadline=spec.deadline,
        expected_runtime_seconds=spec.expected_runtime_seconds))
    return []


def cancel_job(cluster: Cluster, job_id: str, now: datetime) -> list[Action]:
    entry = cluster.job(job_id)
    if entry is None:
        return []
    actions: list[Action] = []
    if entry.phase is JobPhase.RUNNING:
        actions.append(StopRun(entry.job_id, entry.attempt))
        for node in cluster.nodes:
            if node.run_id == job_id and node.state is NodeState.RUNNING:
                node.state, node.run_id, node.idle_since = NodeState.IDLE, None, now
    cluster.jobs.remove(entry)
    actions.append(ProjectJob(JobUpdate(job_id=job_id, state=JobState.CANCELED, attempt=entry.attempt,
                                        reason="Canceled by the user")))
    return actions
