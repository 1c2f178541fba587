"""Keep job documents in line with what the cluster decided."""

from __future__ import annotations

import logging

from shared.domain.errors import ConcurrencyConflict
from shared.domain.job import Job, JobUpdate, apply_job_update
from shared.handlers.deps import Deps
from shared.handlers.retry import retry_on_conflict

log = logging.getLogger(__name__)


KnownJobs = dict[str, Job]


def project_job(deps: Deps, workspace: str, update: JobUpdate, known: KnownJobs | None = None) -> None:
    """Write ``update`` into the job document. ``known`` holds documents this handler has read or written already
    (by job id), and ``deps.recent_jobs`` those the process wrote last: one found there is not read again; if
    someone wrote it since, the conditional write fails and it is read afresh. What was written is kept in
    ``deps.recent_jobs`` for the next projection of the same job, by this handler or a later one."""
    kept = deps.recent_jobs.take(workspace, update.job_id)
    read = known.pop(update.job_id, None) if known is not None else None
    read = kept if read is None else read
    saved: Job | None = None
    # Only a change is decided on the known copy (its write is conditional); "nothing to do" is decided on a fresh
    # read, since someone may have written the document since.
    if read is not None and apply_job_update(read, update, deps.clock.now()):
        try:
            saved = deps.store.replace_job(read)
        except ConcurrencyConflict:
            saved = None
    if saved is None:
        saved = _project_fresh(deps, workspace, update)
    if saved is not None:
        deps.recent_jobs.keep(saved)  # not back in ``known`` too: one object is held in one place only


@retry_on_conflict
def _project_fresh(deps: Deps, workspace: str, update: JobUpdate) -> Job | None:
    job = deps.store.get_job(workspace, update.job_id)
    if job is None:
        log.warning("job %s/%s has no document; update %s dropped", workspace, update.job_id, update.state)
        return None
    if apply_job_update(job, update, deps.clock.now()):
        return deps.store.replace_job(job)
    return job
