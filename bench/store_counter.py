"""A Store that counts what passes through it: point reads, writes and queries, per event type being handled.

It wraps any Store (the port), so the counts are what the handlers ask of the store, whatever the adapter. With
``measure_sizes`` it also records each document's JSON size (for the Cosmos request-unit estimate); that costs a
serialization per call, so throughput runs leave it off.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from shared.adapters.document_form import stored_json
from shared.domain.cluster import Cluster
from shared.domain.job import Job
from shared.domain.node_history import NodeHistoryArchive
from shared.domain.quota_ledger import QuotaLedger
from shared.domain.tombstone import ClusterTombstone
from shared.ports import Store


class OpKind(StrEnum):
    POINT_READ = "point read"
    INSERT = "insert"
    REPLACE = "replace"
    DELETE = "delete"
    QUERY = "query"
    CROSS_PARTITION_QUERY = "cross-partition query"


WRITES = (OpKind.INSERT, OpKind.REPLACE, OpKind.DELETE)


@dataclass
class OpTally:
    calls: int = 0
    documents: int = 0  # documents (or index rows, for queries) returned or written
    kilobytes: float = 0.0  # JSON size of those documents, when measured


@dataclass
class StoreCounter:
    measure_sizes: bool = False
    context: str = "setup"  # what is being handled: an event type, "sweep", ...
    tallies: dict[tuple[str, str, OpKind], OpTally] = field(default_factory=lambda: defaultdict(OpTally))
    on_cluster_saved: Callable[[Cluster], None] | None = None

    context_of: Callable[[], str | None] | None = None  # the context while a batch is handled: its current event's

    def _context(self) -> str:
        return (self.context_of() if self.context_of is not None else None) or self.context

    def add(self, operation: str, kind: OpKind, documents: int, doc: BaseModel | None = None) -> None:
        tally = self.tallies[(self._context(), operation, kind)]
        tally.calls += 1
        tally.documents += documents
        if self.measure_sizes and doc is not None:
            tally.kilobytes += len(stored_json(doc)) / 1024

    def add_batch(self, operation: str, kind: OpKind, docs: Sequence[BaseModel]) -> None:
        """One call writing several documents (a transactional batch)."""
        tally = self.tallies[(self._context(), operation, kind)]
        tally.calls += 1
        tally.documents += len(docs)
        if self.measure_sizes:
            tally.kilobytes += sum(len(stored_json(doc)) for doc in docs) / 1024

    def by_context(self, context: str) -> dict[tuple[str, OpKind], OpTally]:
        return {(op, kind): t for (ctx, op, kind), t in self.tallies.items() if ctx == context}

    def calls(self, context: str, *kinds: OpKind) -> int:
        return sum(t.calls for (op, kind), t in self.by_context(context).items() if kind in kinds)

    def documents(self, context: str, *kinds: OpKind) -> int:
        return sum(t.documents for (op, kind), t in self.by_context(context).items() if kind in kinds)

    def reset(self) -> None:
        self.tallies.clear()


class CountingStore:
    """The Store port, counted. Queries over one workspace are single-partition; ``due_clusters`` and
    ``unscheduled_jobs`` cross partitions (they look at every workspace)."""

    def __init__(self, inner: Store, counter: StoreCounter) -> None:
        self.inner, self.counter = inner, counter

    # --- clusters ----------------------------------------------------------------------------------------------
    def get_cluster(self, workspace: str, name: str) -> Cluster | None:
        cluster = self.inner.get_cluster(workspace, name)
        self.counter.add("get_cluster", OpKind.POINT_READ, int(cluster is not None), cluster)
        return cluster

    def create_cluster(self, cluster: Cluster) -> Cluster:
        saved = self.inner.create_cluster(cluster)
        self.counter.add("create_cluster", OpKind.INSERT, 1, saved)
        return saved

    def replace_cluster(self, cluster: Cluster) -> Cluster:
        saved = self.inner.replace_cluster(cluster)
        self.counter.add("replace_cluster", OpKind.REPLACE, 1, saved)
        if self.counter.on_cluster_saved is not None:
            self.counter.on_cluster_saved(saved)
        return saved

    def replace_cluster_with_jobs(self, cluster: Cluster, jobs: Sequence[Job],
                                  archive: NodeHistoryArchive | None = None) -> Cluster:
        """One round trip (a call), one document written per job, one for the archive and one for the cluster."""
        saved = self.inner.replace_cluster_with_jobs(cluster, jobs, archive)
        self.counter.add_batch("replace_cluster_with_jobs", OpKind.REPLACE, [*jobs, *filter(None, [archive]), saved])
        if self.counter.on_cluster_saved is not None:
            self.counter.on_cluster_saved(saved)
        return saved

    def delete_cluster(self, cluster: Cluster) -> None:
        self.inner.delete_cluster(cluster)
        self.counter.add("delete_cluster", OpKind.DELETE, 1, cluster)

    def list_clusters(self, workspace: str) -> list[Cluster]:
        clusters = self.inner.list_clusters(workspace)
        self.counter.add("list_clusters", OpKind.QUERY, len(clusters))
        return clusters

    def due_clusters(self, now: datetime) -> Iterator[tuple[str, str]]:
        rows = 0
        try:
            for row in self.inner.due_clusters(now):
                rows += 1
                yield row
        finally:
            self.counter.add("due_clusters", OpKind.CROSS_PARTITION_QUERY, rows)

    # --- jobs --------------------------------------------------------------------------------------------------
    def get_job(self, workspace: str, job_id: str) -> Job | None:
        job = self.inner.get_job(workspace, job_id)
        self.counter.add("get_job", OpKind.POINT_READ, int(job is not None), job)
        return job

    def create_job(self, job: Job) -> Job:
        saved = self.inner.create_job(job)
        self.counter.add("create_job", OpKind.INSERT, 1, saved)
        return saved

    def replace_job(self, job: Job) -> Job:
        saved = self.inner.replace_job(job)
        self.counter.add("replace_job", OpKind.REPLACE, 1, saved)
        return saved

    def list_jobs(self, workspace: str, cluster: str | None = None) -> list[Job]:
        jobs = self.inner.list_jobs(workspace, cluster)
        self.counter.add("list_jobs", OpKind.QUERY, len(jobs))
        return jobs

    def unscheduled_jobs(self, submitted_before: datetime) -> Iterator[tuple[str, str]]:
        rows = 0
        try:
            for row in self.inner.unscheduled_jobs(submitted_before):
                rows += 1
                yield row
        finally:
            self.counter.add("unscheduled_jobs", OpKind.CROSS_PARTITION_QUERY, rows)

    # --- quota -------------------------------------------------------------------------------------------------
    def get_quota_ledger(self, region: str) -> QuotaLedger | None:
        ledger = self.inner.get_quota_ledger(region)
        self.counter.add("get_quota_ledger", OpKind.POINT_READ, int(ledger is not None), ledger)
        return ledger

    def save_quota_ledger(self, ledger: QuotaLedger) -> QuotaLedger:
        kind = OpKind.INSERT if ledger.etag is None else OpKind.REPLACE
        saved = self.inner.save_quota_ledger(ledger)
        self.counter.add("save_quota_ledger", kind, 1, saved)
        return saved

    # --- tombstones --------------------------------------------------------------------------------------------
    def get_tombstone(self, workspace: str, name: str) -> ClusterTombstone | None:
        tombstone = self.inner.get_tombstone(workspace, name)
        self.counter.add("get_tombstone", OpKind.POINT_READ, int(tombstone is not None), tombstone)
        return tombstone

    def save_tombstone(self, tombstone: ClusterTombstone) -> ClusterTombstone:
        kind = OpKind.INSERT if tombstone.etag is None else OpKind.REPLACE
        saved = self.inner.save_tombstone(tombstone)
        self.counter.add("save_tombstone", kind, 1, saved)
        return saved

    # --- node history archives ----------------------------------------------------------------------------------
    def get_node_history_archive(self, workspace: str, name: str) -> NodeHistoryArchive | None:
        archive = self.inner.get_node_history_archive(workspace, name)
        self.counter.add("get_node_history_archive", OpKind.POINT_READ, int(archive is not None), archive)
        return archive

    def save_node_history_archive(self, archive: NodeHistoryArchive) -> NodeHistoryArchive:
        kind = OpKind.INSERT if archive.etag is None else OpKind.REPLACE
        saved = self.inner.save_node_history_archive(archive)
        self.counter.add("save_node_history_archive", kind, 1, saved)
        return saved
