"""The HTTP API's use cases: record what was asked (so a GET shows it at once), publish the event, answer.

The queue-triggered handlers do the work; an event that is lost after the record was written is found again by
the timer's sweep (``next_reconcile_at`` is set, and unscheduled jobs are indexed).
"""

from __future__ import annotations

import uuid

from shared.domain import events as ev
from shared.domain.cluster import Cluster, ClusterSpec, Node, ProvisioningState
from shared.domain.cluster_changes import (
    ScaleSettingsUpdate,
    check_job_fits,
    mark_deleting,
    new_cluster,
    update_scale_settings,
)
from shared.domain.cluster_identity import requested_identity, same_identity_request
from shared.domain.errors import (
    ClusterSpecConflict,
    ComputeTargetNotFound,
    DomainError,
    IdempotencyKeyReused,
    InvalidField,
    JobExceedsQuota,
    JobNotFound,
    OperationNotAllowed,
    SimulationOnly,
)
from shared.domain.job import Job, JobSpec
from shared.domain.quota import can_ever_fit
from shared.domain.requests import ClusterCreate, check_cluster_create, check_job_spec
from shared.domain.vm_sizes import load_catalogue, normalize_location
from shared.handlers.deps import Deps
from shared.handlers.retry import retry_on_conflict
from shared.ports import MAX_EVENT_BYTES, AlreadyExists

# Job ids derived from an Idempotency-Key (uuid5 in this namespace, over the workspace and the key).
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1f7a4e-3c1b-5d2a-9e0f-2b8c4d6a1e57")


def create_cluster(deps: Deps, workspace: str, body: ClusterCreate) -> tuple[Cluster, bool]:
    """Get-or-create. Returns the cluster and whether this call created it."""
    existing = deps.store.get_cluster(workspace, body.name)
    if existing is None:
        event = ev.new_event(ev.CLUSTER_CREATE, workspace, body.name, body.model_dump(mode="json"),
                             event_id="size-check")
        if len(event.to_json()) > MAX_EVENT_BYTES:
            biggest = max(("tags", len(str(body.tags))), ("description", len(body.description or "")),
                          key=lambda pair: pair[1])[0]
            raise InvalidField(biggest, f"the request is too large to travel as an event (Service Bus carries at "
                                        f"most {MAX_EVENT_BYTES} bytes); shorten {biggest}")
        cluster = prepare_cluster(deps, workspace, body)
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
    check_same_request(existing, body, check_cluster_create(body, deps.workspace_location).spec)
    return existing, False


def prepare_cluster(deps: Deps, workspace: str, body: ClusterCreate, event_id: str | None = None) -> Cluster:
    """A new cluster document from a create request: every rule checked, defaults applied, identity created.

    ``event_id`` is the create event's id (``create-{uid}`` for the event the HTTP API sends): recorded as applied,
    so a copy of it finds the cluster made, and kept in the cluster's tombstone once it is deleted."""
    checked = check_cluster_create(body, deps.workspace_location)
    uid = uuid.uuid4().hex
    cluster = new_cluster(workspace, body.name, checked.spec, uid, deps.clock.now())
    cluster.created_by_event = event_id or f"create-{uid}"
    cluster.record_applied(cluster.created_by_event)
    cluster.identity = requested_identity(workspace, body.name, body.identity_type, body.identity_id)
    cluster.warnings = checked.warnings
    return cluster


def check_same_request(existing: Cluster, body: ClusterCreate, spec: ClusterSpec) -> None:
    """Get-or-create: the same request is a no-op; a different one is a 409 naming every differing field."""
    differing = existing.spec.differences(spec)
    if not same_identity_request(existing.identity, body.identity_type, body.identity_id):
        differing["identity_type"] = (existing.identity.type, body.identity_type)
        differing["identity_id"] = ([i.resource_id for i in existing.identity.identities], body.identity_id)
    if differing:
        raise ClusterSpecConflict(existing.name, differing)


def get_cluster(deps: Deps, workspace: str, name: str) -> Cluster:
    cluster = deps.store.get_cluster(workspace, name)
    if cluster is None:
        raise ComputeTargetNotFound(f"compute target '{name}' not found in workspace '{workspace}'")
    return cluster


@retry_on_conflict
def update_cluster(deps: Deps, workspace: str, name: str, update: ScaleSettingsUpdate) -> Cluster:
    cluster = get_cluster(deps, workspace, name)
    event_id = uuid.uuid4().hex
    if update_scale_settings(cluster, update, deps.clock.now()):
        cluster.record_applied(event_id)  # the event below finds its change already made
        cluster = deps.store.replace_cluster(cluster)
        deps.bus.publish(ev.new_event(ev.CLUSTER_UPDATE, workspace, name, update.model_dump(exclude_none=True),
                                      event_id=event_id, time=deps.clock.now()))
    return cluster


@retry_on_conflict
def delete_cluster(deps: Deps, workspace: str, name: str) -> Cluster:
    cluster = get_cluster(deps, workspace, name)
    if mark_deleting(cluster, deps.clock.now()):
        cluster = deps.store.replace_cluster(cluster)
        revoke_system_identity(deps, cluster)
    deps.bus.publish(ev.new_event(ev.CLUSTER_DELETE, workspace, name, {}, event_id=f"delete-{cluster.uid}",
                                  time=deps.clock.now()))
    return cluster


def submit_job(deps: Deps, workspace: str, cluster_name: str, spec: JobSpec,
               idempotency_key: str | None = None) -> tuple[Job, bool]:
    """Record the job and publish its submit event. Returns the job and whether this call created it.

    With an ``idempotency_key`` the job id is derived from it, so a client that lost the answer (timeout, 503)
    sends the same request again and gets the same job: the event is published again (the broker and the handler
    drop a copy) in case the first call died before publishing."""
    check_job_spec(spec)
    cluster = get_cluster(deps, workspace, cluster_name)
    check_code_snapshot(deps, workspace, spec)
    check_job_fits(cluster, spec)
    check_job_fits_quota(deps, cluster, spec)
    now = deps.clock.now()
    job_id = uuid.uuid4().hex if idempotency_key is None else \
        uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{workspace}/{idempotency_key}").hex
    created = True
    try:
        job = deps.store.create_job(Job.submitted(workspace, job_id, cluster_name, spec, now))
        deps.recent_jobs.keep(job.working_copy())  # the submit's handler, should it run in this process, starts here
    except AlreadyExists:
        job, created = _same_submit(deps, workspace, job_id, cluster_name, spec), False
    if created or not job.state.is_terminal:
        deps.bus.publish(ev.submit_event(job))
    return job, created


def check_code_snapshot(deps: Deps, workspace: str, spec: JobSpec) -> None:
    """A job's code must have been uploaded first: a job that could never start is refused at submit."""
    if spec.code is None:
        return
    if deps.snapshots is None:
        raise InvalidField("code", "this server keeps no code snapshots; submit without code")
    if not deps.snapshots.exists(workspace, spec.code):
        raise InvalidField("code", f"no snapshot {spec.code} in workspace '{workspace}': upload it first with PUT "
                                   f"/api/workspaces/{workspace}/snapshots/{spec.code} (the CLI's --code and the "
                                   "client's code= do that for you)")


def _same_submit(deps: Deps, workspace: str, job_id: str, cluster_name: str, spec: JobSpec) -> Job:
    job = get_job(deps, workspace, job_id)
    if job.cluster != cluster_name or job.spec != spec:
        raise IdempotencyKeyReused(f"Idempotency-Key was first used to submit another request (job '{job_id}' on "
                                   f"cluster '{job.cluster}'); use a new key for a new job")
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


def revoke_system_identity(deps: Deps, cluster: Cluster) -> None:
    """A system-assigned identity is deleted with its cluster: its tokens stop working at once."""
    for identity in cluster.identity.identities:
        if identity.kind == "SystemAssigned":
            deps.tokens.revoke_identity(identity.client_id)


def preempt_node(deps: Deps, workspace: str, name: str, node_id: str) -> Node:
    cluster = get_cluster(deps, workspace, name)
    node = cluster.node(node_id)
    if node is None:
        raise InvalidField("node_id", f"cluster '{name}' has no node '{node_id}'")
    if cluster.priority_of(node) != "lowpriority":
        raise OperationNotAllowed(f"only low-priority nodes are preempted; node '{node_id}' of cluster '{name}' "
                                  "is dedicated")
    if deps.simulation is None:
        raise SimulationOnly("preempting a node is a simulation control: this control plane's nodes are real "
                             "(COMPUTEPLANE_PROVIDER=azurebatch), and Azure preempts low-priority nodes itself")
    if not deps.simulation.preempt(node_id):
        raise OperationNotAllowed(f"node '{node_id}' is not running (already preempted, leaving or not ready)")
    return node


def check_job_fits_quota(deps: Deps, cluster: Cluster, spec: JobSpec) -> None:
    """A job whose nodes could never fit the family or regional quota is refused at submit."""
    region = normalize_location(cluster.spec.location or deps.workspace_location)
    try:
        vm_size = load_catalogue().get(cluster.spec.vm_size, region)
    except DomainError:
        return
    problem = can_ever_fit(deps.quota_limits, vm_size, cluster.spec.vm_priority, region, spec.node_count)
    if problem:
        raise JobExceedsQuota(problem)
