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
from typing import TypeVar

from pydantic import BaseModel

from shared.adapters.document_form import stored_json
from shared.domain.cluster import Cluster
from shared.domain.job import Job
from shared.domain.node_history import NodeHistoryArchive
from shared.domain.quota_ledger import QuotaLedger
from shared.domain.tombstone import ClusterTombstone
from shared.ports import Store

_Doc = TypeVar("_Doc", Cluster, Job, QuotaLedger, ClusterTombstone, NodeHistoryArchive)


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
        return self._read("get_cluster", self.inner.get_cluster(workspace, name))

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
        return self._read("get_job", self.inner.get_job(workspace, job_id))

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

    # --- quota, tombstones, node history archives ------------------------------------------------------------
    def get_quota_ledger(self, region: str) -> QuotaLedger | None:
        return self._read("get_quota_ledger", self.inner.get_quota_ledger(region))

    def save_quota_ledger(self, ledger: QuotaLedger) -> QuotaLedger:
        return self._save("save_quota_ledger", self.inner.save_quota_ledger, ledger)

    def get_tombstone(self, workspace: str, name: str) -> ClusterTombstone | None:
        return self._read("get_tombstone", self.inner.get_tombstone(workspace, name))

    def save_tombstone(self, tombstone: ClusterTombstone) -> ClusterTombstone:
        return self._save("save_tombstone", self.inner.save_tombstone, tombstone)

    def get_node_history_archive(self, workspace: str, name: str) -> NodeHistoryArchive | None:
        return self._read("get_node_history_archive", self.inner.get_node_history_archive(workspace, name))

    def save_node_history_archive(self, archive: NodeHistoryArchive) -> NodeHistoryArchive:
        return self._save("save_node_history_archive", self.inner.save_node_history_archive, archive)

    def _read(self, operation: str, found: _Doc | None) -> _Doc | None:
        self.counter.add(operation, OpKind.POINT_READ, int(found is not None), found)
        return found

    def _save(self, operation: str, save: Callable[[_Doc], _Doc], document: _Doc) -> _Doc:
        """A create (no etag) or a replace, counted as the one it was."""
        kind = OpKind.INSERT if document.etag is None else OpKind.REPLACE
        saved = save(document)
        self.counter.add(operation, kind, 1, saved)
        return saved
