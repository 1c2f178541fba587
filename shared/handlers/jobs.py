"""Keep job documents in line with what the cluster decided."""

from __future__ import annotations

import logging

from shared.domain.job import JobUpdate, apply_job_update
from shared.handlers.deps import Deps
from shared.handlers.retry import retry_on_conflict

log = logging.getLogger(__name__)


@retry_on_conflict
def project_job(deps: Deps, workspace: str, update: JobUpdate) -> None:
    job = deps.store.get_job(workspace, update.job_id)
    if job is None:
        log.warning("job %s/%s has no document; update %s dropped", workspace, update.job_id, update.state)
        return
    if apply_job_update(job, update, deps.clock.now()):
        deps.store.replace_job(job)
