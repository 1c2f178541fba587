"""The Store port in memory: documents kept as the JSON the real stores keep, a version per document for the
conditional writes. Held to the same contract suite as SQLite and Cosmos DB (tests/contract/test_store_contract.py)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TypeVar

from shared.adapters.document_form import stored_json
from shared.domain.cluster import Cluster
from shared.domain.errors import ConcurrencyConflict
from shared.domain.job import Job, JobState
from shared.domain.node_history import NodeHistoryArchive
from shared.domain.quota_ledger import QuotaLedger
from shared.domain.tombstone import ClusterTombstone
from shared.ports import AlreadyExists

_Doc = TypeVar("_Doc", Cluster, Job, QuotaLedger, ClusterTombstone, NodeHistoryArchive)
Key = tuple[str, ...]


class InMemoryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[str, dict[Key, tuple[int, str]]] = {
            "clusters": {}, "jobs": {}, "ledgers": {}, "tombstones": {}, "node_history_archives": {}}
        self._versions = itertools.count(1)  # one count for every write: a version never repeats, as etags do not

    # --- the generic conditional writes --------------------------------------------------------------------------
    def _get(self, model: type[_Doc], table: str, key: Key) -> _Doc | None:
        with self._lock:
            row = self._tables[table].get(key)
        return None if row is None else _read(model, row)

    def _create(self, doc: _Doc, table: str, key: Key, error: Exception) -> _Doc:
        with self._lock:
            if key in self._tables[table]:
                raise error
            version = next(self._versions)
            self._tables[table][key] = (version, stored_json(doc))
        doc.etag = str(version)
        return doc

    def _replace(self, doc: _Doc, table: str, key: Key, what: str) -> _Doc:
        if doc.etag is None:
            raise ConcurrencyConflict("a replace needs the etag of the document that was read")
        version = int(doc.etag)
        with self._lock:
            row = self._tables[table].get(key)
            if row is None or row[0] != version:
                raise ConcurrencyConflict(f"{what} changed since version {version}")
            self._tables[table][key] = (written := next(self._versions), stored_json(doc))
        doc.etag = str(written)
        return doc

    def _all(self, model: type[_Doc], table: str) -> list[_Doc]:
        with self._lock:
            rows = list(self._tables[table].values())
        return [_read(model, row) for row in rows]

    # --- clusters ----------------------------------------------------------------------------------------------
    def get_cluster(self, workspace: str, name: str) -> Cluster | None:
        return self._get(Cluster, "clusters", (workspace, name))

    def create_cluster(self, cluster: Cluster) -> Cluster:
        return self._create(cluster, "clusters", (cluster.workspace, cluster.name),
                            AlreadyExists(f"{cluster.workspace}/{cluster.name}"))

    def replace_cluster(self, cluster: Cluster) -> Cluster:
        return self._replace(cluster, "clusters", (cluster.workspace, cluster.name),
                             f"cluster {cluster.workspace}/{cluster.name}")

    def replace_cluster_with_jobs(self, cluster: Cluster, jobs: Sequence[Job],
                                  archive: NodeHistoryArchive | None = None) -> Cluster:
        """One by one, stopping at the first conflict: the least the contract promises (what the local Cosmos
        server does), so that handler tests run on it."""
        for job in jobs:
            self.replace_job(job)
        if archive is not None:
            self.save_node_history_archive(archive)
        return self.replace_cluster(cluster)

    def delete_cluster(self, cluster: Cluster) -> None:
        if cluster.etag is None:
            raise ConcurrencyConflict("a delete needs the etag of the document that was read")
        key = (cluster.workspace, cluster.name)
        with self._lock:
            row = self._tables["clusters"].get(key)
            if row is None:
                return  # gone already
            if row[0] != int(cluster.etag):
                raise ConcurrencyConflict(f"cluster {cluster.workspace}/{cluster.name} changed since it was read")
            del self._tables["clusters"][key]

    def list_clusters(self, workspace: str) -> list[Cluster]:
        return sorted((c for c in self._all(Cluster, "clusters") if c.workspace == workspace), key=lambda c: c.name)

    def due_clusters(self, now: datetime) -> Iterator[tuple[str, str]]:
        due = [c for c in self._all(Cluster, "clusters") if c.next_reconcile_at and c.next_reconcile_at <= now]
        yield from ((c.workspace, c.name) for c in sorted(due, key=lambda c: c.next_reconcile_at or now))

    # --- jobs --------------------------------------------------------------------------------------------------
    def get_job(self, workspace: str, job_id: str) -> Job | None:
        return self._get(Job, "jobs", (workspace, job_id))

    def create_job(self, job: Job) -> Job:
        return self._create(job, "jobs", (job.workspace, job.id), AlreadyExists(f"{job.workspace}/{job.id}"))

    def replace_job(self, job: Job) -> Job:
        return self._replace(job, "jobs", (job.workspace, job.id), f"job {job.workspace}/{job.id}")

    def list_jobs(self, workspace: str, cluster: str | None = None) -> list[Job]:
        return sorted((j for j in self._all(Job, "jobs")
                       if j.workspace == workspace and (cluster is None or j.cluster == cluster)),
                      key=lambda j: j.submitted_at)

    def unscheduled_jobs(self, submitted_before: datetime) -> Iterator[tuple[str, str]]:
        waiting = [j for j in self._all(Job, "jobs")
                   if not j.scheduled and j.state is JobState.QUEUED and j.submitted_at <= submitted_before]
        yield from ((j.workspace, j.id) for j in sorted(waiting, key=lambda j: j.submitted_at))

    # --- quota ledgers and tombstones --------------------------------------------------------------------------
    def get_quota_ledger(self, region: str) -> QuotaLedger | None:
        return self._get(QuotaLedger, "ledgers", (region,))

    def save_quota_ledger(self, ledger: QuotaLedger) -> QuotaLedger:
        return self._save(ledger, "ledgers", (ledger.region,), f"quota ledger {ledger.region}")

    def get_tombstone(self, workspace: str, name: str) -> ClusterTombstone | None:
        return self._get(ClusterTombstone, "tombstones", (workspace, name))

    def save_tombstone(self, tombstone: ClusterTombstone) -> ClusterTombstone:
        return self._save(tombstone, "tombstones", (tombstone.workspace, tombstone.name),
                          f"tombstone {tombstone.workspace}/{tombstone.name}")

    def get_node_history_archive(self, workspace: str, name: str) -> NodeHistoryArchive | None:
        return self._get(NodeHistoryArchive, "node_history_archives", (workspace, name))

    def save_node_history_archive(self, archive: NodeHistoryArchive) -> NodeHistoryArchive:
        return self._save(archive, "node_history_archives", (archive.workspace, archive.name),
                          f"node history archive {archive.workspace}/{archive.name}")

    def _save(self, doc: _Doc, table: str, key: Key, what: str) -> _Doc:
        """Create (no etag) or replace on the version read, as the real stores do."""
        if doc.etag is None:
            return self._create(doc, table, key, ConcurrencyConflict(f"{what} was created meanwhile"))
        return self._replace(doc, table, key, what)


def _read(model: type[_Doc], row: tuple[int, str]) -> _Doc:
    doc = model.model_validate_json(row[1])
    doc.etag = str(row[0])
    return doc



