"""The timer's safety net: reconcile every cluster that is due, through an index, and heal lost events."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.domain import events as ev
from shared.domain.actions import Action
from shared.domain.cluster import Cluster
from shared.domain.cluster_changes import cancel_job
from shared.domain.job import JobUpdate
from shared.handlers.deps import Deps
from shared.handlers.jobs import project_job
from shared.handlers.reconcile import reconcile_cluster
from shared.handlers.registry import dispatch

log = logging.getLogger(__name__)

UNSCHEDULED_GRACE = timedelta(seconds=30)


@dataclass
class SweepReport:
    clusters_reconciled: int = 0
    jobs_resubmitted: int = 0
    job_documents_fixed: int = 0
    failures: int = 0


def sweep(deps: Deps, horizon: timedelta = timedelta(0)) -> SweepReport:
    """Reconcile clusters due by now + horizon (a host starting up looks one resync period ahead)."""
    report = SweepReport()
    now = deps.clock.now()
    for workspace, name in list(deps.store.due_clusters(now + horizon)):
        try:
            cluster = reconcile_cluster(deps, workspace, name, settle_quota=True)
            if cluster is not None:
                report.job_documents_fixed += resync_job_documents(deps, cluster)
            report.clusters_reconciled += 1
        except Exception:
            report.failures += 1
            log.exception("reconcile of %s/%s failed in the sweep", workspace, name)
    for workspace, job_id in list(deps.store.unscheduled_jobs(now - UNSCHEDULED_GRACE)):
        job = deps.store.get_job(workspace, job_id)
        if job is None:
            continue
        # The HTTP layer wrote the job but its submit event never arrived: apply it now (same id, idempotent).
        event = ev.submit_event(job)
        try:
            dispatch(event, deps)
            report.jobs_resubmitted += 1
        except Exception:
            report.failures += 1
            log.exception("resubmitting job %s/%s failed", workspace, job_id)
    return report


def resync_job_documents(deps: Deps, cluster: Cluster) -> int:
    """Heal job documents whose update was lost after the cluster was saved; drop entries of finished jobs."""
    fixed = 0
    stale: list[str] = []
    for entry in cluster.jobs:
        job = deps.store.get_job(cluster.workspace, entry.job_id)
        if job is None or job.state.is_terminal:
            stale.append(entry.job_id)
            continue
        if entry.visible_state is None:
            continue  # accepted but not shown yet: the next reconcile projects it
        if job.state is not entry.visible_state or job.attempts != entry.attempt:
            project_job(deps, cluster.workspace, JobUpdate(job_id=entry.job_id, state=entry.visible_state,
                                                           attempt=entry.attempt, reason=entry.reason,
                                                           nodes=entry.node_ids))
            fixed += 1
    if stale:
        def drop(c: Cluster, now: datetime) -> list[Action]:
            return [a for job_id in stale for a in cancel_job(c, job_id, now)]  # the documents stay terminal

        reconcile_cluster(deps, cluster.workspace, cluster.name, drop)
    return fixed
