"""Reconcile one cluster and carry out what it decided. Every event for a cluster ends here."""

from __future__ import annotations

import logging

from shared.domain.actions import Action, ProvisionNode, ReleaseNode, StartRun, StopRun, WakeUpAt
from shared.domain.cluster import Cluster
from shared.domain.cluster_changes import cancel_job
from shared.domain.events import SCALE_REQUEST, new_event
from shared.domain.job import JobState, JobUpdate
from shared.domain.utc import format_utc
from shared.handlers.decision import Change, ClusterDecision
from shared.handlers.deps import Deps
from shared.handlers.jobs import KnownJobs, project_job
from shared.ports import RunRequest
from shared.telemetry.events import count_decisions

log = logging.getLogger(__name__)

def reconcile_cluster(deps: Deps, workspace: str, name: str, change: Change | None = None,
                      event_id: str | None = None, known: KnownJobs | None = None, *,
                      settle_quota: bool = False) -> Cluster | None:
    """Apply ``change`` (once per ``event_id``), reconcile and save (``shared.handlers.decision``), then act.
    ``known``: job documents the caller has read already (see ``project_job``); ``settle_quota``: read the quota
    ledger even if no node count changes (the timer's resync, which heals an over-count a crash left).

    Returns the saved cluster, or None when there is no such cluster (any more)."""
    known = {} if known is None else known
    actions, cluster = ClusterDecision(deps, workspace, name, change, event_id, known, settle_quota).run()
    count_decisions(actions)
    if cluster is not None:
        carry_out(deps, cluster, actions)
    return cluster


def carry_out(deps: Deps, cluster: Cluster, actions: list[Action]) -> None:
    """Do every action even if one fails, then raise the first failure so the message is redelivered."""
    failures: list[Exception] = []
    for action in actions:
        try:
            _carry_out_one(deps, cluster, action)
        except Exception as exc:
            log.exception("action %s on %s/%s failed", action, cluster.workspace, cluster.name)
            failures.append(exc)
    if failures:
        raise failures[0]


def _carry_out_one(deps: Deps, cluster: Cluster, action: Action) -> None:
    match action:
        case ProvisionNode(node_id, priority):
            deps.provider.provision(cluster.workspace, cluster.name, node_id, priority or cluster.spec.vm_priority)
        case ReleaseNode(node_id):
            deps.provider.release(node_id)
        case StopRun(job_id, attempt):
            deps.provider.stop_run(job_id, attempt)
            deps.tokens.revoke_job(job_id)
        case StartRun():
            _start_run(deps, cluster, action)
        case WakeUpAt(at):
            deps.bus.publish(new_event(SCALE_REQUEST, cluster.workspace, cluster.name, {"reason": "wake-up"},
                                       event_id=f"wake-{cluster.uid}-{format_utc(at)}"), not_before=at)


def _start_run(deps: Deps, cluster: Cluster, action: StartRun) -> None:
    """Start the run the decision placed. Its document was written as running with the cluster (the copy kept then
    says what to run, without a read); a start made again (a crash came before the run began) reads it."""
    job = deps.recent_jobs.take(cluster.workspace, action.job_id) or deps.store.get_job(cluster.workspace,
                                                                                        action.job_id)
    if job is None or job.state.is_terminal:
        return  # canceled before it was placed: the sweep takes the entry out of the cluster
    deps.recent_jobs.keep(job)  # for the next projection: its failure below, or its finish
    problem = next((f"{resource}: {p}" for resource in job.spec.system_resources()
                    if (p := deps.tokens.check_access(cluster, resource))), None)
    if problem is not None:
        # Fail now with the cause, rather than later inside user code; the nodes go back to the queue.
        project_job(deps, cluster.workspace, JobUpdate(job_id=job.id, state=JobState.FAILED, attempt=action.attempt,
                                                       reason=f"IdentityTokenError: {problem}"))
        reconcile_cluster(deps, cluster.workspace, cluster.name, lambda c, now: cancel_job(c, job.id, now))
        return
    environment = dict(job.spec.environment_variables) | {
        "COMPUTEPLANE_JOB_ID": job.id,
        "COMPUTEPLANE_ATTEMPT": str(action.attempt),
        "COMPUTEPLANE_CLUSTER": cluster.name,
        "COMPUTEPLANE_WORKSPACE": cluster.workspace,
    } | deps.tokens.job_environment(cluster, job.id, action.attempt)
    deps.provider.start_run(action.node_ids, RunRequest(
        workspace=cluster.workspace, cluster=cluster.name, job_id=job.id, attempt=action.attempt,
        command=tuple(job.spec.command), environment=environment, code=job.spec.code))
