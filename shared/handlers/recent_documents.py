"""Documents this process read or wrote last, so that a next write can start from them without reading them again:
job documents (``RecentJobs``) and the regions' quota ledgers (``RecentLedgers``). Only writes conditional on the
etag a copy carries start from one, so a stale copy costs a failed write and a fresh read, never a lost update."""

from __future__ import annotations

import threading
from collections import OrderedDict

from shared.domain.job import Job
from shared.domain.quota_ledger import QuotaLedger


class RecentJobs:
    """The job documents this process wrote last, by (workspace, job id): the next projection of the same job (its
    finish, after the start written here) tries its conditional write on the copy kept, without reading it again.
    A copy gone stale (someone wrote the document since) only costs the failed write and a fresh read. Safe because
    a job document is never deleted, so a version (an etag) is never reused by another document.

    Bounded (least recently kept go first) and shared by the process's threads: ``take`` hands a copy out once, and
    whoever keeps one lets go of it (no copy is made: a deep copy of a job cost more than the read it saves)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._jobs: OrderedDict[tuple[str, str], Job] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, workspace: str, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.pop((workspace, job_id), None)

    def keep(self, job: Job) -> None:
        with self._lock:
            self._keep(job)

    def keep_unless_kept(self, job: Job) -> None:
        """Keep a copy just written, unless another thread kept one of the same job while the write was on its way
        (it was taken before): that copy is what a handler wrote after ours, a cancel's say, and the start of a
        run looks at the copy kept to tell whether its job was canceled meanwhile."""
        with self._lock:
            if (job.workspace, job.id) not in self._jobs:
                self._keep(job)

    def _keep(self, job: Job) -> None:
        self._jobs[(job.workspace, job.id)] = job
        self._jobs.move_to_end((job.workspace, job.id))
        while len(self._jobs) > self._capacity:
            self._jobs.popitem(last=False)


class RecentLedgers:
    """Each region's quota ledger as this process last read or wrote it. A decision starts from it (see
    ``shared.handlers.quota.LedgerOnDemand``): its bookings are written on its etag, and a decision that quota held
    back is made again on a fresh read before it is saved (a stale copy could hold back a cluster for nothing).

    Shared by the process's threads; each gets its own working copy."""

    def __init__(self) -> None:
        self._ledgers: dict[str, QuotaLedger] = {}
        self._lock = threading.Lock()

    def get(self, region: str) -> QuotaLedger | None:
        with self._lock:
            ledger = self._ledgers.get(region)
        return None if ledger is None else ledger.working_copy()

    def keep(self, ledger: QuotaLedger) -> None:
        copy = ledger.working_copy()
        with self._lock:
            self._ledgers[ledger.region] = copy

    def forget(self, region: str) -> None:
        with self._lock:
            self._ledgers.pop(region, None)
