"""Keep job documents in line with what the cluster decided."""

from __future__ import annotations

import logging

from shared.domain.job import Job, JobUpdate, apply_job_update
from shared.handlers.deps import Deps
from shared.handlers.retry import retry_on_conflict

log = logging.getLogger(__name__)


KnownJobs = dict[str, Job]


@retry_on_conflict
def project_job(deps: Deps, workspace: str, update: JobUpdate, known: KnownJobs | None = None) -> None:
    """Write ``update`` into the job document. ``known`` holds documents this handler has read or written already
    (by job id), and ``deps.recent_jobs`` those the process wrote last: one found there is not read again; if
    someone wrote it since, the conditional write fails and the retry reads it afresh (the copy was taken). What
    was written is kept in ``deps.recent_jobs`` for the next projection of the same job, by this handler or a
    later one."""
    job = projection_to_write(deps, workspace, update, known)
    if job is not None:
        deps.recent_jobs.keep(deps.store.replace_job(job))


def projection_to_write(deps: Deps, workspace: str, update: JobUpdate, known: KnownJobs | None = None) -> Job | None:
    """The job document with ``update`` applied, for the caller to write (conditionally, on the etag it carries,
    then to hand to ``deps.recent_jobs.keep``); None when there is nothing to write. A change is decided on a copy
    at hand (its write is conditional), "nothing to do" only on a fresh read, since someone may have written the
    document since. A conflict on that write means a copy went stale: the caller's retry finds none at hand, and
    reads afresh."""
    read = _copy_at_hand(deps, workspace, update.job_id, known)
    if read is not None and apply_job_update(read, update, deps.clock.now()):
        return read
    fresh = deps.store.get_job(workspace, update.job_id)
    if fresh is None:
        log.warning("job %s/%s has no document; update %s dropped", workspace, update.job_id, update.state)
        return None
    if apply_job_update(fresh, update, deps.clock.now()):
        return fresh
    deps.recent_jobs.keep(fresh)
    return None


def projections_to_write(deps: Deps, workspace: str, updates: list[JobUpdate], known: KnownJobs | None = None
                         ) -> list[Job]:
    """``projection_to_write`` for each update, in order, one document per job: a decision may move a job twice
    (requeued after a preemption, then waiting for the node it asked for), and two copies of one document written
    together would conflict with each other."""
    documents: dict[str, Job] = {}
    for update in updates:
        pending = documents.get(update.job_id)
        if pending is not None:
            apply_job_update(pending, update, deps.clock.now())
        elif (job := projection_to_write(deps, workspace, update, known)) is not None:
            documents[update.job_id] = job
    return list(documents.values())


def _copy_at_hand(deps: Deps, workspace: str, job_id: str, known: KnownJobs | None) -> Job | None:
    """The handler's own copy, else the one this process wrote last; both are taken (no one else holds them)."""
    kept = deps.recent_jobs.take(workspace, job_id)
    read = known.pop(job_id, None) if known is not None else None
    return kept if read is None else read
