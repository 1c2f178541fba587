"""Commands from the HTTP API: record what was asked (so a GET shows it at once), publish the event, answer.

The queue-triggered handlers do the work; an event that is lost after the record was written is found again by
the timer's sweep (``next_reconcile_at`` is set, and unscheduled jobs are indexed).
"""

from __future__ import annotations

import uuid

from shared.domain import events as ev
from shared.domain.cluster import Cluster, ProvisioningState
from shared.domain.commands import (
    ScaleSettingsUpdate,
    check_job_fits,
    check_same_spec,
    mark_deleting,
    new_cluster,
    update_scale_settings,
)
from shared.domain.errors import ComputeTargetNotFound, JobNotFound, OperationNotAllowed
from shared.domain.job import Job, JobSpec
from shared.domain.requests import ClusterCreate, check_cluster_create, check_job_spec
from shared.handlers.deps import Deps
from shared.handlers.retry import retry_on_conflict
from shared.ports import AlreadyExists


def create_cluster(deps: Deps, workspace: str, body: ClusterCreate) -> tuple[Cluster, bool]:
    """Get-or-create. Returns the cluster and whether this call created it."""
    spec = check_cluster_create(body)
    existing = deps.store.get_cluster(workspace, body.name)
    if existing is None:
        cluster = new_cluster(workspace, body.name, spec, uuid.uuid4().hex, deps.clock.now())
        try:
            cluster = deps.store.create_cluster(cluster)
        except AlreadyExists:
            existing = deps.store.get_cluster(workspace, body.name)
        else:
            deps.bus.publish(ev.new_event(ev.CLUSTER_CREATE, workspace, body.name, body.model_dump(mode="json"),
                                          event_id=f"create-{cluster.uid}", time=deps.clock.now()))
            return cluster, True
    assert existing is not None
    if existing.provisioning_state is ProvisioningState.DELETING:
        raise OperationNotAllowed(f"cluster '{body.name}' is being deleted; try again when it is gone")
    check_same_spec(existing, spec)
    return existing, False


def get_cluster(deps: Deps, workspace: str, name: str) -> Cluster:
    cluster = deps.store.get_cluster(workspace, name)
    if cluster is None:
        raise ComputeTargetNotFound(f"compute target '{name}' not found in workspace '{workspace}'")
    return cluster


@retry_on_conflict
def update_cluster(deps: Deps, workspace: str, name: str, update: ScaleSettingsUpdate) -> Cluster:
    cluster = get_cluster(deps, workspace, name)
    if update_scale_settings(cluster, update, deps.clock.now()):
        cluster = deps.store.replace_cluster(cluster)
        deps.bus.publish(ev.new_event(ev.CLUSTER_UPDATE, workspace, name, update.model_dump(exclude_none=True),
                                      event_id=uuid.uuid4().hex, time=deps.clock.now()))
    return cluster


@retry_on_conflict
def delete_cluster(deps: Deps, workspace: str, name: str) -> Cluster:
    cluster = get_cluster(deps, workspace, name)
    if mark_deleting(cluster, deps.clock.now()):
        cluster = deps.store.replace_cluster(cluster)
    deps.bus.publish(ev.new_event(ev.CLUSTER_DELETE, workspace, name, {}, event_id=f"delete-{cluster.uid}",
                                  time=deps.clock.now()))
    return cluster


def submit_job(deps: Deps, workspace: str, cluster_name: str, spec: JobSpec) -> Job:
    check_job_spec(spec)
    cluster = get_cluster(deps, workspace, cluster_name)
    check_job_fits(cluster, spec)
    now = deps.clock.now()
    job = deps.store.create_job(Job(workspace=workspace, id=uuid.uuid4().hex, cluster=cluster_name, spec=spec,
                                    submitted_at=now, reason="submitted; waiting for the scheduler"))
    deps.bus.publish(ev.new_event(ev.JOB_SUBMIT, workspace, cluster_name,
                                  {"job_id": job.id, **spec.model_dump(mode="json")},
                                  event_id=f"submit-{job.id}", time=now))
    return job


def get_job(deps: Deps, workspace: str, job_id: str) -> Job:
    job = deps.store.get_job(workspace, job_id)
    if job is None:
        raise JobNotFound(f"job '{job_id}' not found in workspace '{workspace}'")
    return job


def cancel_job(deps: Deps, workspace: str, job_id: str) -> Job:
    job = get_job(deps, workspace, job_id)
    if job.state.is_terminal:
        raise OperationNotAllowed(f"job '{job_id}' is already {job.state.value}")
    deps.bus.publish(ev.new_event(ev.JOB_CANCEL, workspace, job.cluster, {"job_id": job_id},
                                  event_id=f"cancel-{job_id}", time=deps.clock.now()))
    return job
