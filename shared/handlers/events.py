"""The handlers of CloudEvents, one per event type: each receives the event, its ``data`` already checked against
the type's body model, and the ports. They are bound to their types in ``shared.handlers.registry``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from shared.domain import events as ev
from shared.domain.actions import Action, ProjectJob
from shared.domain.cluster import Cluster, ProvisioningState
from shared.domain.cluster_changes import accept_job, cancel_job, mark_deleting, update_scale_settings
from shared.domain.errors import ClusterStillDeleting, InvalidEvent, JobExceedsQuota
from shared.domain.events import CloudEvent
from shared.domain.job import Job, JobState, JobUpdate
from shared.domain.requests import (
    ClusterCreate,
    IdentityAssignment,
    IdentityRemoval,
    JobFinished,
    JobRef,
    JobSubmit,
    NodeRef,
    ScaleSettingsUpdate,
    UnreadBody,
    WakeUp,
    check_cluster_create,
    check_job_spec,
)
from shared.handlers.decision import Change, each_once
from shared.handlers.deps import Deps
from shared.handlers.identity import on_identity_add, on_identity_remove
from shared.handlers.jobs import project_job
from shared.handlers.reconcile import reconcile_cluster
from shared.handlers.tombstones import meant_for_a_deleted_cluster
from shared.handlers.use_cases import (
    check_job_fits_quota,
    check_same_request,
    prepare_cluster,
    revoke_system_identity,
)
from shared.ports import AlreadyExists


# --- cluster-events ------------------------------------------------------------------------------------------------
def on_cluster_create(event: CloudEvent, body: ClusterCreate, deps: Deps) -> None:
    if body.name != event.cluster:
        raise InvalidEvent(f"data.name {body.name!r} does not match the subject's cluster {event.cluster!r}")
    existing = deps.store.get_cluster(event.workspace, event.cluster)
    if existing is None and meant_for_a_deleted_cluster(deps, event):
        return
    if existing is None:
        try:
            deps.store.create_cluster(prepare_cluster(deps, event.workspace, body, event.id))
        except AlreadyExists:
            existing = deps.store.get_cluster(event.workspace, event.cluster)
    if existing is not None and not existing.has_applied(event.id):  # another cluster of that name
        if meant_for_a_deleted_cluster(deps, event):
            return
        if existing.provisioning_state is ProvisioningState.DELETING:
            raise ClusterStillDeleting(event.workspace, event.cluster)
        check_same_request(existing, body, check_cluster_create(body, deps.workspace_location).spec)
    reconcile_cluster(deps, event.workspace, event.cluster)


def on_cluster_update(event: CloudEvent, update: ScaleSettingsUpdate, deps: Deps) -> None:

    def change(cluster: Cluster, now: datetime) -> list[Action]:
        update_scale_settings(cluster, update, now, as_of=event.time)
        return []

    if not meant_for_a_deleted_cluster(deps, event):
        _reconcile_existing(deps, event, change)


def on_cluster_delete(event: CloudEvent, _: UnreadBody, deps: Deps) -> None:
    def change(cluster: Cluster, now: datetime) -> list[Action]:
        mark_deleting(cluster, now)
        return []

    if meant_for_a_deleted_cluster(deps, event):
        return
    cluster = reconcile_cluster(deps, event.workspace, event.cluster, change, event.id)  # gone: nothing to do
    if cluster is not None:
        revoke_system_identity(deps, cluster)


def on_cluster_identity_add(event: CloudEvent, body: IdentityAssignment, deps: Deps) -> None:
    if not meant_for_a_deleted_cluster(deps, event):
        on_identity_add(event, deps, body)


def on_cluster_identity_remove(event: CloudEvent, body: IdentityRemoval, deps: Deps) -> None:
    if not meant_for_a_deleted_cluster(deps, event):
        on_identity_remove(event, deps, body)


# --- job-events ----------------------------------------------------------------------------------------------------
def on_job_submit(event: CloudEvent, body: JobSubmit, deps: Deps) -> None:
    on_job_submits([(event, body)], deps)


def on_job_submits(submits: Sequence[tuple[CloudEvent, JobSubmit]], deps: Deps) -> None:
    """Submits to one cluster, in order (one, or a run of them in a queue trigger's batch): each job's document
    made, then one decision accepts them all, each once per event id (``each_once``): one read and one write of
    the cluster for the run."""
    workspace, name = submits[0][0].workspace, submits[0][0].cluster
    prepared = [_prepare_submit(event, body, deps) for event, body in submits]
    known_jobs = {job.id: job.working_copy() for job, _, _ in prepared}  # their first projections need no read
    change = each_once([(change, event_id) for _, change, event_id in prepared])
    if reconcile_cluster(deps, workspace, name, change, known=known_jobs) is None:
        for job, _, _ in prepared:
            project_job(deps, workspace, JobUpdate(
                job_id=job.id, state=JobState.FAILED, attempt=max(job.attempts, 1),
                reason=f"ComputeTargetNotFound: cluster {name!r} does not exist"), known_jobs)


def _prepare_submit(event: CloudEvent, body: JobSubmit, deps: Deps) -> tuple[Job, Change, str]:
    """The submit's job document (made if missing), the change that queues it, and the event's id."""
    spec = check_job_spec(body.spec())
    job_id = body.job_id or event.id  # other systems may leave the id to us: the event id is stable
    # The copy this process kept when its HTTP side created the job, else the document itself. Nobody else writes a
    # job before its submit is applied, so the copy is stale only for a late duplicate whose event id the cluster no
    # longer remembers: its writes are conditional, and a finished job it queued again is dropped by the sweep.
    job = deps.recent_jobs.take(event.workspace, job_id) or deps.store.get_job(event.workspace, job_id)
    if job is None:
        job = Job.submitted(event.workspace, job_id, event.cluster, spec, event.time or deps.clock.now())
        try:
            job = deps.store.create_job(job)
        except AlreadyExists:
            job = deps.store.get_job(event.workspace, job_id) or job
    if job.cluster != event.cluster:
        raise InvalidEvent(f"job {job_id} belongs to cluster {job.cluster!r}, not {event.cluster!r}")
    known = job

    def change(cluster: Cluster, now: datetime) -> list[Action]:
        if not known.state.is_terminal and cluster.job(known.id) is None:
            try:
                check_job_fits_quota(deps, cluster, spec)  # other systems' events get the HTTP edge's check
            except JobExceedsQuota as exc:
                return [ProjectJob(JobUpdate(job_id=known.id, state=JobState.FAILED, attempt=max(known.attempts, 1),
                                             reason=f"{exc.code}: {exc.message}"))]
        return accept_job(cluster, known)

    return job, change, event.id


def on_job_cancel(event: CloudEvent, ref: JobRef, deps: Deps) -> None:
    job = deps.store.get_job(event.workspace, ref.job_id)
    if job is None:
        raise InvalidEvent(f"data.job_id: no job {ref.job_id!r} in workspace {event.workspace!r}")

    def change(cluster: Cluster, now: datetime) -> list[Action]:
        return cancel_job(cluster, ref.job_id, now)

    known_jobs = {job.id: job.working_copy()}
    reconcile_cluster(deps, event.workspace, job.cluster, change, event.id, known_jobs)
    # Not (or no longer) in the cluster's queue: cancel the document itself. Terminal states stay as they are.
    project_job(deps, event.workspace, JobUpdate(job_id=job.id, state=JobState.CANCELED,
                                                 attempt=max(job.attempts, 1), reason="Canceled by the user"),
                known_jobs)


def on_job_finished(event: CloudEvent, _: JobFinished, deps: Deps) -> None:
    # The provider's observation is the truth; the event says when to look.
    _reconcile_existing(deps, event)


# --- scale-events --------------------------------------------------------------------------------------------------
def on_node_event(event: CloudEvent, _: NodeRef, deps: Deps) -> None:
    _reconcile_existing(deps, event)


def on_scale_request(event: CloudEvent, _: WakeUp, deps: Deps) -> None:
    _reconcile_existing(deps, event)


def _reconcile_existing(deps: Deps, event: CloudEvent,
                        change: Callable[[Cluster, datetime], list[Action]] | None = None) -> None:
    """Events about a cluster that is gone are stale, not invalid: they are completed and forgotten."""
    reconcile_cluster(deps, event.workspace, event.cluster, change, event.id if change else None)


HANDLERS: dict[str, Callable[[CloudEvent, Any, Deps], None]] = {
    ev.CLUSTER_CREATE: on_cluster_create,
    ev.CLUSTER_UPDATE: on_cluster_update,
    ev.CLUSTER_DELETE: on_cluster_delete,
    ev.CLUSTER_IDENTITY_ADD: on_cluster_identity_add,
    ev.CLUSTER_IDENTITY_REMOVE: on_cluster_identity_remove,
    ev.JOB_SUBMIT: on_job_submit,
    ev.JOB_CANCEL: on_job_cancel,
    ev.JOB_FINISHED: on_job_finished,
    ev.SCALE_REQUEST: on_scale_request,
    ev.NODE_READY: on_node_event,
    ev.NODE_PREEMPTED: on_node_event,
    ev.NODE_FAILED: on_node_event,
}
